"""Compliance listings: orders and fills by session, instrument, side, status and time.

Filters combine with AND. Times are ISO 8601 (``2026-01-15``, ``2026-01-15T09:30``,
``2026-01-15 09:30:00+01:00``); a time without an offset is UTC. ``since`` is inclusive,
``until`` exclusive, except that a bare date as ``until`` includes that whole day
(``--since 2026-01-15 --until 2026-01-15`` is the 15th, UTC).

Orders are filtered on ``created_at``, fills on their ``ts``. Exact values throughout:
decimals come back as ``Decimal`` and daily sums are done with ``Decimal`` on both backends.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import select

from fixbridge.journal import Journal
from fixbridge.journal import schema as db
from fixbridge.orders.model import TERMINAL, OrdStatus

ORDER_COLUMNS = ("created_at", "session_id", "cl_ord_id", "order_id", "account", "symbol", "side", "ord_type",
                 "time_in_force", "order_qty", "cash_order_qty", "price", "status", "cum_qty", "leaves_qty",
                 "avg_px", "venue", "wallet", "rej_reason", "text", "updated_at")
ORDER_TABLE_COLUMNS = ("created_at", "session_id", "cl_ord_id", "order_id", "symbol", "side", "order_qty",
                       "cash_order_qty", "price", "status", "cum_qty", "avg_px")
FILL_COLUMNS = ("ts", "session_id", "cl_ord_id", "order_id", "exec_id", "symbol", "side", "last_qty", "last_px",
                "notional", "base_units", "quote_units", "fee_eth", "tx_hash", "log_index", "block_number",
                "venue", "wallet", "order_status", "busted_at")
FILL_TABLE_COLUMNS = ("ts", "session_id", "cl_ord_id", "symbol", "side", "last_qty", "last_px", "notional",
                      "fee_eth", "block_number", "exec_id")
DAILY_COLUMNS = ("day", "session_id", "symbol", "side", "fills", "orders", "qty", "notional", "vwap", "fees_eth")

_SIDES = {"1": "BUY", "2": "SELL", "BUY": "BUY", "SELL": "SELL", "B": "BUY", "S": "SELL"}
_STATUS_BY_NAME = {s.value.lower(): s.value for s in OrdStatus}
_TERMINAL = tuple(s.value for s in TERMINAL)


class FilterError(ValueError):
    """A filter value that cannot be understood (the message says what is expected)."""


def parse_when(value: str | None, *, end: bool = False) -> datetime | None:
    """ISO date or date-time -> aware UTC datetime. With ``end``, a bare date means the next midnight."""
    if value is None or value == "":
        return None
    v = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        d = date.fromisoformat(v)
        start = datetime.combine(d, time(0), tzinfo=timezone.utc)
        return start + timedelta(days=1) if end else start
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"not an ISO date or time: {value!r} (e.g. 2026-01-15 or 2026-01-15T09:30:00Z)") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_side(value: str | None) -> str | None:
    if value is None:
        return None
    side = _SIDES.get(value.strip().upper())
    if side is None:
        raise FilterError(f"side must be buy or sell (or 1/2), got {value!r}")
    return side


def parse_statuses(value: str | None) -> tuple[str, ...] | None:
    """'Filled', 'filled,canceled', or 'open' (every non-terminal status) -> OrdStatus values."""
    if value is None:
        return None
    out: list[str] = []
    for part in value.split(","):
        p = part.strip().lower().replace("_", "").replace(" ", "")
        if p == "open":
            out += [s.value for s in OrdStatus if s.value not in _TERMINAL]
        elif p == "terminal":
            out += list(_TERMINAL)
        elif p in _STATUS_BY_NAME:
            out.append(_STATUS_BY_NAME[p])
        else:
            raise FilterError(f"unknown status {part!r}; expected one of "
                              f"{', '.join(s.value for s in OrdStatus)}, open, terminal")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Filters:
    session: str | None = None
    symbol: str | None = None
    side: str | None = None          # 'BUY' | 'SELL'
    statuses: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, *, session: str | None = None, symbol: str | None = None, side: str | None = None,
              status: str | None = None, since: str | None = None, until: str | None = None) -> Filters:
        f = cls(session, symbol, parse_side(side), parse_statuses(status), parse_when(since),
                parse_when(until, end=True))
        if f.since and f.until and f.until <= f.since:
            raise FilterError(f"--until ({until}) is not after --since ({since})")
        return f

    def _session_clause(self):
        # A session may be named in full (FIX.4.4:FIXBRIDGE->CLIENT1) or by the counterparty CompID.
        if self.session is None:
            return None
        if ":" in self.session:
            return db.Order.session_id == self.session
        return db.Order.session_id.like(f"%->{self.session}")

    def order_clauses(self) -> list:
        c = []
        if (sc := self._session_clause()) is not None:
            c.append(sc)
        if self.symbol is not None:
            c.append(db.Order.symbol == self.symbol)
        if self.side is not None:
            c.append(db.Order.side == self.side)
        if self.statuses is not None:
            c.append(db.Order.status.in_(self.statuses))
        return c


def list_orders(j: Journal, f: Filters, limit: int | None = None) -> list[dict[str, Any]]:
    """Orders matching ``f`` (created in [since, until)), oldest first."""
    q = select(db.Order).where(*f.order_clauses())
    if f.since is not None:
        q = q.where(db.Order.created_at >= f.since)
    if f.until is not None:
        q = q.where(db.Order.created_at < f.until)
    q = q.order_by(db.Order.created_at, db.Order.id)
    if limit:
        q = q.limit(limit)
    with j.read_session() as s:
        return [{c: getattr(o, c) for c in ORDER_COLUMNS} for o in s.scalars(q)]


def _mul(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200  # never rounds: the product of two journaled decimals is exact
        return db.canonical_decimal(a * b)


def list_fills(j: Journal, f: Filters, limit: int | None = None) -> list[dict[str, Any]]:
    """Fills matching ``f`` (fill time in [since, until); status is the order's), oldest first.

    ``notional`` is LastQty x LastPx, exactly. Fills a reorg removed are listed with ``busted_at``.
    """
    q = select(db.Fill, db.Order).join(db.Order, db.Order.order_id == db.Fill.order_id).where(*f.order_clauses())
    if f.since is not None:
        q = q.where(db.Fill.ts >= f.since)
    if f.until is not None:
        q = q.where(db.Fill.ts < f.until)
    q = q.order_by(db.Fill.ts, db.Fill.id)
    if limit:
        q = q.limit(limit)
    out = []
    with j.read_session() as s:
        for fill, o in s.execute(q):
            out.append({
                "ts": fill.ts, "session_id": o.session_id, "cl_ord_id": o.cl_ord_id, "order_id": o.order_id,
                "exec_id": fill.exec_id, "symbol": o.symbol, "side": o.side, "last_qty": fill.last_qty,
                "last_px": fill.last_px, "notional": _mul(fill.last_qty, fill.last_px),
                "base_units": fill.base_units, "quote_units": fill.quote_units, "fee_eth": fill.fee_eth,
                "tx_hash": fill.tx_hash, "log_index": fill.log_index, "block_number": fill.block_number,
                "venue": o.venue, "wallet": o.wallet, "order_status": o.status,
                "busted_at": getattr(fill, "busted_at", None),
            })
    return out


def daily_fills(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fills per UTC day, session, instrument and side, summed exactly (busted fills left out).

    vwap = sum(notional) / sum(qty), rounded half-even to 10 places like AvgPx.
    """
    groups: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
    with localcontext() as ctx:
        ctx.prec = 200
        for r in fills:
            if r.get("busted_at") is not None:
                continue
            key = (r["ts"].astimezone(timezone.utc).date(), r["session_id"], r["symbol"], r["side"])
            g = groups.setdefault(key, {"day": key[0], "session_id": key[1], "symbol": key[2], "side": key[3],
                                        "fills": 0, "orders": set(), "qty": Decimal(0), "notional": Decimal(0),
                                        "fees_eth": Decimal(0)})
            g["fills"] += 1
            g["orders"].add(r["order_id"])
            g["qty"] += r["last_qty"]
            g["notional"] += r["notional"]
            g["fees_eth"] += r["fee_eth"] or Decimal(0)
        out = []
        for key in sorted(groups):
            g = groups[key]
            g["orders"] = len(g["orders"])
            g["vwap"] = (g["notional"] / g["qty"]).quantize(Decimal("1e-10")) if g["qty"] else None
            for k in ("qty", "notional", "fees_eth", "vwap"):
                if g[k] is not None:
                    g[k] = db.canonical_decimal(g[k])
            out.append(g)
    return out
