"""The journal's security records (migration 0003), mixed into ``Journal``:

- kill switch: ``halt`` / ``resume`` / ``active_halts`` (table trading_halts);
- Logon authentication: ``record_logon_attempt`` / ``logon_failures_since_success`` / ``logon_attempts``;
- the FIX edge protecting itself: ``record_security_event`` / ``security_events``;
- what pre-trade risk reads: ``session_notional_since`` and ``open_orders_ahead``.

Same rules as the rest of the journal: one short transaction per call, frozen rows out, exact
numbers, aware UTC timestamps. Passwords and keys are never written here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from fixbridge.orders.model import TERMINAL, OrdStatus

from . import schema as db

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .core import JournalCore

HALT_ALL = db.HALT_ALL
FAILED_LOGON = ("bad_password", "no_password", "bad_username")
_TERMINAL_VALUES = tuple(s.value for s in TERMINAL)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class HaltRow:
    id: int
    scope: str            # a CompID, or '*' for every session
    reason: str
    halted_by: str
    halted_at: datetime
    resumed_by: str | None
    resumed_at: datetime | None

    @property
    def what(self) -> str:
        return "all sessions" if self.scope == HALT_ALL else self.scope


@dataclass(frozen=True, slots=True)
class LogonAttemptRow:
    id: int
    ts: datetime
    session_id: str
    comp_id: str
    username: str | None
    outcome: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class SecurityEventRow:
    id: int
    ts: datetime
    session_id: str
    kind: str
    reason: str
    detail: dict[str, Any] | None


def _halt_row(r: db.TradingHalt) -> HaltRow:
    return HaltRow(r.id, r.scope, r.reason, r.halted_by, r.halted_at, r.resumed_by, r.resumed_at)


def _clip(s: str | None, n: int = 200) -> str | None:
    """Client-controlled text (a Username) is stored bounded."""
    return None if s is None else s[:n]


class SecurityRecords:
    """Halts, logon attempts and security events; given the journal core whose sessions it uses."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

    # ---------------------------------------------------------------- kill switch

    def halt(self, scope: str | None, reason: str, by: str) -> HaltRow:
        """Halt one counterparty (its CompID) or, with scope None/'*', every session."""
        if not reason or not reason.strip():
            raise ValueError("a halt needs a reason")
        if not by or not by.strip():
            raise ValueError("a halt needs the name of who halted")
        row = db.TradingHalt(scope=scope or HALT_ALL, reason=reason.strip(), halted_by=by.strip(),
                             halted_at=_now())
        with self._j._write() as s:  # type: ignore[attr-defined]
            s.add(row)
            s.flush()
            return _halt_row(row)

    def resume(self, scope: str | None, by: str) -> list[HaltRow]:
        """Lift every active halt of that scope (a CompID, or None/'*' for the all-sessions halt)."""
        now = _now()
        scope = scope or HALT_ALL
        with self._j._write() as s:  # type: ignore[attr-defined]
            rows = list(s.scalars(select(db.TradingHalt).where(db.TradingHalt.scope == scope,
                                                               db.TradingHalt.resumed_at.is_(None))))
            for r in rows:
                r.resumed_at, r.resumed_by = now, by.strip()
            s.flush()
            return [_halt_row(r) for r in rows]

    def active_halts(self) -> list[HaltRow]:
        with self._j._read() as s:  # type: ignore[attr-defined]
            q = select(db.TradingHalt).where(db.TradingHalt.resumed_at.is_(None)).order_by(db.TradingHalt.id)
            return [_halt_row(r) for r in s.scalars(q)]

    def halt_history(self, limit: int = 50) -> list[HaltRow]:
        with self._j._read() as s:  # type: ignore[attr-defined]
            q = select(db.TradingHalt).order_by(db.TradingHalt.id.desc()).limit(limit)
            return [_halt_row(r) for r in s.scalars(q)]

    # ---------------------------------------------------------------- Logon attempts

    def record_logon_attempt(self, *, session_id: str, comp_id: str, username: str | None, outcome: str,
                             reason: str | None = None) -> None:
        if outcome not in db.LOGON_OUTCOMES:
            raise ValueError(f"outcome must be one of {db.LOGON_OUTCOMES}, got {outcome!r}")
        with self._j._write() as s:  # type: ignore[attr-defined]
            s.add(db.LogonAttempt(ts=_now(), session_id=session_id, comp_id=comp_id, username=_clip(username),
                                  outcome=outcome, reason=_clip(reason, 1000)))

    def logon_failures_since_success(self, comp_id: str, limit: int, after: datetime | None = None) -> list[datetime]:
        """Times of the latest `limit` failed Logons of comp_id after its last accepted one (and
        after `after`, if given), newest first."""
        with self._j._read() as s:  # type: ignore[attr-defined]
            last_ok = s.scalar(select(func.max(db.LogonAttempt.id)).where(
                db.LogonAttempt.comp_id == comp_id, db.LogonAttempt.outcome == "accepted")) or 0
            q = (select(db.LogonAttempt.ts).where(db.LogonAttempt.comp_id == comp_id, db.LogonAttempt.id > last_ok,
                                                  db.LogonAttempt.outcome.in_(FAILED_LOGON))
                 .order_by(db.LogonAttempt.id.desc()).limit(limit))
            if after is not None:
                q = q.where(db.LogonAttempt.ts > after)
            return list(s.scalars(q))

    def logon_attempts(self, comp_id: str | None = None) -> list[LogonAttemptRow]:
        q = select(db.LogonAttempt).order_by(db.LogonAttempt.id)
        if comp_id is not None:
            q = q.where(db.LogonAttempt.comp_id == comp_id)
        with self._j._read() as s:  # type: ignore[attr-defined]
            return [LogonAttemptRow(r.id, r.ts, r.session_id, r.comp_id, r.username, r.outcome, r.reason)
                    for r in s.scalars(q)]

    # ---------------------------------------------------------------- security events

    def record_security_event(self, kind: str, session_id: str, reason: str, detail: dict | None = None) -> None:
        if kind not in db.SECURITY_EVENT_KINDS:
            raise ValueError(f"kind must be one of {db.SECURITY_EVENT_KINDS}, got {kind!r}")
        with self._j._write() as s:  # type: ignore[attr-defined]
            s.add(db.SecurityEvent(ts=_now(), session_id=session_id, kind=kind, reason=reason, detail=detail))

    def last_security_event(self, session_id: str, kind: str) -> SecurityEventRow | None:
        q = (select(db.SecurityEvent).where(db.SecurityEvent.session_id == session_id, db.SecurityEvent.kind == kind)
             .order_by(db.SecurityEvent.id.desc()).limit(1))
        with self._j._read() as s:  # type: ignore[attr-defined]
            r = s.scalar(q)
            return None if r is None else SecurityEventRow(r.id, r.ts, r.session_id, r.kind, r.reason, r.detail)

    def security_events(self, session_id: str | None = None, kind: str | None = None) -> list[SecurityEventRow]:
        q = select(db.SecurityEvent).order_by(db.SecurityEvent.id)
        if session_id is not None:
            q = q.where(db.SecurityEvent.session_id == session_id)
        if kind is not None:
            q = q.where(db.SecurityEvent.kind == kind)
        with self._j._read() as s:  # type: ignore[attr-defined]
            return [SecurityEventRow(r.id, r.ts, r.session_id, r.kind, r.reason, r.detail) for r in s.scalars(q)]

    # ---------------------------------------------------------------- what pre-trade risk reads

    def session_notional_since(self, session_id: str, symbols: Iterable[str], since: datetime, *,
                               exclude_order_id: str | None = None) -> Decimal:
        """The quote notional a session has used since `since` on `symbols` (instruments that share
        one quote token), exact:

        - a terminal order counts what it traded, CumQty x AvgPx (0 if it never filled);
        - an open order counts the notional its passed risk check reserved (journaled on its
          'risk' event), or what it has traded if that is more;
        - rejected orders and orders not yet risk-checked count 0.
        """
        symbols = list(symbols)
        if not symbols:
            return Decimal(0)
        total = Decimal(0)
        with self._j._read() as s, localcontext() as ctx:  # type: ignore[attr-defined]
            ctx.prec = 200
            q = select(db.Order).where(db.Order.session_id == session_id, db.Order.created_at >= since,
                                       db.Order.symbol.in_(symbols),
                                       db.Order.status != OrdStatus.REJECTED.value)
            if exclude_order_id is not None:
                q = q.where(db.Order.order_id != exclude_order_id)
            for o in s.scalars(q):
                traded = (o.cum_qty or Decimal(0)) * (o.avg_px or Decimal(0))
                if o.status in _TERMINAL_VALUES:
                    total += traded
                    continue
                reserved = Decimal(0)
                details = s.scalars(select(db.OrderEvent.detail).where(db.OrderEvent.order_id == o.order_id,
                                                                       db.OrderEvent.kind == "risk")
                                    .order_by(db.OrderEvent.id.desc()))
                for d in details:
                    if isinstance(d, dict) and d.get("notional") is not None:
                        reserved = Decimal(d["notional"])
                        break
                total += max(reserved, traded)
        return total

    def open_orders_ahead(self, session_id: str, order_id: str) -> int:
        """The session's orders that are not terminal and arrived before `order_id`."""
        with self._j._read() as s:  # type: ignore[attr-defined]
            mine = s.scalar(select(db.Order.id).where(db.Order.order_id == order_id))
            q = select(func.count()).select_from(db.Order).where(
                db.Order.session_id == session_id, db.Order.status.not_in(_TERMINAL_VALUES),
                db.Order.order_id != order_id)
            if mine is not None:
                q = q.where(db.Order.id < mine)
            return int(s.scalar(q) or 0)
