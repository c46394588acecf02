"""Orders and their events: the order's row and its append-only trail."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fixbridge.orders.model import (
    Order,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)

from . import schema as db
from .core import JournalCore
from .resting import RestingRecords, RetiredClOrdIDUsed
from .rows import (
    _TERMINAL_VALUES,
    DuplicateClOrdID,
    EventRow,
    OrderRow,
    _check,
    _enum_value,
    _event_row,
    _leaves,
    _now,
    _order_row,
)

_log = structlog.get_logger(__name__)

class OrderRecords:
    """The `orders` and `order_events` tables."""

    def __init__(self, journal: "JournalCore", resting: RestingRecords) -> None:
        self._j = journal
        self._resting = resting  # ClOrdIDs retired by amends: a new order may not take one

    # ---- orders

    def insert_order(self, order: Order, reason: str, *, detail: dict | None = None,
                     then: tuple[Callable[[], None], Callable[[BaseException], None]] | None = None) -> None:
        """Journal a new order and its first event (None -> order.status, ``reason``).

        Raises DuplicateClOrdID if (session_id, cl_ord_id) is already journaled; the check is the
        table's unique constraint, so it holds across threads, processes and restarts.
        With ``then=(ok, failed)`` nothing is raised or waited for: the row joins this thread's batch
        (or one of its own) and, once it is committed, ``ok()`` runs on the writer's dispatcher
        thread, or ``failed(error)`` (DuplicateClOrdID for a used ClOrdID; see batch.py).
        """
        if not order.order_id:
            raise ValueError("order.order_id must be assigned before the order is journaled")
        now = _now()
        status = OrdStatus(order.status)
        cum_qty = order.cum_qty if order.cum_qty is not None else Decimal(0)
        row = dict(
            order_id=order.order_id,
            session_id=order.session_id,
            cl_ord_id=order.cl_ord_id,
            account=order.account,
            symbol=order.symbol,
            side=Side(order.side).value,
            ord_type=OrdType(order.ord_type).value,
            time_in_force=TimeInForce(order.time_in_force).value,
            order_qty=order.order_qty,
            cash_order_qty=order.cash_order_qty,
            price=order.price,
            expire_time=order.expire_time,
            ex_destination=order.ex_destination,
            wallet=order.wallet,
            venue=order.venue,
            status=status.value,
            cum_qty=cum_qty,
            leaves_qty=_leaves(status, order.order_qty, cum_qty),
            avg_px=order.avg_px if order.avg_px is not None else Decimal(0),
            text=order.text,
            rej_reason=_enum_value(getattr(order, "rej_reason", None)),
            created_at=order.created_at or now,
            updated_at=now,
        )
        if order.resting or order.stop_px is not None:  # only resting orders carry these (a leaner hot path)
            row.update(stop_px=order.stop_px, expire_at=order.expire_at, resting=order.resting,
                       triggered=order.triggered)
        event_row = dict(order_id=order.order_id, ts=now, kind="transition", from_status=None,
                         to_status=status.value, reason=reason, detail=detail)

        prepared = self._j._prep_insert(db.Order.__table__, tuple(row))

        def op(s: Session) -> None:
            self._resting.check_not_retired(s, order.session_id, order.cl_ord_id)
            prepared.run(s, row)
            self._j._append(s, db.OrderEvent.__table__, [event_row])

        def duplicate(exc: BaseException) -> BaseException:
            if isinstance(exc, RetiredClOrdIDUsed):
                return DuplicateClOrdID(order.session_id, order.cl_ord_id, self.get_order(exc.order_id))
            prior = self.find_order(order.session_id, order.cl_ord_id) if isinstance(exc, IntegrityError) else None
            return exc if prior is None else DuplicateClOrdID(order.session_id, order.cl_ord_id, prior)

        if then is not None:
            ok, failed = then
            with self._j.batch() as b:
                b.on_outcome(b.add(op), ok, lambda exc: failed(duplicate(exc)))
            return
        try:
            self._j._apply_now(op)
        except (IntegrityError, RetiredClOrdIDUsed) as exc:
            err = duplicate(exc)
            if err is exc:
                raise
            raise err from exc

    def transition(
        self,
        order_id: str,
        to_status: OrdStatus,
        reason: str,
        *,
        cum_qty: Decimal | None = None,
        leaves_qty: Decimal | None = None,
        avg_px: Decimal | None = None,
        text: str | None = None,
        rej_reason: int | None = None,
        venue: str | None = None,
        wallet: str | None = None,
        detail: dict | None = None,
        from_status: OrdStatus | None = None,
    ) -> None:
        """Move an order to ``to_status`` and append the event (previous -> new, ``reason``) atomically.

        Only the given fields change, except leaves_qty: when not given it is re-derived by the
        domain rule (0 once terminal, else order_qty - cum_qty), so the row never contradicts
        its own status. With ``from_status`` (and leaves_qty) the caller vouches for the current
        state and the row is not read first.
        """
        to = OrdStatus(to_status)
        now = _now()
        values: dict[str, Any] = {"status": to.value, "leaves_qty": leaves_qty, "updated_at": now}
        if to.terminal:
            values["resting"] = False  # a done order waits for nothing (resting orders, migration 0007)
        for col, val in (("cum_qty", cum_qty), ("avg_px", avg_px), ("text", text), ("venue", venue),
                         ("wallet", wallet), ("rej_reason", None if rej_reason is None else int(rej_reason))):
            if val is not None:
                values[col] = val
        # The update only applies over an older state, so two threads' batches committed out of
        # order still leave the row at the latest transition (the events keep both, by time).
        prepared = self._j._order_update(tuple(values))
        values.update(order_id=order_id, now=now)
        ev = dict(order_id=order_id, ts=now, kind="transition",
                  from_status=None if from_status is None else OrdStatus(from_status).value,
                  to_status=to.value, reason=reason, detail=detail)
        known = from_status is not None and leaves_qty is not None  # the engine knows: no read
        events = db.OrderEvent.__table__

        def op(s: Session) -> None:
            if not known:
                row = self._j._order_for_update(s, order_id)
                ev["from_status"] = row.status
                if leaves_qty is None:
                    values["leaves_qty"] = _leaves(to, row.order_qty, cum_qty if cum_qty is not None else row.cum_qty)
            prepared.run(s, values)
            self._j._append(s, events, [ev])

        self._j._apply(op)

    def add_event(self, order_id: str, kind: str, reason: str, detail: dict | None = None,
                  status: OrdStatus | None = None) -> None:
        """Append a non-transition event ('quote', 'risk', 'approval', 'tx', 'note').

        from_status and to_status are both the order's current status (only the creation event
        has from_status NULL).
        """
        if kind == "transition":
            raise ValueError("use Journal.transition() to change an order's status")
        _check(kind, db.EVENT_KINDS, "kind")
        ts = _now()
        if status is not None:  # the caller knows the order's status: no read
            ev = dict(order_id=order_id, ts=ts, kind=kind, from_status=OrdStatus(status).value,
                      to_status=OrdStatus(status).value, reason=reason, detail=detail)
            self._j._apply(lambda s: self._j._append(s, db.OrderEvent.__table__, [ev]))
            return

        def op(s: Session) -> None:
            row = self._j._order_for_update(s, order_id)
            s.add(db.OrderEvent(order_id=order_id, ts=ts, kind=kind, from_status=row.status,
                                to_status=row.status, reason=reason, detail=detail))

        self._j._apply(op)

    def get_order(self, order_id: str) -> OrderRow | None:
        with self._j._read() as s:
            r = s.scalar(select(db.Order).where(db.Order.order_id == order_id))
            return None if r is None else _order_row(r)

    def get_orders(self, order_ids: list[str]) -> dict[str, OrderRow]:
        """Several orders in one read, by order_id (unknown ones are left out)."""
        if not order_ids:
            return {}
        t = db.Order.__table__
        with self._j._read() as s:
            rows = s.connection().execute(select(t).where(t.c.order_id.in_(list(order_ids))))
            return {r.order_id: _order_row(r) for r in rows}

    def find_order(self, session_id: str, cl_ord_id: str) -> OrderRow | None:
        """The order known by `cl_ord_id` on the session: now, or before an amend renamed it."""
        with self._j._read() as s:
            r = s.scalar(
                select(db.Order).where(db.Order.session_id == session_id, db.Order.cl_ord_id == cl_ord_id)
            )
            if r is not None:
                return _order_row(r)
        return self._resting.find_retired(session_id, cl_ord_id)

    def open_orders(self) -> list[OrderRow]:
        """Orders not yet Filled, Canceled, Expired or Rejected, oldest first."""
        with self._j._read() as s:
            q = select(db.Order).where(db.Order.status.not_in(_TERMINAL_VALUES)).order_by(db.Order.id)
            return [_order_row(r) for r in s.scalars(q)]

    def unreported_acks(self, since: datetime) -> set[str]:
        """Orders created since `since` that were journaled New but whose New (150=0) report has no
        journaled copy: a crash fell between the commit and the report (write-ahead committed the
        New transition with its signed swap, the process died before the report left)."""
        with self._j._read() as s:
            went_new = (select(db.OrderEvent.id).where(
                db.OrderEvent.order_id == db.Order.order_id, db.OrderEvent.kind == "transition",
                db.OrderEvent.to_status == OrdStatus.NEW.value).exists())
            acked = (select(db.FixMessage.id).where(
                db.FixMessage.order_id == db.Order.order_id, db.FixMessage.direction == "out",
                db.FixMessage.msg_type == "8", db.FixMessage.exec_type == "0").exists())
            q = select(db.Order.order_id).where(db.Order.created_at >= since, went_new, ~acked)
            return set(s.scalars(q))

    def unreported_terminal_orders(self, since: datetime) -> list[OrderRow]:
        """Terminal orders created since `since` with no outbound ExecutionReport carrying their
        final OrdStatus: a crash fell between journaling the outcome and sending its report."""
        codes = {OrdStatus.FILLED.value: "2", OrdStatus.CANCELED.value: "4", OrdStatus.EXPIRED.value: "C",
                 OrdStatus.REJECTED.value: "8"}
        with self._j._read() as s:
            reported = (select(db.FixMessage.id).where(
                db.FixMessage.order_id == db.Order.order_id, db.FixMessage.direction == "out",
                db.FixMessage.msg_type == "8",
                db.FixMessage.ord_status == case(codes, value=db.Order.status)).exists())
            q = (select(db.Order).where(db.Order.status.in_(_TERMINAL_VALUES), db.Order.created_at >= since,
                                        ~reported).order_by(db.Order.id))
            return [_order_row(r) for r in s.scalars(q)]

    def events(self, order_id: str) -> list[EventRow]:
        """The order's trail, in the order it was written."""
        with self._j._read() as s:
            q = select(db.OrderEvent).where(db.OrderEvent.order_id == order_id).order_by(db.OrderEvent.id)
            return [_event_row(r) for r in s.scalars(q)]

