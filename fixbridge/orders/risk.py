"""Pre-trade risk: limits checked after the order is planned (so its notional and the pool price
are known) and before anything is signed. A breach is a Rejection naming the limit and the numbers.

Limits are per session, in sessions/counterparties.toml (all optional; unset = no limit):

| key | checks |
|---|---|
| `allowed_instruments` | the order's Symbol is in the list |
| `allowed_venues` | the venue the order would trade on is in the list |
| `max_order_notional` | per quote token, the most quote this order can move (its bound) |
| `max_daily_notional` | per quote token, today's (UTC) notional of the session, from the journal, plus this order |
| `max_open_orders` | the session's orders still working ahead of this one |
| `price_band_bps` | a limit price within this many bps of the pool's current price for the size |
| `max_gas_price_gwei` | the chain's current gas price |

Notional limits are keyed by quote token (USDC and WETH notionals do not add up). When a session
sets one, an order in a quote token the table does not list is refused: a limit that silently
does not apply is worse than none.

The kill switch is checked here too (`halted`): a halt of the session (its CompID) or of all
sessions, read from the journal with a short cache so `fixbridge halt` takes effect within
HALT_CACHE_SECONDS in every running bridge.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from fixbridge.orders.model import Order, OrdType, RejectReason
from fixbridge.orders.units import fmt
from fixbridge.orders.validation import Rejection

if TYPE_CHECKING:
    from fixbridge.config import Counterparty, Spec
    from fixbridge.journal import Journal

HALT_CACHE_SECONDS = 0.5
GWEI = Decimal(10) ** 9


@dataclass(frozen=True)
class TradeContext:
    """What the engine knows about an order once planned."""
    venue: str
    wallet: str
    notional: Decimal       # the most quote the order can trade (from its bound)
    pool_price: Decimal     # the venue's current price for this size, quote per base
    gas_price_wei: int


def _limit(text: str) -> Rejection:
    return Rejection(RejectReason.ORDER_EXCEEDS_LIMIT, text)


def _d(x: Decimal) -> str:
    return fmt(x) if x.is_finite() else str(x)


def comp_id_of(session_id: str) -> str:
    """QuickFIX SessionID string 'FIX.4.4:FIXBRIDGE->CLIENT1' -> 'CLIENT1'."""
    return session_id.rsplit("->", 1)[-1]


class HaltBook:
    """Active halts from the journal, re-read at most every `ttl` seconds."""

    def __init__(self, journal: "Journal", ttl: float = HALT_CACHE_SECONDS) -> None:
        self.journal, self.ttl = journal, ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._halts: list = []

    def _active(self) -> list:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.ttl:
                self._halts = self.journal.active_halts()
                self._at = now
            return self._halts

    def halt_for(self, session_id: str):
        """The halt that stops this session (its own first, then an all-sessions halt), or None."""
        comp = comp_id_of(session_id)
        halts = self._active()
        return (next((h for h in halts if h.scope == comp), None)
                or next((h for h in halts if h.scope == "*"), None))


class PreTradeRisk:
    def __init__(self, journal: "Journal", spec: "Spec") -> None:
        self.journal, self.spec = journal, spec
        self.halts = HaltBook(journal)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _session_lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(session_id, threading.Lock())

    # ---- kill switch -----------------------------------------------------------------------
    def halted(self, session_id: str) -> Rejection | None:
        """A Rejection if trading is halted for this session; fails closed if the journal cannot say."""
        try:
            h = self.halts.halt_for(session_id)
        except Exception as e:
            return Rejection(RejectReason.EXCHANGE_CLOSED,
                             f"trading halted: the halt list cannot be read ({type(e).__name__})")
        if h is None:
            return None
        return Rejection(RejectReason.EXCHANGE_CLOSED,
                         f"trading halted for {h.what} by {h.halted_by}: {h.reason} "
                         f"(since {h.halted_at.strftime('%Y-%m-%d %H:%M:%S')}Z)")

    # ---- limits ----------------------------------------------------------------------------
    def check(self, order: Order, cp: "Counterparty", ctx: TradeContext) -> Rejection | None:
        """None if the order is within every limit, and then its notional is reserved (journaled on
        its 'risk' event) before another order of the session is checked (the engine runs one
        intake worker per wallet, so two orders of one session may be checked at once)."""
        # Limits that count other orders read the journal: what this thread queued must be
        # committed first, and this order's reservation committed before the next one is checked.
        counts = cp.max_daily_notional is not None or cp.max_open_orders is not None
        with self._session_lock(order.session_id):
            if counts:
                self.journal.flush()
            rej = self._check(order, cp, ctx)
            if rej is not None:
                return rej
            ins = self.spec.instruments[order.symbol]
            self.journal.add_event(order.order_id, "risk",
                                   f"risk checks passed: notional {_d(ctx.notional)} {ins.quote} on {ctx.venue}",
                                   detail={"decision": "pass", "notional": ctx.notional, "quote": ins.quote,
                                           "pool_price": ctx.pool_price, "gas_price_wei": ctx.gas_price_wei,
                                           "venue": ctx.venue, "wallet": ctx.wallet}, status=order.status)
            if counts:
                self.journal.flush()
            return None

    def _check(self, order: Order, cp: "Counterparty", ctx: TradeContext) -> Rejection | None:
        ins = self.spec.instruments[order.symbol]
        quote = ins.quote
        if cp.allowed_instruments is not None and order.symbol not in cp.allowed_instruments:
            return Rejection(RejectReason.BROKER_OPTION,
                             f"Risk: allowed_instruments: {order.symbol} is not allowed for this session; "
                             f"allowed: {', '.join(cp.allowed_instruments) or 'none'}")
        if cp.allowed_venues is not None and ctx.venue not in cp.allowed_venues:
            return Rejection(RejectReason.BROKER_OPTION,
                             f"Risk: allowed_venues: venue {ctx.venue} is not allowed for this session; "
                             f"allowed: {', '.join(cp.allowed_venues) or 'none'}")
        if cp.max_order_notional is not None:
            limit = cp.max_order_notional.get(quote)
            if limit is None:
                return _limit(f"Risk: max_order_notional has no limit for {quote} on this session, "
                              f"so {order.symbol} orders are refused")
            if ctx.notional > limit:
                return _limit(f"Risk: max_order_notional breached: order notional {_d(ctx.notional)} {quote} "
                              f"> limit {_d(limit)} {quote}")
        if cp.max_daily_notional is not None:
            limit = cp.max_daily_notional.get(quote)
            if limit is None:
                return _limit(f"Risk: max_daily_notional has no limit for {quote} on this session, "
                              f"so {order.symbol} orders are refused")
            midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
            symbols = [s for s, i in self.spec.instruments.items() if i.quote == quote]
            used = self.journal.session_notional_since(order.session_id, symbols, midnight,
                                                       exclude_order_id=order.order_id)
            with localcontext() as c:
                c.prec = 200
                total = used + ctx.notional
            if total > limit:
                return _limit(f"Risk: max_daily_notional breached: {_d(used)} {quote} used today + order "
                              f"{_d(ctx.notional)} {quote} = {_d(total)} {quote} > limit {_d(limit)} {quote}")
        if cp.max_open_orders is not None:
            working = self.journal.open_orders_ahead(order.session_id, order.order_id)
            if working + 1 > cp.max_open_orders:
                return _limit(f"Risk: max_open_orders breached: {working} open order(s) + this one "
                              f"> limit {cp.max_open_orders}")
        if cp.price_band_bps is not None and order.ord_type is OrdType.LIMIT and order.price is not None:
            if ctx.pool_price <= 0:
                return _limit(f"Risk: price_band_bps: the pool price for this size is {_d(ctx.pool_price)}; "
                              f"no band can be computed")
            with localcontext() as c:
                c.prec = 50
                dev_bps = abs(order.price - ctx.pool_price) * 10000 / ctx.pool_price
            if dev_bps > cp.price_band_bps:
                return _limit(f"Risk: price_band_bps breached: limit price {_d(order.price)} is "
                              f"{_d(dev_bps.quantize(Decimal('0.01')))} bps from the pool price "
                              f"{_d(ctx.pool_price)} > band {cp.price_band_bps} bps")
        if cp.max_gas_price_gwei is not None:
            with localcontext() as c:
                c.prec = 100
                gas_gwei = Decimal(ctx.gas_price_wei) / GWEI
                over = Decimal(ctx.gas_price_wei) > cp.max_gas_price_gwei * GWEI
            if over:
                return _limit(f"Risk: max_gas_price_gwei breached: gas price {_d(gas_gwei)} gwei "
                              f"> limit {_d(cp.max_gas_price_gwei)} gwei")
        return None
