"""Resting orders in the journal, on SQLite and PostgreSQL: their resting state survives a reopen,
an amend renames the order and retires its ClOrdID for good (a NewOrderSingle reusing it is a
duplicate), and an amend to a ClOrdID already used changes nothing."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from fixbridge.journal import DuplicateClOrdID, Journal, Replacement
from fixbridge.orders.model import OrdStatus, OrdType, Order, Side, TimeInForce

from support import BACKENDS

SESSION = "FIX.4.4:BRIDGE->OMS"
EXPIRY = datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)


def resting_order(order_id: str, cl_ord_id: str, **kw) -> Order:
    fields = dict(session_id=SESSION, cl_ord_id=cl_ord_id, symbol="WETH/USDC", side=Side.BUY, ord_type=OrdType.LIMIT,
                  time_in_force=TimeInForce.DAY, order_qty=Decimal("1.5"), price=Decimal("2900.5"), order_id=order_id,
                  status=OrdStatus.NEW, resting=True, expire_at=EXPIRY)
    fields.update(kw)
    return Order(**fields)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resting_state_is_kept_across_a_reopen(backend: str, journal_url: str) -> None:
    j = Journal(journal_url)
    j.insert_order(resting_order("O1", "A"), "resting")
    j.insert_order(resting_order("O2", "B", ord_type=OrdType.STOP, price=None, stop_px=Decimal("3100"),
                                 time_in_force=TimeInForce.GTC, expire_at=None), "resting")
    j.insert_order(resting_order("O3", "C", time_in_force=TimeInForce.IOC, resting=False, expire_at=None), "immediate")
    j.close()
    j = Journal(journal_url)
    try:
        rows = {r.order_id: r for r in j.resting_orders()}
        assert sorted(rows) == ["O1", "O2"]
        assert rows["O1"].expire_at == EXPIRY and rows["O1"].time_in_force is TimeInForce.DAY
        assert rows["O2"].stop_px == Decimal("3100") and rows["O2"].ord_type is OrdType.STOP
        assert not rows["O2"].triggered
        # It fired: no longer resting; the trail says why.
        j.set_resting("O1", False, OrdStatus.NEW, "fired: offer 2899 at or below the limit", detail={"block": 7})
        j.set_resting("O2", True, OrdStatus.NEW, "stop triggered", triggered=True)
        rows = {r.order_id: r for r in j.resting_orders()}
        assert sorted(rows) == ["O2"] and rows["O2"].triggered
        assert j.events("O1")[-1].reason.startswith("fired") and j.events("O1")[-1].detail == {"block": 7}
        assert j.resting_orders(session_id="FIX.4.4:BRIDGE->OTHER") == []
    finally:
        j.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_amend_renames_the_order_and_retires_its_cl_ord_id(backend: str, journal_url: str) -> None:
    j = Journal(journal_url)
    try:
        j.insert_order(resting_order("O1", "A"), "resting")
        row = j.find_order(SESSION, "A")
        assert row is not None
        new = Replacement("A2", Decimal("2"), Decimal("2950"), TimeInForce.GTD, EXPIRY, None, Decimal("2"))
        j.replace_order(row, new, "replaced")
        now = j.find_order(SESSION, "A2")
        assert now is not None and now.order_id == "O1"
        assert (now.order_qty, now.price, now.time_in_force, now.leaves_qty) == (Decimal("2"), Decimal("2950"),
                                                                                 TimeInForce.GTD, Decimal("2"))
        # The old ClOrdID still finds the order, and is never an order's again.
        assert j.find_order(SESSION, "A").order_id == "O1"
        with pytest.raises(DuplicateClOrdID) as e:
            j.insert_order(resting_order("O9", "A"), "reuse")
        assert e.value.prior is not None and e.value.prior.order_id == "O1"
        assert j.get_order("O9") is None
        ev = j.events("O1")[-1]
        assert (ev.kind, ev.reason, ev.detail) == ("transition", "replaced", {"orig_cl_ord_id": "A", "cl_ord_id": "A2"})
    finally:
        j.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_amend_to_a_used_cl_ord_id_changes_nothing(backend: str, journal_url: str) -> None:
    j = Journal(journal_url)
    try:
        j.insert_order(resting_order("O1", "A"), "resting")
        j.insert_order(resting_order("O2", "B"), "resting")
        a = j.find_order(SESSION, "A")
        with pytest.raises(DuplicateClOrdID):  # B is another order's
            j.replace_order(a, Replacement("B", Decimal("3"), None, TimeInForce.DAY, EXPIRY, None, Decimal("3")), "replaced")
        j.replace_order(a, Replacement("A2", Decimal("3"), Decimal("1"), TimeInForce.DAY, EXPIRY, None, Decimal("3")), "replaced")
        b = j.find_order(SESSION, "B")
        with pytest.raises(DuplicateClOrdID):  # A was retired by O1's amend
            j.replace_order(b, Replacement("A", Decimal("3"), None, TimeInForce.DAY, EXPIRY, None, Decimal("3")), "replaced")
        assert j.find_order(SESSION, "B").order_qty == Decimal("1.5")
        assert j.find_order(SESSION, "A2").order_qty == Decimal("3")
        assert [e.reason for e in j.events("O2")] == ["resting"]
    finally:
        j.close()
