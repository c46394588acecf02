"""End to end, one real bridge on a real anvil: a FIX 4.2 session beside FIX 4.4 ones (a real
QuickFIX FIX 4.2 initiator), OrderMassStatusRequest (AF) and OrderMassCancelRequest (q), cancel on
disconnect (reports delivered by FIX resend at the next Logon) and `fixbridge halt` canceling
working orders. Orders are kept working by turning anvil's automine off: sent, unmined."""
from __future__ import annotations

import subprocess
import time
from decimal import Decimal

import pytest
import quickfix as fix
from web3 import Web3

from fixbridge.fix.client import (FixClient, new_order_single, order_cancel_request, order_mass_cancel_request,
                                  order_mass_status_request, order_status_request)
from fixbridge.orders.model import OrdStatus
from helpers import tx_count
from support import ADDR, FIXBRIDGE, KEYS, ROOT, acceptor_cfg, start_bridge, start_devnet

pytestmark = pytest.mark.e2e
BUY, SELL, IOC = "1", "2", "3"
S1, S42 = "FIX.4.4:FIXBRIDGE->CLIENT1", "FIX.4.2:FIXBRIDGE->CLIENT42"
SCOD, SH = "FIX.4.4:FIXBRIDGE->CLIENTCOD", "FIX.4.4:FIXBRIDGE->CLIENTH"
GRACE = 3  # CLIENTCOD's cancel_on_disconnect_grace_seconds

SESSIONS = """
[wallets.w1]
chain = "devnet"
private_key = "{k1}"
[wallets.w3]
chain = "devnet"
private_key = "{k3}"
[wallets.w4]
chain = "devnet"
private_key = "{k4}"

[sessions.CLIENT1]
wallets = ["w1"]
[sessions.CLIENT42]
wallets = ["w3"]
[sessions.CLIENTCOD]
wallets = ["w4"]
cancel_on_disconnect = true
cancel_on_disconnect_grace_seconds = {grace}
[sessions.CLIENTH]
wallets = ["w3"]
[sessions.CLI42]
wallets = ["w3"]
"""


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("devnet"))
    yield net
    net.anvil.stop()


@pytest.fixture(scope="module")
def bridge(devnet, tmp_path_factory):
    d = tmp_path_factory.mktemp("sessions")
    (d / "acceptor.cfg").write_text(acceptor_cfg(["CLIENT1", "CLIENTCOD", "CLIENTH"], fix42=["CLIENT42", "CLI42"]))
    (d / "counterparties.toml").write_text(SESSIONS.format(k1=KEYS[1], k3=KEYS[3], k4=KEYS[4], grace=GRACE))
    b = start_bridge([devnet.spec_path], d / "counterparties.toml", tmp_path_factory.mktemp("bridge"))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def journal(bridge):
    from fixbridge.journal import Journal
    j = Journal(bridge.journal_url)
    yield j
    j.close()


@pytest.fixture(scope="module")
def clients(bridge, tmp_path_factory):
    made: dict[str, FixClient] = {}

    def make(sender: str) -> FixClient:
        if sender not in made:
            made[sender] = FixClient("127.0.0.1", bridge.port, sender, "FIXBRIDGE",
                                     begin_string="FIX.4.2" if sender == "CLIENT42" else "FIX.4.4",
                                     data_dir=tmp_path_factory.mktemp(f"client-{sender}")).start()
        return made[sender]

    yield make
    for c in made.values():
        c.stop()


def order(cl_ord_id: str, side: str = SELL, qty: str = "0.01", symbol: str = "WETH/USDC", fix42: bool = False, **kw):
    return new_order_single(cl_ord_id, symbol, side, Decimal(qty), tif=kw.pop("tif", IOC), ex_destination="uniswap_v2",
                            handl_inst="1" if fix42 else None, **kw)


@pytest.fixture(scope="module")
def warm(clients):
    """Each wallet's approvals mined (a buy and a sell, automine on) before a test pauses mining."""
    for sender in ("CLIENT1", "CLIENT42", "CLIENTCOD"):
        c = clients(sender)
        for side in (BUY, SELL):
            cid = f"warm-{sender}-{side}-{time.time_ns()}"
            c.send(order(cid, side, fix42=sender == "CLIENT42"))
            assert c.reports_until_terminal(cid, timeout=60)[-1][39] == "2"


@pytest.fixture
def paused(devnet, warm):
    """Automine off: a sent swap stays in the mempool (its order working) until the test mines."""
    devnet.rpc("evm_setAutomine", [False])
    yield
    devnet.rpc("evm_setAutomine", [True])


def wait_for(pred, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def txs_of(journal, session, cl_ord_id, purpose="swap"):
    row = journal.find_order(session, cl_ord_id)
    return [] if row is None else [t for t in journal.transactions_for(row.order_id) if t.purpose == purpose]


def wait_in_mempool(devnet, journal, session, cl_ord_id, purpose="swap"):
    """The order's transaction of `purpose`, once the node holds it (the journal row comes first)."""
    def ready():
        txs = txs_of(journal, session, cl_ord_id, purpose)
        return txs if txs and devnet.rpc("eth_getTransactionByHash", [txs[-1].tx_hash]) is not None else None
    return wait_for(ready, what=f"{purpose} of {cl_ord_id} in the mempool")


def status_of(journal, session, cl_ord_id) -> OrdStatus:
    return journal.find_order(session, cl_ord_id).status


def collect(client, pred, n, timeout=30.0):
    """The next `n` messages matching `pred` (others are dropped)."""
    out, end = [], time.monotonic() + timeout
    while len(out) < n:
        m = client.receive(max(0.1, end - time.monotonic()))
        if pred(m):
            out.append(m)
    return out


# ---- FIX 4.2 ----------------------------------------------------------------------------------

def test_fix42_session_trades_with_42_reports(clients, journal, devnet, warm, cl_ord_id):
    """A FIX 4.2 initiator buys: New and Fill carry ExecTransType 0, a full fill is ExecType 2
    (no F in 4.2), LastShares, the gas in ChainFee (no MiscFees in 4.2); the swap is on chain."""
    c = clients("CLIENT42")
    c.send(order(cl_ord_id, BUY, "0.02", fix42=True, limit=Decimal("5000")))
    new, fill = c.reports_until_terminal(cl_ord_id)
    assert (new[20], new[150], new[39], new[11]) == ("0", "0", "0", cl_ord_id)
    assert (fill[20], fill[150], fill[39], fill[32], fill[14], fill[151]) == ("0", "2", "2", "0.02", "0.02", "0")
    assert Decimal(fill[20006]) > 0 and 136 not in fill.fields and fill.raw.startswith("8=FIX.4.2\x01")
    assert Web3(Web3.HTTPProvider(devnet.rpc_url)).eth.get_transaction_receipt(fill[20001]).status == 1
    row = journal.find_order(S42, cl_ord_id)
    assert row.status is OrdStatus.FILLED and len(journal.fills_for(row.order_id)) == 1

    # Status: ExecTransType 3, ExecType = the OrdStatus (4.2 has no I).
    c.send(order_status_request(cl_ord_id, side=BUY, symbol="WETH/USDC"))
    st = c.receive(15, "8")
    assert (st[20], st[150], st[39], st[37], st[14]) == ("3", "2", "2", fill[37], "0.02") and 790 not in st.fields
    c.send(order_status_request("never-sent", symbol="WETH/USDC"))
    st = c.receive(15, "8")
    assert (st[20], st[150], st[39], st[103]) == ("3", "8", "8", "5")

    # A cancel of a filled order: the 4.2 OrderCancelReject.
    c.send(order_cancel_request(cl_ord_id + "-c", cl_ord_id, side=BUY, symbol="WETH/USDC"))
    rej = c.receive(15, "9")
    assert (rej[11], rej[41], rej[39], rej[102], rej[434]) == (cl_ord_id + "-c", cl_ord_id, "2", "0", "1")


def test_fix42_bad_orders_are_rejected_and_change_nothing(clients, journal, devnet, warm, cl_ord_id):
    c = clients("CLIENT42")
    nonce = tx_count(devnet.rpc_url, ADDR[3])
    c.send(order(cl_ord_id + "-opg", fix42=True, tif="2"))
    opg = c.reports_until_terminal(cl_ord_id + "-opg")[-1]
    assert (opg[20], opg[150], opg[39], opg[103]) == ("0", "8", "8", "0") and "TimeInForce 2 (OPG)" in opg[58]
    c.send(order(cl_ord_id + "-sym", symbol="NOPE/USDC", fix42=True))
    sym = c.reports_until_terminal(cl_ord_id + "-sym")[-1]
    assert (sym[20], sym[150], sym[39], sym[103]) == ("0", "8", "8", "1")
    assert journal.find_order(S42, cl_ord_id + "-opg") is None  # not even representable: nothing journaled as an order
    assert tx_count(devnet.rpc_url, ADDR[3]) == nonce

    # AF and q do not exist in FIX 4.2: QuickFIX refuses a MsgType its dictionary does not define
    # with a session Reject (373=11 Invalid MsgType), the same answer any session gets today for a
    # type its version lacks; nothing changes and the session trades on.
    for msg in (order_mass_status_request("MS42"), order_mass_cancel_request(cl_ord_id + "-mc")):
        c.send(msg)
        refused = c.receive(15)
        assert (refused.msg_type, refused[373], refused[372]) == ("3", "11", msg.getHeader().getField(35))
    # SecurityDefinitionRequest exists in 4.2, but the bridge answers it in 4.4's shape only.
    sd = fix.Message()
    sd.getHeader().setField(fix.MsgType(fix.MsgType_SecurityDefinitionRequest))
    for tag, value in ((320, "SD-1"), (321, "3"), (55, "WETH/USDC")):
        sd.setField(fix.StringField(tag, value))
    c.send(sd)
    bmr = c.receive(15, "j")
    assert (bmr[372], bmr[380]) == ("c", "3")
    c.send(order(cl_ord_id + "-ok", BUY, fix42=True))
    assert c.reports_until_terminal(cl_ord_id + "-ok")[-1][150] == "2"


def test_fix44_session_is_unchanged_beside_fix42(clients, warm, cl_ord_id):
    c = clients("CLIENT1")
    c.send(order(cl_ord_id, BUY))
    new, fill = c.reports_until_terminal(cl_ord_id)
    assert (new[150], fill[150], fill[39]) == ("0", "F", "2") and 20 not in fill.fields and fill[138] == "ETH"


def cli(*args: str) -> subprocess.CompletedProcess:
    import os
    return subprocess.run(FIXBRIDGE + list(args), cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"})


def test_the_client_command_speaks_fix42_and_mass_requests(bridge, warm):
    """`fixbridge client` as a FIX 4.2 OMS (its own session, CLI42), and mass-status / mass-cancel
    as CLIENTH (nothing working: the empty answers)."""
    port = str(bridge.port)
    buy = cli("client", "buy", "WETH/USDC", "0.01", "--venue", "uniswap_v2", "--sender", "CLI42",
              "--begin-string", "FIX.4.2", "--port", port)
    assert buy.returncode == 0, buy.stderr
    assert "ExecTransType (20)" in buy.stdout and "Fill (4.2)" in buy.stdout and "Filled" in buy.stdout, buy.stdout
    ms = cli("client", "mass-status", "--sender", "CLIENTH", "--port", port)
    assert ms.returncode == 0 and "TotNumReports (911)" in ms.stdout and "No working orders" in ms.stdout, ms.stdout
    mc = cli("client", "mass-cancel", "--symbol", "WETH/USDC", "--sender", "CLIENTH", "--port", port)
    assert mc.returncode == 0 and "TotalAffectedOrders (533)" in mc.stdout, mc.stdout
    bad = cli("client", "buy", "WETH/USDC", "0.01", "--begin-string", "FIX.4.3", "--port", port)
    assert bad.returncode != 0 and "--begin-string must be one of" in bad.stdout + bad.stderr


# ---- mass status and mass cancel (FIX 4.4) ---------------------------------------------------

def test_mass_status_then_mass_cancel(clients, journal, devnet, paused, cl_ord_id):
    c = clients("CLIENT1")
    c.drain()
    ids = [f"{cl_ord_id}-a", f"{cl_ord_id}-b"]
    c.send(order(ids[0], SELL))
    c.send(order(ids[1], BUY))
    for cid in ids:
        assert c.receive(30, "8")[150] == "0"
        wait_in_mempool(devnet, journal, S1, cid)
    nonce = tx_count(devnet.rpc_url, ADDR[1])

    c.send(order_mass_status_request("MS-all"))
    reports = collect(c, lambda m: m.msg_type == "8" and m.get(584) == "MS-all", 2)
    assert sorted(r[11] for r in reports) == sorted(ids)
    assert [(r[150], r[39], r[911], r.get(912)) for r in reports] == [("I", "0", "2", None), ("I", "0", "2", "Y")]
    c.send(order_mass_status_request("MS-sell", "7", side=SELL))
    (sell,) = collect(c, lambda m: m.get(584) == "MS-sell", 1)
    assert (sell[11], sell[911], sell[912]) == (ids[0], "1", "Y")
    c.send(order_mass_status_request("MS-wbtc", "1", symbol="WBTC/USDC"))
    (none,) = collect(c, lambda m: m.get(584) == "MS-wbtc", 1)
    assert (none[150], none[39], none[911], none[912], none[37]) == ("I", "8", "0", "Y", "NONE")
    assert "No working orders" in none[58]

    # Bad scopes: refused, nothing canceled.
    c.send(order_mass_cancel_request(f"{cl_ord_id}-bad", "3"))
    bad = c.receive(15)
    assert bad.msg_type == "3" and bad[371] == "530"
    c.send(order_mass_cancel_request(f"{cl_ord_id}-nope", "1", symbol="NOPE/USDC"))
    nope = c.receive(15, "r")
    assert (nope[531], nope[532], nope[533]) == ("0", "99", "0")
    assert all(status_of(journal, S1, cid) is OrdStatus.NEW for cid in ids)

    mc = f"{cl_ord_id}-mc"
    c.send(order_mass_cancel_request(mc))
    report = c.receive(15, "r")
    assert (report[11], report[530], report[531], report[533], report[534]) == (mc, "7", "7", "2", "2")
    assert {p.split("=")[1] for p in report.raw.split("\x01") if p.startswith("41=")} == set(ids)
    pending = collect(c, lambda m: m.msg_type == "8" and m.get(11) == mc, 2)
    assert sorted((p[150], p[39], p[41]) for p in pending) == sorted(("6", "6", cid) for cid in ids)
    for cid in ids:
        wait_in_mempool(devnet, journal, S1, cid, "cancel")
    devnet.rpc("evm_mine")
    done = collect(c, lambda m: m.msg_type == "8" and m.get(11) == mc, 2)
    assert sorted((d[150], d[39], d[14], d[41]) for d in done) == sorted(("4", "4", "0", cid) for cid in ids)
    for cid in ids:
        assert status_of(journal, S1, cid) is OrdStatus.CANCELED
        row = journal.find_order(S1, cid)
        assert journal.fills_for(row.order_id) == []
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce + 2  # the two nonces went to the no-ops

    c.send(order_mass_status_request("MS-after"))
    (after,) = collect(c, lambda m: m.get(584) == "MS-after", 1)
    assert (after[39], after[911]) == ("8", "0")


# ---- cancel on disconnect --------------------------------------------------------------------

def _cod_client(bridge, data_dir, reset_seq):
    return FixClient("127.0.0.1", bridge.port, "CLIENTCOD", "FIXBRIDGE", data_dir=data_dir, reset_seq=reset_seq).start()


def test_cancel_on_disconnect_cancels_after_the_grace_and_reports_at_logon(bridge, clients, journal, devnet, paused,
                                                                           tmp_path, cl_ord_id):
    clients("CLIENTCOD").stop()  # the warm-up's connection: this test logs on with its own store
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=True)
    c.send(order(cl_ord_id))
    new = c.receive(30, "8")
    assert new[150] == "0"
    wait_in_mempool(devnet, journal, SCOD, cl_ord_id)
    c.stop()  # Logout with the order working
    time.sleep(GRACE / 2)
    assert status_of(journal, SCOD, cl_ord_id) is OrdStatus.NEW and not txs_of(journal, SCOD, cl_ord_id, "cancel")
    wait_in_mempool(devnet, journal, SCOD, cl_ord_id, "cancel")  # after the grace: the no-op races the swap
    devnet.rpc("evm_mine")
    wait_for(lambda: status_of(journal, SCOD, cl_ord_id) is OrdStatus.CANCELED, what="canceled on disconnect")
    row = journal.find_order(SCOD, cl_ord_id)
    assert journal.fills_for(row.order_id) == []
    assert any("cancel on disconnect" in e.reason for e in journal.events(row.order_id) if e.reason)

    # Logging on again (same sequence numbers): FIX resend delivers what was sent while away.
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=False)
    try:
        reports = c.reports_until_terminal(cl_ord_id, timeout=30)
    finally:
        c.stop()
    assert [(r[150], r[39]) for r in reports] == [("6", "6"), ("4", "4")]
    assert all(r[11] == cl_ord_id and 41 not in r.fields for r in reports)  # the bridge's cancel, not a request
    assert reports[-1][14] == "0" and reports[-1][20001]


def test_cancel_on_disconnect_spares_a_session_back_within_the_grace(bridge, clients, journal, devnet, paused,
                                                                    tmp_path, cl_ord_id):
    clients("CLIENTCOD").stop()
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=True)
    c.send(order(cl_ord_id))
    assert c.receive(30, "8")[150] == "0"
    wait_in_mempool(devnet, journal, SCOD, cl_ord_id)
    c.stop()
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=False)  # back well within the grace
    try:
        time.sleep(GRACE + 1.5)
        assert status_of(journal, SCOD, cl_ord_id) is OrdStatus.NEW and not txs_of(journal, SCOD, cl_ord_id, "cancel")
        devnet.rpc("evm_mine")
        assert c.reports_until_terminal(cl_ord_id, timeout=30)[-1][39] == "2"
    finally:
        c.stop()


# ---- the kill switch ------------------------------------------------------------------------

def test_halt_cancels_the_sessions_working_orders(bridge, clients, journal, devnet, paused, cl_ord_id):
    c = clients("CLIENTH")
    c.drain()
    c.send(order(cl_ord_id))
    assert c.receive(30, "8")[150] == "0"
    wait_in_mempool(devnet, journal, SH, cl_ord_id)
    other = f"{cl_ord_id}-42"  # CLIENT42 trades from the same wallet and is not halted
    c42 = clients("CLIENT42")
    c42.drain()
    c42.send(order(other, fix42=True))
    assert c42.receive(30, "8")[150] == "0"
    wait_in_mempool(devnet, journal, S42, other)
    run = subprocess.run(FIXBRIDGE + ["halt", "--session", "CLIENTH", "--reason", "desk closed", "--by", "tester",
                                      "--journal", bridge.journal_url], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        pending = c.receive(10, "8")
        assert (pending[150], pending[39], pending[11]) == ("6", "6", cl_ord_id)
        wait_in_mempool(devnet, journal, SH, cl_ord_id, "cancel")
        devnet.rpc("evm_mine")
        done = c.reports_until_terminal(cl_ord_id, timeout=30)[-1]
        assert (done[150], done[39], done[14]) == ("4", "4", "0")
        assert c42.reports_until_terminal(other, timeout=30)[-1][39] == "2"  # the other session's order filled
        c.send(order(cl_ord_id + "-after"))
        after = c.reports_until_terminal(cl_ord_id + "-after")[-1]
        assert after[39] == "8" and "trading halted for CLIENTH by tester: desk closed" in after[58]
    finally:
        subprocess.run(FIXBRIDGE + ["resume", "--session", "CLIENTH", "--journal", bridge.journal_url], cwd=ROOT,
                       capture_output=True)


# ---- a restart is a disconnect (last: it restarts the module's bridge) ----------------------

def test_cancel_on_disconnect_after_a_restart(bridge, clients, journal, devnet, paused, tmp_path, cl_ord_id):
    """The bridge stops with the session's order working and starts again: the session is away
    until it logs on, so once the grace passes without a Logon its recovered order is canceled."""
    clients("CLIENTCOD").stop()
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=True)
    c.send(order(cl_ord_id))
    assert c.receive(30, "8")[150] == "0"
    wait_in_mempool(devnet, journal, SCOD, cl_ord_id)
    c.stop()
    bridge.stop()
    assert not txs_of(journal, SCOD, cl_ord_id, "cancel")  # the stop itself cancels nothing
    bridge.start()
    wait_in_mempool(devnet, journal, SCOD, cl_ord_id, "cancel")
    devnet.rpc("evm_mine")
    wait_for(lambda: status_of(journal, SCOD, cl_ord_id) is OrdStatus.CANCELED, what="canceled after the restart")
    c = _cod_client(bridge, tmp_path / "cod", reset_seq=False)
    try:
        assert [(r[150], r[39]) for r in c.reports_until_terminal(cl_ord_id, timeout=30)] == [("6", "6"), ("4", "4")]
    finally:
        c.stop()
