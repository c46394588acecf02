"""Resting orders: limit orders for the day, until cancelled or until a time (Day, GTC, GTD) and
stops (40=3, 40=4), which wait in the bridge, journaled, until the live market state meets them.

- `RestingShelf` holds them (in memory, and the `resting` flag of their journal row). The order desk
  puts an order back on it when a swap it fired ends without filling all of it, so a resting order
  is never ended by a slice that could not trade.
- `RestingBook` decides. Each block that changes an order's pools (market/state.py), a stop whose
  touch reached its StopPx triggers (a StopLimit becomes a resting limit; a Stop fires at market)
  and a limit the market can fill, in part or whole, at its price or better fires: the size is the
  most the best venue fills within the limit, computed exactly on the state's pools
  (orders/resting.py `size_within_limit`), sent as an all-or-none swap bounded by the limit. What it
  does not fill stays resting. On every tick, Day and GTD orders whose time came expire.
  Cancels (F) and amends (G) of a resting order are answered at once, here.

A fired slice goes through the wallet's intake like any order (plan, risk, funds, approval, sign,
write-ahead), is tracked, confirmed and reported like any swap; its fills add to the order's CumQty.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Callable

import structlog

from fixbridge.engine.queues import FireResting, WalletQueues
from fixbridge.journal import DuplicateClOrdID, Journal, OrderRow, Replacement
from fixbridge.orders.model import ExecEvent, Order, OrdStatus, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.resting import (Amend, RestingRejection, Touch, check_amend, expires_at, limit_marketable,
                                      rests, size_within_limit, stop_triggered)
from fixbridge.orders.units import PrecisionError, fmt, from_units, to_units_ceil, to_units_exact
from fixbridge.orders.validation import Rejection

if TYPE_CHECKING:
    from fixbridge.config import Spec
    from fixbridge.engine.desk import OrderDesk
    from fixbridge.engine.planning import Planner
    from fixbridge.market.state import BlockChange, MarketState

log = structlog.get_logger(__name__)

# A resting limit fires for a part only when the part is worth a transaction: at least this share of
# the order (or all that is left). Smaller parts wait for the market to offer more.
MIN_SLICE_SHARE = Decimal("0.01")


@dataclass(frozen=True)
class Slice:
    """What a resting order sends now: `order` is the swap to plan (its size, limit and venue), `why`
    goes to the journal."""
    order: Order
    why: str


class RestingShelf:
    """The orders waiting in the bridge, by order id, with the journal's `resting` flag kept in step."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lock = threading.RLock()
        self._orders: dict[str, Order] = {}
        self.book: "RestingBook | None" = None  # told when an order comes back, to look at it again

    @staticmethod
    def rests(order: Order) -> bool:
        return rests(order.time_in_force, order.ord_type)

    def put(self, order: Order, reason: str, *, journal: bool = True, detail: dict | None = None) -> None:
        with self.lock:
            order.resting = True
            self._orders[order.order_id] = order
        if journal:
            self.journal.set_resting(order.order_id, True, order.status, reason, expire_at=order.expire_at,
                                     triggered=order.triggered, detail=detail)

    def take(self, order_id: str) -> Order | None:
        with self.lock:
            order = self._orders.pop(order_id, None)
            if order is not None:
                order.resting = False
            return order

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def orders(self) -> list[Order]:
        with self.lock:
            return list(self._orders.values())

    def __bool__(self) -> bool:
        """Anything resting (read by the block watchers' polling: no copy, no lock)."""
        return bool(self._orders)

    def rest_again(self, order: Order, why: str) -> None:
        """A slice ended without filling the whole order: the rest waits again (no report: the
        client's last report already says New or PartiallyFilled with its LeavesQty). Journaled now,
        with the slice's fills; back on the shelf once that is committed, so the next slice counts
        them (RestingBook.returned)."""
        self.journal.set_resting(order.order_id, True, order.status, f"rests again: {why}")
        book = self.book
        if book is not None:
            self.journal.after_commit(lambda: book.returned(order))


class RestingBook:
    def __init__(self, spec: "Spec", journal: Journal, shelf: RestingShelf, desk: "OrderDesk", planner: "Planner",
                 queues: WalletQueues, market: "MarketState | None",
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.spec, self.journal, self.shelf, self.desk = spec, journal, shelf, desk
        self.planner, self.queues, self.market, self.now = planner, queues, market, now
        shelf.book = self
        if market is not None:
            market.subscribe(self.on_change)

    # ---- acceptance (an intake worker, after the order's checks) -------------------------------
    def accept(self, order: Order, reason: str, venue: str | None, wallet: str | None) -> None:
        """Acknowledge a resting order (New) and put it on the shelf; then look at it at once: a limit
        the market already meets fires now, as a marketable order would."""
        cp = self.desk.counterparty(order.session_id)
        try:
            order.expire_at = expires_at(order.time_in_force, order.expire_time, order.expire_date, self.now(),
                                         cp.trading_day())
        except RestingRejection as e:
            return self.desk.reject(order, Rejection(e.reason, e.text))
        if self.market is None:
            return self.desk.reject(order, Rejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                                                     "Resting orders need the live market state, which this bridge "
                                                     "runs without"))
        until = order.expire_at.isoformat() if order.expire_at else "cancelled"
        self.desk.transition(order, OrdStatus.NEW, f"{reason}; rests until {until}", event=ExecEvent.NEW,
                             venue=venue, wallet=wallet)
        if self.desk.take_cancel(order):  # canceled before its turn came
            return
        self.shelf.put(order, f"resting ({order.time_in_force.value}) until {until}")
        self.journal.after_commit(lambda: self.look_at([order]))

    def returned(self, order: Order) -> None:
        """A slice's rest, its rows committed: on the shelf again, unless a cancel was asked while the
        slice was on its way (then it is canceled now), and looked at again."""
        with self.shelf.lock:
            if order.status.terminal or self.desk.take_cancel(order):
                return
            self.shelf.put(order, "", journal=False)
        self.look_at([order])

    # ---- the market moved ----------------------------------------------------------------------
    def on_change(self, change: "BlockChange") -> None:
        """A block changed pools (the feed's thread): look at the orders on them."""
        assert self.market is not None
        symbols = {s for s, listing in self.market.listings.items()
                   if any(k.address in change.pools for k in listing.pools)}
        self.look_at([o for o in self.shelf.orders() if o.symbol in symbols])

    def look_at(self, orders: list[Order]) -> None:
        if not orders:
            return  # most blocks: nothing rests on the pools they changed (and no journal batch is opened)
        # One journal unit for all of them: a commit (and its fsync) per fired order held the feed's
        # thread ~6 ms an order, and each slice waited for the commits of those before it
        # (bench/resting.py: 100 orders fired over ~650 ms). The slices go to the intake once it is committed.
        with self.journal.batch():
            for order in orders:
                try:
                    self._look_at(order)
                except Exception:
                    log.exception("resting order not looked at", order_id=order.order_id)

    def _look_at(self, order: Order) -> None:
        if self.market is None:
            return
        with self.shelf.lock:
            if self.shelf.get(order.order_id) is not order:
                return  # canceled, amended into a new object, fired, or done meanwhile
            touch = self.touch(order.symbol, order.ex_destination)
            if order.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT) and not order.triggered:
                assert order.stop_px is not None
                if not stop_triggered(order.side, order.stop_px, touch):
                    return
                order.triggered = True
                self.journal.set_resting(order.order_id, True, order.status, f"stop triggered at StopPx "
                                         f"{fmt(order.stop_px)}: bid {touch.bid}, offer {touch.offer}",
                                         triggered=True, detail={"bid": str(touch.bid), "offer": str(touch.offer)})
                self.desk.send(order.session_id, self.desk.er(order, ExecEvent.TRIGGERED, text="Stop triggered"))
            piece = self.slice(order, touch)
            if piece is None:
                return
            self.shelf.take(order.order_id)
            self.journal.set_resting(order.order_id, False, order.status, f"fired: {piece.why}")
        wallet = self.planner.wallet_for(order.session_id, order.account, order.symbol)
        item = FireResting(order.order_id, order, piece.order)
        self.journal.after_commit(lambda: self.queues.put(wallet, item))

    def touch(self, symbol: str, venue: str | None = None) -> Touch:
        """The mids of the instrument's pools: a buy triggers when the cheapest is at its stop, a sell
        when the dearest is (every pool has moved through it)."""
        assert self.market is not None
        listing = self.market.listings.get(symbol)
        mids = []
        for k in (listing.pools if listing else ()):
            if venue is not None and k.venue != venue:
                continue
            try:
                num, den = self.market.pool(k.address).price_x()
            except Exception:
                continue
            if not num or not den:
                continue
            base_is_0 = listing.base == k.token0
            q, b = (num, den) if base_is_0 else (den, num)  # quote units per base unit
            mids.append(Decimal(q * 10 ** listing.base_decimals) / Decimal(b * 10 ** listing.quote_decimals))
        if not mids:
            return Touch(None, None)
        return Touch(bid=max(mids), offer=min(mids))

    def slice(self, order: Order, touch: Touch) -> Slice | None:
        """What to send now, or None to keep resting."""
        leaves = order.leaves_qty
        if leaves <= 0:
            return None
        if order.ord_type is OrdType.STOP:  # triggered: the rest at market, bounded by the session's slippage
            return Slice(replace(order, order_qty=leaves, cum_qty=Decimal(0), avg_px=Decimal(0), price=None,
                                 ord_type=OrdType.MARKET, time_in_force=TimeInForce.IOC, expire_time=None),
                         f"stop at market for {fmt(leaves)}")
        assert order.price is not None
        if not limit_marketable(order.side, order.price, touch) and touch.bid is not None:
            # The mid is not there yet; the fee makes the price worse still: nothing to try.
            if (order.side is Side.BUY and touch.offer is not None and touch.offer > order.price) or (
                    order.side is Side.SELL and touch.bid < order.price):
                return None
        best = self._best_size(order, leaves)
        if best is None:
            return None
        venue, units, base_dec = best
        size = from_units(units, base_dec)
        return Slice(replace(order, order_qty=size, cash_order_qty=None, cum_qty=Decimal(0), avg_px=Decimal(0),
                             ord_type=OrdType.LIMIT, time_in_force=TimeInForce.FOK, expire_time=None,
                             ex_destination=venue),
                     f"{fmt(size)} of {fmt(leaves)} on {venue} at {fmt(order.price)} or better")

    def _best_size(self, order: Order, leaves: Decimal) -> tuple[str, int, int] | None:
        """(venue, base units, base decimals) of the venue that fills the most within the limit."""
        assert self.market is not None and order.price is not None
        listing = self.market.listings.get(order.symbol)
        if listing is None:
            return None
        try:
            most = to_units_exact(leaves, listing.base_decimals)
            # The smallest part worth a transaction (MIN_SLICE_SHARE of the order), or all that is left.
            least = min(most, to_units_ceil((order.order_qty or leaves) * MIN_SLICE_SHARE, listing.base_decimals))
        except PrecisionError:
            return None
        best: tuple[str, int, int] | None = None
        for k in listing.pools:
            if order.ex_destination is not None and k.venue != order.ex_destination:
                continue
            try:
                pool = self.market.pool(k.address)
            except Exception:
                continue

            def other_side(n: int, pool=pool) -> int | None:
                try:
                    if order.side is Side.BUY:
                        return pool.quote_exact_out(listing.quote, n).amount_in
                    return pool.quote_exact_in(listing.base, n).amount_out
                except ArithmeticError:
                    return None

            n = size_within_limit(order.side, order.price, most, listing.base_decimals, listing.quote_decimals,
                                  other_side, least)
            if n and (best is None or n > best[1]):
                best = (k.venue, n, listing.base_decimals)
        return best

    # ---- time ----------------------------------------------------------------------------------
    def expire_due(self) -> None:
        """Day and GTD orders whose time has come expire (called on every watcher tick)."""
        now = self.now()
        for order in self.shelf.orders():
            if order.expire_at is None or order.expire_at > now:
                continue
            with self.shelf.lock:
                if self.shelf.take(order.order_id) is None:
                    continue
                what = "Day order at the session's close" if order.time_in_force is TimeInForce.DAY else "GTD"
                text = f"Expired: {what} ({order.expire_at.isoformat()})"
                self.desk.transition(order, OrdStatus.EXPIRED, text, event=ExecEvent.EXPIRED, leaves=Decimal(0),
                                     text=text)

    # ---- the client's requests (QuickFIX's thread) ---------------------------------------------
    def cancel(self, order_id: str, session_id: str, cancel_cl_ord_id: str) -> bool:
        """Cancel a resting order at once; False when it is not resting (fired, or done)."""
        with self.shelf.lock:
            order = self.shelf.take(order_id)
            if order is None:
                return False
            self.desk.transition(order, OrdStatus.CANCELED, f"canceled by request {cancel_cl_ord_id} while resting",
                                 event=ExecEvent.CANCELED, cancel_cl_ord_id=cancel_cl_ord_id, leaves=Decimal(0))
            order.cl_ord_id = cancel_cl_ord_id
            return True

    def amend(self, session_id: str, cl_ord_id: str, orig_cl_ord_id: str, row: OrderRow, amend: Amend) -> str | None:
        """OrderCancelReplaceRequest of the order journaled as `row`: the new terms, journaled, then
        150=5. Returns why not, or None."""
        order_id = row.order_id
        with self.shelf.lock:
            order = self.shelf.get(order_id)
            if order is None:
                return "Only a resting order can be amended; this one is on its way to the chain or done"
            try:
                check_amend(ord_type=order.ord_type, cum_qty=order.cum_qty, resting=True, terminal=False, amend=amend)
                tif = amend.time_in_force or order.time_in_force
                expire_at = order.expire_at
                if amend.time_in_force is not None or amend.expire_time is not None:
                    expire_at = expires_at(tif, amend.expire_time or order.expire_time, None, self.now(),
                                           self.desk.counterparty(session_id).trading_day())
            except RestingRejection as e:
                return e.text
            new = replace(order, cl_ord_id=cl_ord_id, order_qty=amend.order_qty or order.order_qty,
                          price=amend.price or order.price, time_in_force=tif, expire_at=expire_at,
                          expire_time=amend.expire_time or order.expire_time, stop_px=amend.stop_px or order.stop_px)
            leaves = (new.order_qty or Decimal(0)) - new.cum_qty
            try:
                self.journal.replace_order(row, Replacement(cl_ord_id, new.order_qty, new.price, tif, expire_at,
                                                            new.stop_px, leaves),
                                           f"replaced by {cl_ord_id}", detail={"changes": _changes(order, new)})
            except DuplicateClOrdID:
                return f"Duplicate ClOrdID {cl_ord_id!r} on this session"
            self.shelf.take(order_id)
            self.shelf.put(new, "amended", journal=False)
            self.desk.send(session_id, self.desk.er(new, ExecEvent.REPLACED, leaves=leaves,
                                                    orig_cl_ord_id=orig_cl_ord_id))
        self.journal.after_commit(lambda: self.look_at([new]))
        return None

    # ---- what the intake sends -------------------------------------------------------------------
    @staticmethod
    def as_sent(order: Order) -> Order:
        """The order as a swap would carry it, for the checks at acceptance: a stop as the market
        order it becomes, a stop limit as its limit order, the whole quantity at once."""
        kind = {OrdType.STOP: OrdType.MARKET, OrdType.STOP_LIMIT: OrdType.LIMIT}.get(order.ord_type, order.ord_type)
        return replace(order, ord_type=kind, time_in_force=TimeInForce.FOK, expire_time=None)

    def prior_units(self, order_id: str) -> tuple[int, int]:
        """(base, quote) units the order's earlier slices filled, from the journal (busted fills left out)."""
        fills = self.journal.fills_for(order_id, include_busted=False)
        return sum(f.base_units for f in fills), sum(f.quote_units for f in fills)

    # ---- start ---------------------------------------------------------------------------------
    def recover(self, orders: list[Order]) -> None:
        """The journal's resting orders, on the shelf again (and looked at, at the first block)."""
        for order in orders:
            self.shelf.put(order, "", journal=False)
        if orders:
            log.info("recovery: resting orders", count=len(orders))


def _changes(old: Order, new: Order) -> dict:
    out = {}
    for name in ("order_qty", "price", "time_in_force", "expire_at", "stop_px"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            out[name] = [str(a) if a is not None else None, str(b) if b is not None else None]
    return out
