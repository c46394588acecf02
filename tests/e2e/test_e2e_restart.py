"""Restarts and crashes: the journal carries ClOrdID uniqueness and in-flight orders across a
stop or a kill -9, and every order gets exactly one transaction and its terminal report.

Every test runs on SQLite; a representative subset runs on PostgreSQL too (`backend`, a fresh
database per test): a kill -9 after the write-ahead, one under load, the rewind of an order counted
but not journaled, and a PendingCancel recovered. The rest would cost a bridge pair each again
for paths no different between the two databases."""
from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from web3 import Web3

from support import ADDR, BACKENDS, BridgeProcess, free_port, start_bridge
from fixbridge.fix.client import FixClient, new_order_single, order_cancel_request
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus
from helpers import eventually, tx_count

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"
PG = BACKENDS[1]


@pytest.fixture
def make_bridge(devnet, sessions_dir, tmp_path, journal_url):
    """Bridges sharing one journal (the test's backend) and one FIX store, as the same deployment
    restarted."""
    port = free_port()
    started: list[BridgeProcess] = []

    def make(crash_at: str | None = None) -> BridgeProcess:
        b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", tmp_path,
                         env={"FIXBRIDGE_CRASH_AT": crash_at} if crash_at else {}, port=port, journal=journal_url)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def persistent_client(bridge: BridgeProcess, path) -> FixClient:
    """A client that keeps its sequence numbers, so FIX resend delivers what it missed."""
    return FixClient("127.0.0.1", bridge.port, "CLIENT1", "FIXBRIDGE", data_dir=path, reset_seq=False).start()


def test_duplicate_cl_ord_id_after_restart(make_bridge, devnet, tmp_path, cl_ord_id):
    b = make_bridge()
    with FixClient("127.0.0.1", b.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c1") as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY := "1", Decimal("0.01"), tif="3"))
        assert c.reports_until_terminal(cl_ord_id)[-1][39] == "2"
    b.stop()
    b = make_bridge()
    sent = tx_count(devnet.rpc_url, ADDR[1])
    with FixClient("127.0.0.1", b.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c2") as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.01"), tif="3"))
        r = c.reports_until_terminal(cl_ord_id)
        assert [(m[150], m[39], m[103]) for m in r] == [("8", "8", "6")]
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent


@pytest.mark.parametrize("crash_at, backend", [
    *[(c, "sqlite") for c in ("before_ack", "before_sign", "after_write_ahead", "after_broadcast", "after_receipt",
                              "before_report")],
    pytest.param("after_write_ahead", "postgres", marks=PG.marks)])
def test_kill_9_mid_order_then_restart_finishes_it_once(make_bridge, devnet, tmp_path, cl_ord_id, crash_at):
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    b = make_bridge(crash_at=crash_at)
    c = persistent_client(b, tmp_path / "client")
    nonce_before = tx_count(devnet.rpc_url, ADDR[1])
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.02"), limit=Decimal("1000"), tif="4"))
    assert b.proc.wait(30) != 0  # the bridge killed itself at the crash point
    before = [m for m in c.drain() if m.msg_type == "8" and m.get(11) == cl_ord_id]
    c.stop()
    b = make_bridge()
    c = persistent_client(b, tmp_path / "client")
    try:
        reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    finally:
        c.stop()
    assert reports[-1][39] == "2", [r.raw for r in reports]
    trade = [r for r in reports if r[150] == "F"]
    assert len(trade) == 1
    # The client hears of its order in order, whatever the crash swallowed: New before the Trade.
    seen = [m[150] for m in before + reports if m[150] in ("0", "F")]
    assert seen[0] == "0" and seen.index("0") < seen.index("F"), [m.raw for m in before + reports]
    # Exactly one swap on chain for the order, and the journal agrees with the chain.
    j = Journal(b.journal_url)
    row = j.find_order(SESSION, cl_ord_id)
    swaps = [t for t in j.transactions_for(row.order_id) if t.purpose == "swap"]
    assert len(swaps) == 1 and swaps[0].tx_hash == trade[0][20001] and swaps[0].status == "mined"
    assert w3.eth.get_transaction_receipt(swaps[0].tx_hash).status == 1
    sent = [t for t in j.transactions_for(row.order_id) if t.status != "failed"]  # the swap (+ an approval)
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce_before + len(sent)
    assert row.status is OrdStatus.FILLED and len(j.fills_for(row.order_id)) == 1
    j.close()


@pytest.mark.parametrize("crash_at, backend", [
    *[(c, "sqlite") for c in ("after_write_ahead:5", "after_broadcast:3", "after_receipt:4")],
    pytest.param("after_broadcast:3", "postgres", marks=PG.marks)])
def test_kill_9_under_load_then_restart(make_bridge, devnet, tmp_path, cl_ord_id, crash_at):
    """Twelve orders in flight at once; the bridge dies at the n-th crossing of a crash point. After
    the restart every order has reached a terminal report, none has more than one mined swap, and
    the journal agrees with the chain."""
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    ids = [f"{cl_ord_id}-{i}" for i in range(12)]
    b = make_bridge(crash_at=crash_at)
    c = persistent_client(b, tmp_path / "client")
    # Approvals first, so the load below is swaps only (they count towards the crash point's n).
    for side in ("1", "2"):
        c.send(new_order_single(f"{cl_ord_id}-warm{side}", "WETH/USDC", side, Decimal("0.01"), tif="3",
                                ex_destination="uniswap_v2"))
        assert c.reports_until_terminal(f"{cl_ord_id}-warm{side}")[-1][39] == "2"
    nonce_before = tx_count(devnet.rpc_url, ADDR[1])
    for i, cid in enumerate(ids):
        c.send(new_order_single(cid, "WETH/USDC", "1" if i % 2 else "2", Decimal("0.01"), limit=Decimal("1000") if i % 2 == 0 else Decimal("5000"),
                                tif="3", ex_destination="uniswap_v2"))
    assert b.proc.wait(60) != 0  # died at the crash point
    finals: dict = {}
    time.sleep(0.5)
    for m in c.drain():  # outcomes reported before the crash
        if m.msg_type == "8" and m.get(11) in ids and m[39] in ("2", "4", "8", "C"):
            finals[m[11]] = m
    c.stop()
    b = make_bridge()
    c = persistent_client(b, tmp_path / "client")
    try:
        end = time.monotonic() + 90
        while len(finals) < len(ids) and time.monotonic() < end:  # reports for all orders, interleaved
            m = c.receive(max(0.1, end - time.monotonic()))
            if m.msg_type == "8" and m.get(11) in ids and m[39] in ("2", "4", "8", "C"):
                finals[m[11]] = m
    finally:
        c.stop()
    assert set(finals) == set(ids)
    j = Journal(b.journal_url)
    try:
        mined_total = 0
        for cid, last in finals.items():
            assert last[39] in ("2", "4", "8", "C"), last.raw
            row = j.find_order(SESSION, cid)
            assert row.status.terminal
            mined = [t for t in j.transactions_for(row.order_id) if t.purpose == "swap" and t.status in ("mined", "reverted")]
            assert len(mined) <= 1
            for t in mined:
                assert w3.eth.get_transaction_receipt(t.tx_hash).status == (1 if t.status == "mined" else 0)
            assert (last[39] == "2") == bool(mined and mined[0].status == "mined"), (
                cid, last.raw, [(t.purpose, t.status, t.nonce, t.tx_hash) for t in j.transactions_for(row.order_id)],
                [(e.kind, e.reason) for e in j.events(row.order_id)])
            mined_total += len(mined)
        # Every nonce the wallet used since went to one of these orders' swaps.
        assert tx_count(devnet.rpc_url, ADDR[1]) - nonce_before == mined_total
    finally:
        j.close()


def _bump_inbound_seq_num(state_dir) -> int:
    """What a crash between QuickFIX counting a message and its journal commit leaves: the acceptor's
    store expects one inbound message more than the journal holds. Returns the new expected number."""
    (path,) = (state_dir / "fix" / "store").glob("*CLIENT1*.seqnums")
    sender, target = (int(n) for n in re.findall(r"\d+", path.read_text()))
    path.write_text(f"{sender:010d} : {target + 1:010d}")
    return target + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_counted_but_not_journaled_before_a_crash_is_asked_for_again(make_bridge, devnet, tmp_path, cl_ord_id):
    """fromApp does not wait for the journal's commit, so QuickFIX may count a NewOrderSingle whose
    row dies with the process. After a kill -9 the acceptor expects again what the journal lacks:
    the client is asked to resend it (PossDupFlag=Y) and the order is executed, once."""
    b = make_bridge()
    c = persistent_client(b, tmp_path / "client")
    try:
        c.send(new_order_single(f"{cl_ord_id}-a", "WETH/USDC", "1", Decimal("0.01"), tif="3"))
        assert c.reports_until_terminal(f"{cl_ord_id}-a")[-1][39] == "2"
        b.kill9()
        deadline = time.monotonic() + 10
        while c.logged_on and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not c.logged_on
        # The order leaves the client while the bridge is down: QuickFIX stores it and sends it on
        # resend, as it would have been lost in flight; the bridge's store counts it already.
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
        _bump_inbound_seq_num(tmp_path)
        sent = tx_count(devnet.rpc_url, ADDR[1])
        b = make_bridge()  # the client reconnects on its own
        reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    finally:
        c.stop()
    assert [r[39] for r in reports][-1] == "2", [r.raw for r in reports]
    assert [r[150] for r in reports].count("F") == 1
    j = Journal(b.journal_url)
    try:
        row = j.find_order(SESSION, cl_ord_id)
        assert row.status is OrdStatus.FILLED
        assert [t.purpose for t in j.transactions_for(row.order_id)] == ["swap"]
        inbound = j.fix_messages(session_id=SESSION, cl_ord_id=cl_ord_id, direction="in")
        assert len(inbound) == 1 and "|43=Y|" in inbound[0].raw  # it came as a resend
    finally:
        j.close()
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent + 1


def test_clean_stop_does_not_rewind(make_bridge, tmp_path, cl_ord_id):
    """After a clean stop everything QuickFIX counted is journaled: the store's numbers stand."""
    b = make_bridge()
    c = persistent_client(b, tmp_path / "client")
    try:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
        assert c.reports_until_terminal(cl_ord_id)[-1][39] == "2"
    finally:
        c.stop()
    b.stop()
    assert (tmp_path / "fix" / "clean-stop").exists()
    b = make_bridge()
    assert not (tmp_path / "fix" / "clean-stop").exists()
    assert "inbound sequence rewound" not in b.log()


def warmed_up_client(bridge: BridgeProcess, path, cl_ord_id: str) -> FixClient:
    """A persistent client whose first sell filled, so the router approval is mined before a test
    stops mining."""
    c = persistent_client(bridge, path)
    c.send(new_order_single(f"{cl_ord_id}-warm", "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    assert c.reports_until_terminal(f"{cl_ord_id}-warm")[-1][39] == "2"
    return c


def journal_poll(journal_url: str, read, what: str):
    """`read(journal)` polled until it returns something (the bridge writes the journal as it
    goes, from another process); that something, or TimeoutError naming `what`."""
    j = Journal(journal_url)
    try:
        got = eventually(lambda: read(j), bool, timeout=20.0)
    finally:
        j.close()
    if not got:
        raise TimeoutError(what)
    return got


def wait_node_has(devnet, journal_url: str, order_id: str, purpose: str):
    """The order's journaled transaction of `purpose`, once the node holds it (the write-ahead row
    is committed before the broadcast, so the row alone does not say the node has it)."""
    def held(j):
        txs = [t for t in j.transactions_for(order_id) if t.purpose == purpose]
        return txs[-1] if txs and devnet.rpc("eth_getTransactionByHash", [txs[-1].tx_hash]) is not None else None
    return journal_poll(journal_url, held, f"no {purpose} transaction of {order_id} at the node")


def order_id_of(journal_url: str, cl_ord_id: str, session: str = SESSION) -> str:
    row = journal_poll(journal_url, lambda j: j.find_order(session, cl_ord_id), f"{cl_ord_id} not journaled")
    return row.order_id


@pytest.mark.parametrize("backend", BACKENDS)
def test_pending_cancel_recovered_after_kill_9_answers_the_clients_cancel(make_bridge, devnet, tmp_path, cl_ord_id):
    """kill -9 between PendingCancel and the no-op's block: after the restart the Canceled report
    names the client's cancel (11 = its ClOrdID, 41 = the order's), as it would have without the crash."""
    b = make_bridge()
    c = warmed_up_client(b, tmp_path / "client", cl_ord_id)
    devnet.rpc("evm_setAutomine", [False])
    try:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
        assert c.receive(30, "8")[150] == "0"
        order_id = order_id_of(b.journal_url, cl_ord_id)
        wait_node_has(devnet, b.journal_url, order_id, "swap")
        c.send(order_cancel_request(f"{cl_ord_id}-c", cl_ord_id, side="2", symbol="WETH/USDC"))
        pending = c.receive(30, "8")
        assert (pending[150], pending[11], pending[41]) == ("6", f"{cl_ord_id}-c", cl_ord_id)
        noop = wait_node_has(devnet, b.journal_url, order_id, "cancel")
        b.kill9()
        c.stop()
        b = make_bridge()
        c = persistent_client(b, tmp_path / "client")
        devnet.rpc("evm_mine")
        done = c.reports_until_terminal(f"{cl_ord_id}-c", timeout=60)[-1]
    finally:
        c.stop()
        devnet.rpc("evm_setAutomine", [True])
    assert (done[150], done[39], done[11], done[41], done[14]) == ("4", "4", f"{cl_ord_id}-c", cl_ord_id, "0")
    assert done[20001] == noop.tx_hash


def client3(b: BridgeProcess, path) -> FixClient:
    """CLIENT3: wallet #3, approval_policy 'exact' (every order sends its own approval first)."""
    return FixClient("127.0.0.1", b.port, "CLIENT3", "FIXBRIDGE", data_dir=path, reset_seq=False).start()


S3 = "FIX.4.4:FIXBRIDGE->CLIENT3"


def test_cancel_of_an_order_waiting_for_its_approval_survives_a_kill_9(make_bridge, devnet, tmp_path, cl_ord_id):
    """CLIENT3's order sends its approval and its swap right behind it; with mining off both wait
    in the mempool and the order is still PendingNew (its New follows the approval). A cancel then
    races a no-op against the swap; after a kill -9 the journal still has both, and once mined the
    client gets the New, then Canceled naming its cancel, and no swap ran."""
    b = make_bridge()
    c = client3(b, tmp_path / "c3")
    devnet.rpc("evm_setAutomine", [False])
    try:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
        order_id = order_id_of(b.journal_url, cl_ord_id, S3)
        wait_node_has(devnet, b.journal_url, order_id, "swap")  # sent behind its approval, no waiting
        c.send(order_cancel_request(f"{cl_ord_id}-c", cl_ord_id, side="2", symbol="WETH/USDC"))
        wait_node_has(devnet, b.journal_url, order_id, "cancel")
        b.kill9()
        c.stop()
        b = make_bridge()
        c = client3(b, tmp_path / "c3")
    finally:
        devnet.rpc("evm_setAutomine", [True])
    try:
        devnet.rpc("evm_mine")
        (done,) = c.reports_until_terminal(f"{cl_ord_id}-c", timeout=60)  # 11 = the cancel's ClOrdID
    finally:
        c.stop()
    assert (done[150], done[39], done[11], done[41], done[14]) == ("4", "4", f"{cl_ord_id}-c", cl_ord_id, "0"), done.raw
    j = Journal(b.journal_url)
    try:
        txs = {t.purpose: t.status for t in j.transactions_for(order_id)}
        assert txs == {"approve": "mined", "swap": "replaced", "cancel": "mined"}, txs
        moves = [(e.from_status, e.to_status) for e in j.events(order_id) if e.from_status is not e.to_status
                 and e.from_status is not None]
        assert moves == [(OrdStatus.PENDING_NEW, OrdStatus.NEW), (OrdStatus.NEW, OrdStatus.CANCELED)], moves
    finally:
        j.close()


def test_kill_9_between_a_pipelined_approval_and_its_swap(make_bridge, devnet, tmp_path, cl_ord_id):
    """kill -9 right after an order's approval was sent, before its swap was signed, mining off.
    The restarted bridge tracks the journaled approval again and sends the swap right behind it (not
    a second approval): the approval and the swap land in one block, and the client gets New, then
    Trade."""
    b = make_bridge(crash_at="after_approval")
    c = client3(b, tmp_path / "c3")
    devnet.rpc("evm_setAutomine", [False])
    try:
        nonce0 = tx_count(devnet.rpc_url, ADDR[3])
        # More than any allowance an earlier test left (an 'exact' approval whose swap was canceled).
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.05"), tif="3"))
        order_id = order_id_of(b.journal_url, cl_ord_id, S3)
        assert eventually(lambda: b.proc.poll() is not None, bool, timeout=20.0), "no crash after the approval"
        c.stop()
        b = make_bridge()
        c = client3(b, tmp_path / "c3")
        wait_node_has(devnet, b.journal_url, order_id, "swap")
    finally:
        devnet.rpc("evm_setAutomine", [True])
    try:
        devnet.rpc("evm_mine")
        reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    finally:
        c.stop()
    assert [(m[150], m[39]) for m in reports] == [("0", "0"), ("F", "2")], [m.raw for m in reports]
    j = Journal(b.journal_url)
    try:
        txs = j.transactions_for(order_id)
        assert sorted((t.purpose, t.nonce, t.status) for t in txs) == [
            ("approve", nonce0, "mined"), ("swap", nonce0 + 1, "mined")]
        assert {j.receipt(t.tx_hash).block_number for t in txs} == {int(reports[-1][20002])}
    finally:
        j.close()


# Last in this module: it moves the chain's clock two minutes ahead of the wall clock, past the
# default deadline of any order a later test would send on this devnet.
def test_stuck_swap_recovered_after_kill_9_expires_at_its_journaled_deadline(make_bridge, devnet, tmp_path, cl_ord_id):
    """A swap that cannot be mined (the base fee is over what the chain's ceiling lets it bid)
    survives a kill -9; after the restart its deadline is the journaled one, not a new plan's: once
    the chain passes it, a no-op takes the nonce and the order ends Expired."""
    gwei = 10**9
    b = make_bridge()
    c = warmed_up_client(b, tmp_path / "client", cl_ord_id)
    devnet.rpc("evm_setAutomine", [False])
    try:
        sent_at = int(time.time())
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))  # deadline: sent + 120 s
        swap = wait_node_has(devnet, b.journal_url, order_id_of(b.journal_url, cl_ord_id), "swap")
        b.kill9()
        c.stop()
        time.sleep(4)  # a re-planned deadline would now be 4 s later than the journaled one
        nonce0 = tx_count(devnet.rpc_url, ADDR[1])
        b = make_bridge()
        c = persistent_client(b, tmp_path / "client")
        devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(5000 * gwei)])  # over the devnet's 500 gwei ceiling
        devnet.rpc("evm_setNextBlockTimestamp", [sent_at + 122])  # past the journaled deadline, not a new one
        devnet.rpc("evm_mine")
        noop = wait_node_has(devnet, b.journal_url, swap.order_id, "cancel")
        devnet.rpc("evm_mine")
        reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    finally:
        c.stop()
        devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(gwei)])
        devnet.rpc("evm_setAutomine", [True])
    last = reports[-1]
    assert (last[150], last[39], last[14]) == ("C", "C", "0") and "deadline passed" in last[58], last.raw
    assert last[20001] == noop.tx_hash and tx_count(devnet.rpc_url, ADDR[1]) == nonce0 + 1
    assert devnet.rpc("eth_getTransactionReceipt", [swap.tx_hash]) is None  # the swap never ran
