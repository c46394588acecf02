"""Resting orders in the journal: which orders wait in the bridge for the market, their amends
(OrderCancelReplaceRequest) and the ClOrdIDs an amend retired.

The order's row carries its resting state (orders.resting, expire_at, stop_px, triggered; migration
0007); `order_cl_ord_ids` keeps every ClOrdID an amend replaced, so a NewOrderSingle that reuses one
is a duplicate (exactly once per ClOrdID, whatever the order is called now) and a status request by
it still finds the order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fixbridge.orders.model import OrdStatus, TimeInForce

from . import schema as db
from .core import JournalCore
from .rows import _TERMINAL_VALUES, DuplicateClOrdID, JournalError, OrderRow, _now, _order_row


class RetiredClOrdIDUsed(JournalError):
    """A new order came with a ClOrdID an amend retired (raised inside the insert's own savepoint)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"ClOrdID retired by an amend of {order_id}")
        self.order_id = order_id


@dataclass(frozen=True)
class Replacement:
    """What an accepted amend changes: the new ClOrdID and the order's new terms."""
    new_cl_ord_id: str
    order_qty: Decimal | None
    price: Decimal | None
    time_in_force: TimeInForce
    expire_at: datetime | None
    stop_px: Decimal | None
    leaves_qty: Decimal


class RestingRecords:
    """Resting orders' state, amends and retired ClOrdIDs (orders' resting columns, order_cl_ord_ids)."""

    def __init__(self, journal: JournalCore) -> None:
        self._j = journal
        # Sessions with a retired ClOrdID: only their new orders pay the extra lookup. A session is
        # owned by one instance (leases), and only its owner amends, so this instance sees every one.
        self._retiring: set[str] | None = None

    def _sessions_retiring(self) -> set[str]:
        if self._retiring is None:
            with self._j._read() as s:
                self._retiring = set(s.scalars(select(db.RetiredClOrdID.session_id).distinct()))
        return self._retiring

    def check_not_retired(self, s: Session, session_id: str, cl_ord_id: str) -> None:
        """Inside an order's insert: refuse a ClOrdID an amend retired."""
        if session_id not in self._sessions_retiring():
            return
        t = db.RetiredClOrdID.__table__
        hit = s.connection().execute(select(t.c.order_id).where(t.c.session_id == session_id,
                                                                t.c.cl_ord_id == cl_ord_id)).first()
        if hit is not None:
            raise RetiredClOrdIDUsed(hit.order_id)

    def find_retired(self, session_id: str, cl_ord_id: str) -> OrderRow | None:
        """The order that was known by `cl_ord_id` before an amend renamed it."""
        with self._j._read() as s:
            q = (select(db.Order).join(db.RetiredClOrdID, db.RetiredClOrdID.order_id == db.Order.order_id)
                 .where(db.RetiredClOrdID.session_id == session_id, db.RetiredClOrdID.cl_ord_id == cl_ord_id))
            r = s.scalar(q)
            return None if r is None else _order_row(r)

    def resting_orders(self, session_id: str | None = None) -> list[OrderRow]:
        """Orders waiting in the bridge for the market, oldest first."""
        with self._j._read() as s:
            q = select(db.Order).where(db.Order.resting.is_(True), db.Order.status.not_in(_TERMINAL_VALUES))
            if session_id is not None:
                q = q.where(db.Order.session_id == session_id)
            return [_order_row(r) for r in s.scalars(q.order_by(db.Order.id))]

    def set_resting(self, order_id: str, resting: bool, status: OrdStatus, reason: str, *,
                    triggered: bool | None = None, expire_at: datetime | None = None,
                    detail: dict | None = None) -> None:
        """The order starts or stops waiting in the bridge (accepted, it fired a swap, or the swap's
        rest came back to wait); its status does not change, the trail says why."""
        values: dict[str, Any] = {"resting": resting, "updated_at": _now()}
        if triggered is not None:
            values["triggered"] = triggered
        if expire_at is not None:
            values["expire_at"] = expire_at
        ev = dict(order_id=order_id, ts=values["updated_at"], kind="note", from_status=status.value,
                  to_status=status.value, reason=reason, detail=detail)
        t = db.Order.__table__

        def op(s: Session) -> None:
            s.connection().execute(t.update().where(t.c.order_id == order_id).values(**values))
            self._j._append(s, db.OrderEvent.__table__, [ev])

        self._j._apply(op)

    def replace(self, order: OrderRow, new: Replacement, reason: str, *, detail: dict | None = None,
                then: tuple[Any, Any] | None = None) -> None:
        """Amend a resting order in one transaction: retire its ClOrdID, give it the new one and the new
        terms, and append the event. Raises DuplicateClOrdID (or hands it to `then`'s failed) when the
        new ClOrdID is already an order's, current or retired."""
        now = _now()
        orders, retired = db.Order.__table__, db.RetiredClOrdID.__table__
        values = dict(cl_ord_id=new.new_cl_ord_id, order_qty=new.order_qty, price=new.price,
                      time_in_force=new.time_in_force.value, expire_at=new.expire_at, stop_px=new.stop_px,
                      leaves_qty=new.leaves_qty, updated_at=now)
        ev = dict(order_id=order.order_id, ts=now, kind="transition", from_status=order.status.value,
                  to_status=order.status.value, reason=reason,
                  detail={"orig_cl_ord_id": order.cl_ord_id, "cl_ord_id": new.new_cl_ord_id, **(detail or {})})

        def op(s: Session) -> None:
            c = s.connection()
            used = c.execute(select(retired.c.order_id).where(retired.c.session_id == order.session_id,
                                                              retired.c.cl_ord_id == new.new_cl_ord_id)).first()
            if used is not None:
                raise DuplicateClOrdID(order.session_id, new.new_cl_ord_id)
            c.execute(retired.insert().values(session_id=order.session_id, cl_ord_id=order.cl_ord_id,
                                              order_id=order.order_id, retired_at=now))
            # The orders table's unique (session_id, cl_ord_id) refuses a ClOrdID another order holds.
            c.execute(orders.update().where(orders.c.order_id == order.order_id).values(**values))
            self._j._append(s, db.OrderEvent.__table__, [ev])
            self._sessions_retiring().add(order.session_id)

        def duplicate(exc: BaseException) -> BaseException:
            if isinstance(exc, IntegrityError) and "cl_ord_id" in str(exc):
                return DuplicateClOrdID(order.session_id, new.new_cl_ord_id)
            return exc

        if then is not None:
            ok, failed = then
            with self._j.batch() as b:
                b.on_outcome(b.add(op), ok, lambda exc: failed(duplicate(exc)))
            return
        try:
            self._j._apply_now(op)
        except IntegrityError as exc:
            err = duplicate(exc)
            if err is exc:
                raise
            raise err from exc
