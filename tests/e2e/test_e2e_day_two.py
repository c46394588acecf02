"""Day two, as an operator meets it: the bridge stopped and started again on kept state, a chain
that is not the journal's, a chain that lost its last transactions, the FIX port's address."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from support import ADDR, FIXBRIDGE, ROOT, acceptor_cfg, free_port, free_port_pair, start_bridge, start_devnet
from fixbridge.devnet.anvil import die_with_parent
from fixbridge.fix.acceptor import listening_addresses
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from helpers import eventually, tx_count

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"


def _trade(port: int, cl_ord_id: str, data_dir: Path, side: str = "1") -> list:
    with FixClient("127.0.0.1", port, "CLIENT1", "FIXBRIDGE", data_dir=data_dir) as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", side, Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
        return c.reports_until_terminal(cl_ord_id, timeout=60)


def test_the_fix_port_listens_only_where_configured(bridge):
    assert listening_addresses(bridge.port) == {"127.0.0.1"}
    addresses = {a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")}
    for addr in addresses:  # another interface of this machine does not answer
        with pytest.raises(OSError):
            socket.create_connection((addr, bridge.port), timeout=1).close()


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(FIXBRIDGE + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "400"})


def test_beyond_loopback_without_passwords_is_refused_unless_said_so(devnet, sessions_dir, tmp_path):
    cfg = sessions_dir / "counterparties.toml"
    (tmp_path / "acceptor.cfg").write_text(acceptor_cfg(["CLIENT1"]).replace("SocketAcceptHost=127.0.0.1",
                                                                          "SocketAcceptHost=0.0.0.0"))
    (tmp_path / "counterparties.toml").write_text(cfg.read_text().split("[sessions.CLIENT2]")[0])
    port = free_port()
    args = ["run", "--no-devnet", "--spec", str(devnet.spec_path), "--sessions", str(tmp_path / "counterparties.toml"),
            "--journal", f"sqlite:///{tmp_path / 'j.db'}", "--state-dir", str(tmp_path / "state"), "--port", str(port)]
    r = _run(args)
    assert r.returncode == 2, r.stdout + r.stderr
    out = " ".join(r.stdout.split())
    assert "SocketAcceptHost" in out and "CLIENT1" in out and "password_hash" in out and "AllowRemoteLogon=Y" in out
    assert not listening_addresses(port)
    # Said so in so many words: it listens on every interface.
    text = (tmp_path / "acceptor.cfg").read_text().replace("[DEFAULT]\n", "[DEFAULT]\nAllowRemoteLogon=Y\n", 1)
    (tmp_path / "acceptor.cfg").write_text(text)
    b = start_bridge([devnet.spec_path], tmp_path / "counterparties.toml", tmp_path / "state2", port=port)
    try:
        assert listening_addresses(port) == {"0.0.0.0"}
    finally:
        b.stop()


def test_a_journal_refuses_a_chain_that_is_not_its_own(devnet, sessions_dir, tmp_path, cl_ord_id):
    """The same spec addresses, the same chain id, but a devnet started afresh: the journal's nonces
    mean nothing there. The bridge names both identities and the fix, and signs nothing."""
    state = tmp_path / "state"
    b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", state)
    try:
        assert _trade(b.port, cl_ord_id, tmp_path / "c1")[-1][39] == "2"
    finally:
        b.stop()
    (tmp_path / "other").mkdir()
    other = start_devnet(tmp_path / "other")  # deterministic deployment: the very same addresses
    try:
        sent = tx_count(other.rpc_url, ADDR[1])
        r = _run(["run", "--no-devnet", "--spec", str(other.spec_path), "--sessions", str(sessions_dir / "counterparties.toml"),
                  "--journal", b.journal_url, "--state-dir", str(state), "--port", str(free_port())])
        assert r.returncode == 2, r.stdout + r.stderr
        out = " ".join(r.stdout.split())
        j = Journal(b.journal_url)
        recorded = j.chains.get("devnet")
        j.close()
        assert "chain_identities.devnet" in out and recorded.genesis_hash in out and "make clean" in out
        assert "Nothing was signed" in out
        assert tx_count(other.rpc_url, ADDR[1]) == sent
    finally:
        other.anvil.stop()
    # Its own chain is still welcome.
    b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", state, port=b.port)
    try:
        assert _trade(b.port, cl_ord_id + "-again", tmp_path / "c2")[-1][39] == "2"
    finally:
        b.stop()


def test_a_chain_that_lost_its_last_transactions_gets_them_back_at_start(devnet, sessions_dir, tmp_path, cl_ord_id):
    """What a devnet killed -9 between two state dumps does: the journal holds a filled swap the
    chain no longer has. The next start rebroadcasts it from the journal (the nonce gap is closed,
    the reason journaled), so the next order trades at once instead of waiting behind the gap."""
    state = tmp_path / "state"
    b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", state)
    try:
        assert _trade(b.port, cl_ord_id + "-warm", tmp_path / "c0")[-1][39] == "2"  # approvals made
        snap = devnet.rpc("evm_snapshot")
        nonce = tx_count(devnet.rpc_url, ADDR[1])
        filled = _trade(b.port, cl_ord_id, tmp_path / "c1")
        assert filled[-1][39] == "2"
    finally:
        b.stop()
    lost = filled[-1][20001]
    assert devnet.rpc("evm_revert", [snap]) and tx_count(devnet.rpc_url, ADDR[1]) == nonce
    assert devnet.rpc("eth_getTransactionByHash", [lost]) is None
    b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", state, port=b.port)
    try:
        r = _trade(b.port, cl_ord_id + "-next", tmp_path / "c2", side="2")
        assert r[-1][39] == "2", [m.raw for m in r]
    finally:
        b.stop()
    receipt = devnet.rpc("eth_getTransactionReceipt", [lost])
    assert receipt is not None and int(receipt["status"], 16) == 1  # the journal's swap, on chain again
    j = Journal(b.journal_url)
    try:
        row = j.find_order(SESSION, cl_ord_id)
        notes = [e.reason for e in j.events(row.order_id) if e.kind == "note"]
        assert any("nonce gap at start" in n and lost in n for n in notes), notes
        assert j.next_nonce(31337, ADDR[1]) == tx_count(devnet.rpc_url, ADDR[1])  # journal and chain in step
    finally:
        j.close()


def test_run_stop_run_on_the_embedded_devnet_keeps_the_chain_and_trades(tmp_path, cl_ord_id):
    """`fixbridge run` (the embedded devnet, SQLite under the state dir) as `make run` does it:
    trade, Ctrl-C, run again, trade. The chains come back from their saved state, the journal
    still belongs to them, every stop exits 0."""
    state, port, devnet_port = tmp_path / "var", free_port(), free_port_pair()
    specs = [tmp_path / "devnet.toml", tmp_path / "devnet2.toml"]
    args = FIXBRIDGE + ["run", "--spec", str(specs[0]), "--spec", str(specs[1]), "--state-dir", str(state),
                        "--journal", f"sqlite:///{state / 'journal.db'}", "--port", str(port),
                        "--devnet-port", str(devnet_port), "--metrics-port", "0"]
    outputs = []
    for i, sig in enumerate((signal.SIGINT, signal.SIGTERM)):
        log = tmp_path / f"run{i}.log"
        with open(log, "wb") as out:
            p = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                 env={**os.environ, "COLUMNS": "400"})
        try:
            ready = eventually(lambda: log.read_text(), lambda t: "Ctrl-C stops" in t or p.poll() is not None, timeout=120)
            assert "Ctrl-C stops" in ready, ready
            r = _trade(port, f"{cl_ord_id}-{i}", tmp_path / f"c{i}", side="1" if i == 0 else "2")
            assert r[-1][39] == "2", [m.raw for m in r]
            p.send_signal(sig)
            assert p.wait(timeout=10) == 0, log.read_text()
        finally:
            if p.poll() is None:
                p.kill()
        outputs.append(" ".join(log.read_text().split()))
        assert "Traceback" not in outputs[-1]
    assert "state kept in" in outputs[0] and "resumed from" in outputs[1]
    # The second start was on the first one's chain (a fresh one would have been refused: the
    # journal knows its genesis), and the one journal holds both trades.
    j = Journal(f"sqlite:///{state / 'journal.db'}")
    try:
        assert [j.find_order(SESSION, f"{cl_ord_id}-{i}").status.value for i in (0, 1)] == ["Filled", "Filled"]
        assert j.chains.get("devnet") is not None and j.chains.get("devnet2") is not None
    finally:
        j.close()
