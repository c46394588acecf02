"""The acknowledgement on receipt (`ack_pending_new = true`): a session that asks for it gets
PendingNew (150=A/39=A) as soon as its order is journaled, then New or Rejected as before; a
duplicate ClOrdID gets only its reject. Real bridge, real devnet, a real QuickFIX initiator."""
from __future__ import annotations

from decimal import Decimal

import pytest

from fixbridge.fix.client import FixClient, Received, new_order_single
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus
from helpers import eventually, tx_count
from security_support import start_bridge, write_sessions
from support import ADDR

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"
SESSIONS = """
[wallets.w1]
chain = "devnet"
private_key = "{k1}"
[sessions.CLIENT1]
wallets = ["w1"]
ack_pending_new = true
"""


@pytest.fixture(scope="module")
def acking(devnet, tmp_path_factory):
    d = tmp_path_factory.mktemp("ack")
    b = start_bridge(devnet, write_sessions(d / "sessions", SESSIONS, comp_ids=("CLIENT1",)), d / "state")
    j = Journal(b.journal_url)
    c = FixClient("127.0.0.1", b.port, "CLIENT1", data_dir=d / "client").start()
    yield c, j
    c.stop()
    j.close()
    b.stop()


def first_report(c: FixClient, cl: str) -> Received:
    while True:
        m = c.receive(30.0)
        if m.msg_type == "8" and m.get(11) == cl:
            return m
        assert m.msg_type == "8", m.raw


def test_pending_new_comes_first_and_only_once_the_order_is_journaled(acking, cl_ord_id):
    c, j = acking
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    ack = first_report(c, cl_ord_id)
    # Write-ahead: the order's row was committed before its acknowledgement left.
    row = j.find_order(SESSION, cl_ord_id)
    assert row is not None and row.order_id == ack[37]
    assert (ack[150], ack[39], ack[151], ack[14]) == ("A", "A", "0.01", "0"), ack.raw
    rest = c.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in rest] == [("0", "0"), ("F", "2")], [r.raw for r in rest]
    assert {r[37] for r in rest} == {ack[37]} and len({ack[17], *(r[17] for r in rest)}) == 3
    assert [e.to_status for e in j.events(row.order_id) if e.kind == "transition"] == [
        OrdStatus.PENDING_NEW, OrdStatus.NEW, OrdStatus.FILLED]
    msgs = eventually(lambda: j.fix_messages(session_id=SESSION, cl_ord_id=cl_ord_id), lambda ms: len(ms) >= 4)
    assert [(m.direction, m.msg_type, m.exec_type) for m in msgs] == [
        ("in", "D", None), ("out", "8", "A"), ("out", "8", "0"), ("out", "8", "F")]


def test_an_order_the_worker_refuses_goes_from_pending_new_to_rejected(acking, devnet, cl_ord_id):
    c, j = acking
    before = tx_count(devnet.rpc_url, ADDR[1])
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("1000"), tif="3"))  # more WETH than the wallet holds
    reports = c.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in reports] == [("A", "A"), ("8", "8")], [r.raw for r in reports]
    assert "Insufficient balance" in reports[1][58]
    assert tx_count(devnet.rpc_url, ADDR[1]) == before
    assert j.find_order(SESSION, cl_ord_id).status is OrdStatus.REJECTED


def test_a_duplicate_clordid_gets_its_reject_and_no_pending_new(acking, cl_ord_id):
    c, j = acking
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    assert [r[150] for r in c.reports_until_terminal(cl_ord_id)] == ["A", "0", "F"]
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    again = c.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39], r.get(103)) for r in again] == [("8", "8", "6")], [r.raw for r in again]
