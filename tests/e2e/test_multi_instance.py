"""Several bridge instances share one PostgreSQL journal, each owning its sessions and wallets;
the database refuses a second owner of a wallet, hands a dead instance's wallet over once its lease
has expired, and an instance that lost its lease signs nothing."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import ADDR, KEYS, ROOT, BridgeProcess, acceptor_cfg, start_bridge
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from helpers import eventually, tx_count

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def pg_url(pg_new_database) -> str:
    """A fresh database per test: a lease left by one test's killed instance never blocks another."""
    return pg_new_database()


def sessions(d: Path, comp_id: str, key: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "acceptor.cfg").write_text(acceptor_cfg([comp_id]))
    (d / "counterparties.toml").write_text(f'[wallets.w]\nchain = "devnet"\nprivate_key = "{key}"\n'
                                           f'[sessions.{comp_id}]\nwallets = ["w"]\n')
    return d / "counterparties.toml"


def refused_start(devnet, sessions_toml: Path, pg_url: str, state: Path) -> tuple[int, str]:
    """`fixbridge run` expected to stop at its start: (exit code, output with whitespace folded)."""
    r = subprocess.run([sys.executable, "-m", "fixbridge.cli", "run", "--no-devnet", "--spec", str(devnet.spec_path),
                        "--sessions", str(sessions_toml), "--journal", pg_url, "--state-dir", str(state), "--port", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    return r.returncode, " ".join((r.stdout + r.stderr).split())


def trade(bridge: BridgeProcess, comp_id: str, cl_ord_id: str, data_dir: Path, side: str = "1") -> str:
    """One small order to its terminal report; its OrdStatus."""
    with FixClient("127.0.0.1", bridge.port, comp_id, "FIXBRIDGE", data_dir=data_dir) as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", side, Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
        return c.reports_until_terminal(cl_ord_id)[-1][39]


def test_two_instances_share_a_journal_and_never_a_wallet(devnet, pg_url, tmp_path):
    one = sessions(tmp_path / "one", "CLIENT1", KEYS[1])
    two = sessions(tmp_path / "two", "CLIENT3", KEYS[3])
    a = start_bridge([devnet.spec_path], one, tmp_path / "a", journal=pg_url)
    b = start_bridge([devnet.spec_path], two, tmp_path / "b", journal=pg_url)
    try:
        # A third instance wanting instance A's session and wallet is refused before it starts.
        code, out = refused_start(devnet, one, pg_url, tmp_path / "c")
        assert code == 2 and "owned by bridge instance" in out and str(tmp_path / "a") in out, out
        # So is one with a session of its own but instance A's wallet: the wallet alone clashes.
        code, out = refused_start(devnet, sessions(tmp_path / "four", "CLIENT9", KEYS[1]), pg_url, tmp_path / "d")
        assert code == 2 and f"wallet 31337:{ADDR[1]}" in out and str(tmp_path / "a") in out, out
        # Both running instances trade, each from its own wallet, into the one journal.
        for bridge, comp_id in ((a, "CLIENT1"), (b, "CLIENT3")):
            assert trade(bridge, comp_id, f"multi-{comp_id}", tmp_path / f"c-{comp_id}") == "2"
        j = Journal(pg_url)
        try:
            owners = {(kind, owner) for kind, _, owner, _ in j.leases()}
            assert len({o for _, o in owners}) == 2 and {k for k, _ in owners} == {"session", "wallet"}
            assert j.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", "multi-CLIENT1").status.value == "Filled"
            assert j.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", "multi-CLIENT3").status.value == "Filled"
        finally:
            j.close()
    finally:
        a.stop()
        b.stop()


def test_a_dead_instances_wallet_is_taken_over_once_its_lease_expires(devnet, pg_url, tmp_path):
    """Instance A is killed -9 (its leases stay in the table); another deployment B with the same
    session and wallet is refused while A's lease runs, and starts and trades once it has expired."""
    cfg = sessions(tmp_path / "s", "CLIENT1", KEYS[1])
    a = start_bridge([devnet.spec_path], cfg, tmp_path / "a", journal=pg_url)
    try:
        assert trade(a, "CLIENT1", "takeover-a", tmp_path / "ca") == "2"
    finally:
        a.kill9()
    code, out = refused_start(devnet, cfg, pg_url, tmp_path / "b")
    assert code == 2 and "owned by bridge instance" in out and str(tmp_path / "a") in out, out
    j = Journal(pg_url)
    try:
        expires = max(until for _, _, owner, until in j.leases() if owner.endswith(str(tmp_path / "a")))
    finally:
        j.close()
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    b = start_bridge([devnet.spec_path], cfg, tmp_path / "b", journal=pg_url)
    try:
        assert trade(b, "CLIENT1", "takeover-b", tmp_path / "cb", side="2") == "2"
        j = Journal(pg_url)
        try:
            owners = {owner for _, _, owner, _ in j.leases()}
            assert len(owners) == 1 and owners.pop().endswith(str(tmp_path / "b")), owners
        finally:
            j.close()
    finally:
        b.stop()


def test_an_instance_that_lost_its_lease_signs_nothing(devnet, pg_url, tmp_path):
    """The lease rows are taken from a running instance under its feet (as another instance taking
    over would): at its next renewal it stops signing, and an order is answered with the reason and
    no transaction. The wallet (#4) has no allowance yet, so even the approval would be a signature."""
    cfg = sessions(tmp_path / "s", "CLIENT4", KEYS[4])
    a = start_bridge([devnet.spec_path], cfg, tmp_path / "a", journal=pg_url)
    try:
        engine = sa.create_engine(pg_url)
        with engine.begin() as c:
            taken = c.execute(sa.text("UPDATE leases SET owner = 'another-instance', "
                                      "expires_at = now() + interval '1 hour'")).rowcount
        engine.dispose()
        assert taken == 2  # its session and its wallet
        assert eventually(lambda: "ownership lease not renewed" in a.log(), bool, timeout=20), a.log()[-3000:]
        sent = tx_count(devnet.rpc_url, ADDR[4])
        with FixClient("127.0.0.1", a.port, "CLIENT4", "FIXBRIDGE", data_dir=tmp_path / "c4") as c:
            c.send(new_order_single("lost-lease", "WETH/USDC", "2", Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
            last = c.reports_until_terminal("lost-lease")[-1]
        assert last[39] in ("4", "8") and "no longer holds its wallet lease" in last[58], last.raw
        assert tx_count(devnet.rpc_url, ADDR[4]) == sent
        j = Journal(pg_url)
        try:
            row = j.find_order("FIX.4.4:FIXBRIDGE->CLIENT4", "lost-lease")
            assert j.transactions_for(row.order_id) == []
        finally:
            j.close()
    finally:
        a.stop()


def test_a_swap_in_flight_when_the_lease_is_lost_is_not_re_signed(devnet, pg_url, tmp_path):
    """A swap the node holds but does not mine (the base fee is over its bid) would be re-priced
    after the chain's replace_after_blocks; once the instance lost its wallet lease it is not
    re-signed (another instance may be signing at that nonce), and it still settles when mined."""
    cfg = sessions(tmp_path / "s", "CLIENT4", KEYS[4])
    a = start_bridge([devnet.spec_path], cfg, tmp_path / "a", journal=pg_url)

    def mine_over_its_bid(blocks: int) -> None:
        for _ in range(blocks):
            devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(10**15)])  # 1,000,000 gwei: no swap of ours bids that
            devnet.rpc("evm_mine")

    try:
        assert trade(a, "CLIENT4", "lease-warm", tmp_path / "c0", side="2") == "2"  # the approval is made
        devnet.rpc("evm_setAutomine", [False])
        try:
            with FixClient("127.0.0.1", a.port, "CLIENT4", "FIXBRIDGE", data_dir=tmp_path / "c4") as c:
                c.send(new_order_single("lease-stuck", "WETH/USDC", "2", Decimal("0.01"), tif="3",
                                        ex_destination="uniswap_v2"))
                assert c.receive(msg_type="8")[150] == "0"
                j = Journal(pg_url)
                row = eventually(lambda: j.find_order("FIX.4.4:FIXBRIDGE->CLIENT4", "lease-stuck"),
                                 lambda r: r is not None and j.transactions_for(r.order_id), timeout=20)
                swap = j.transactions_for(row.order_id)[0]
                assert eventually(lambda: devnet.rpc("eth_getTransactionByHash", [swap.tx_hash]), bool, timeout=20)
                engine = sa.create_engine(pg_url)
                with engine.begin() as conn:
                    conn.execute(sa.text("UPDATE leases SET owner = 'another-instance', expires_at = now() + interval '1 hour'"))
                engine.dispose()
                assert eventually(lambda: "ownership lease not renewed" in a.log(), bool, timeout=20), a.log()[-3000:]
                mine_over_its_bid(5)
                held = eventually(lambda: [e.reason for e in j.events(row.order_id) if "not re-signed" in e.reason],
                                  bool, timeout=20)
                assert held and "no longer holds its wallet lease" in held[0]
                assert [t.tx_hash for t in j.transactions_for(row.order_id)] == [swap.tx_hash]  # nothing re-signed
                devnet.rpc("evm_setAutomine", [True])
                devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
                devnet.rpc("evm_mine")
                last = c.reports_until_terminal("lease-stuck")[-1]
                assert last[39] == "2" and last[20001] == swap.tx_hash, last.raw  # its outcome still reported
                j.close()
        finally:
            devnet.rpc("evm_setAutomine", [True])
    finally:
        a.stop()
