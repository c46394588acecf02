"""Resting orders, the rules that need no chain: when an order's life ends (Day, GTD), when a
resting limit or a stop becomes marketable against the market's touch, how much of a limit the
market can fill within its price, and what an amend may change.

The engine's resting book applies these each block against the live market state; nothing here
reads the chain, the journal or FIX.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Callable
from zoneinfo import ZoneInfo

from fixbridge.orders.model import OrdType, RejectReason, Side, TimeInForce


class RestingRejection(Exception):
    """An order or amend the rules refuse: the reason code and the text the client reads."""

    def __init__(self, reason: RejectReason, text: str) -> None:
        super().__init__(text)
        self.reason, self.text = reason, text


@dataclass(frozen=True)
class DayClose:
    """When a session's trading day ends: a Day order expires at the next such moment, and a GTD
    order given only an ExpireDate (432) at that moment of the date."""
    time_zone: str = "UTC"
    at: time = time(0, 0)

    def next_after(self, now: datetime) -> datetime:
        tz = ZoneInfo(self.time_zone)
        local = now.astimezone(tz)
        close = datetime.combine(local.date(), self.at, tz)
        if close <= local:
            close = datetime.combine(local.date() + timedelta(days=1), self.at, tz)
        return close.astimezone(timezone.utc)

    def on(self, day: date) -> datetime:
        """The close that ends `day` (a close at 00:00 ends the day at the following midnight)."""
        tz = ZoneInfo(self.time_zone)
        close_day = day + timedelta(days=1) if self.at == time(0, 0) else day
        return datetime.combine(close_day, self.at, tz).astimezone(timezone.utc)


RESTS = frozenset({TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTD})


def rests(tif: TimeInForce, ord_type: OrdType) -> bool:
    """Whether the order waits in the bridge for the market (rather than being sent at once): a
    limit order for the day, until cancelled or until a time, and any stop. A market order trades at
    once whatever its TimeInForce (many OMSes send 59=0 by default)."""
    return (tif in RESTS and ord_type is OrdType.LIMIT) or ord_type in (OrdType.STOP, OrdType.STOP_LIMIT)


def expires_at(tif: TimeInForce, expire_time: datetime | None, expire_date: date | None, now: datetime,
               close: DayClose) -> datetime | None:
    """The moment a resting order expires, or None (GTC, and the immediate TIFs, whose 126 is the
    transaction's deadline, not the order's life). Raises RestingRejection for a GTD without a time
    or one already past."""
    if tif is TimeInForce.DAY:
        return close.next_after(now)
    if tif is not TimeInForce.GTD:
        return None
    if expire_time is None and expire_date is None:
        raise RestingRejection(RejectReason.OTHER, "TimeInForce 6 (GTD) needs ExpireTime (126) or ExpireDate (432)")
    at = expire_time if expire_time is not None else close.on(expire_date)  # type: ignore[arg-type]
    if at <= now:
        raise RestingRejection(RejectReason.TOO_LATE_TO_ENTER, f"GTD expiry {at.isoformat()} has already passed")
    return at


@dataclass(frozen=True)
class Touch:
    """The market's marginal prices for the order's instrument, quote per base: what the smallest
    buy pays (offer) and the smallest sell gets (bid). None where no venue quotes that side."""
    bid: Decimal | None
    offer: Decimal | None


def stop_triggered(side: Side, stop_px: Decimal, touch: Touch) -> bool:
    """A buy stop triggers when the offer rises to its stop price; a sell stop when the bid falls to it
    (the side the order would trade on, so a stop never fires on a price it could not trade at)."""
    if side is Side.BUY:
        return touch.offer is not None and touch.offer >= stop_px
    return touch.bid is not None and touch.bid <= stop_px


def limit_marketable(side: Side, limit: Decimal, touch: Touch) -> bool:
    """A resting limit can trade when the touch on its side is at or better than its price."""
    if side is Side.BUY:
        return touch.offer is not None and touch.offer <= limit
    return touch.bid is not None and touch.bid >= limit


def largest_within(most: int, within: Callable[[int], bool], least: int = 1) -> int:
    """The largest amount in [least, most] that `within` accepts, for a `within` that is monotone over
    that range (true up to some size, false above it), as an AMM's average price is in the size:
    bisection, exact on integers. 0 when not even `least` is within. (Below a sensible `least` an AMM's
    price is not monotone: the pool rounds a few base units' cost up to a whole unit of the other token.)"""
    least = max(1, least)
    if most < least or not within(least):
        return 0
    if within(most):
        return most
    lo, hi = least, most  # within(lo), not within(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if within(mid):
            lo = mid
        else:
            hi = mid
    return lo


def size_within_limit(side: Side, limit: Decimal, most: int, base_decimals: int, quote_decimals: int,
                      other_side: Callable[[int], int | None], least: int = 1) -> int:
    """The most base units (from `least` up to `most`) a venue fills at an average price no worse than
    `limit` (quote per base): for a buy, `other_side(n)` is the quote units n base units cost; for a
    sell, the quote units they fetch; None when the venue cannot do n at all. Compared in integers,
    exactly: quote × 10^bd against limit × n × 10^qd."""
    lim = Fraction(limit)
    scale_q, scale_b = 10 ** quote_decimals, 10 ** base_decimals

    def within(n: int) -> bool:
        q = other_side(n)
        if q is None:
            return False
        if side is Side.BUY:
            return q * scale_b * lim.denominator <= lim.numerator * n * scale_q
        return q * scale_b * lim.denominator >= lim.numerator * n * scale_q

    return largest_within(most, within, least)


@dataclass(frozen=True)
class Amend:
    """What an OrderCancelReplaceRequest (G) asks to change; None keeps the order's value."""
    order_qty: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    expire_time: datetime | None = None
    stop_px: Decimal | None = None


def check_amend(*, ord_type: OrdType, cum_qty: Decimal, resting: bool, terminal: bool, amend: Amend) -> None:
    """Raises RestingRejection when the amend cannot be taken: only a resting order changes, a new
    quantity may not go below what is already filled, a price must be positive and the TimeInForce must
    stay one that rests."""
    if terminal:
        raise RestingRejection(RejectReason.TOO_LATE_TO_ENTER, "Too late to amend: the order is done")
    if not resting:
        raise RestingRejection(RejectReason.OTHER, "Only a resting order (Day, GTC, GTD, stop) can be amended; "
                                                   "this one is already on its way to the chain")
    if amend.order_qty is not None:
        if not amend.order_qty.is_finite() or amend.order_qty <= 0:
            raise RestingRejection(RejectReason.INCORRECT_QUANTITY, f"OrderQty must be positive, got {amend.order_qty}")
        if amend.order_qty <= cum_qty:
            raise RestingRejection(RejectReason.INCORRECT_QUANTITY,
                                   f"OrderQty {amend.order_qty} is not above the {cum_qty} already filled")
    for name, value in (("Price", amend.price), ("StopPx", amend.stop_px)):
        if value is not None and (not value.is_finite() or value <= 0):
            raise RestingRejection(RejectReason.OTHER, f"{name} must be positive, got {value}")
    if amend.price is not None and ord_type in (OrdType.MARKET, OrdType.STOP):
        raise RestingRejection(RejectReason.OTHER, f"A {ord_type.value.lower()} order has no Price (44) to amend")
    if amend.time_in_force is not None and amend.time_in_force not in RESTS:
        raise RestingRejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                               f"TimeInForce {amend.time_in_force.value} does not rest; amend to Day, GTC or GTD")
