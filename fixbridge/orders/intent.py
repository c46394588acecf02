"""The order arithmetic, pure: how an order's intent, bound and rounding become one swap.

Functions of plain values (the order, its two tokens, the venue's quote, the session's slippage and
deadline) to frozen dataclasses. No I/O, no journal, no web3: the engine (`engine/planning.py`
`Planner.plan`) reads the chain, calls these, and journals what they decided; `tests/unit/` checks them
without a chain.

How a swap honours the order (README, "Orders"):

| order                | swap                  | bound                                          |
|----------------------|-----------------------|------------------------------------------------|
| Sell OrderQty @ P    | exact input of base   | min quote out = OrderQty × P, rounded up       |
| Buy OrderQty @ P     | exact output of base  | max quote in = OrderQty × P, rounded down      |
| Buy CashOrderQty @ P | exact input of quote  | min base out = Cash / P, rounded up            |
| Sell CashOrderQty @ P| exact output of quote | max base in = Cash / P, rounded down           |
| Market               | same shapes           | quote ∓ max_slippage_bps (min out rounds down, |
|                      |                       | max in rounds up, in base units)               |

The quantity the client gives is never rounded (rule EXACT: finer than the token's decimals is a
reject). A limit bound is rounded from the exact rational value (Fraction, never a Decimal
context that could round an intermediate), so a minimum output is never below OrderQty × P and a
maximum input never above it.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Generic, Protocol, TypeVar

from fixbridge.orders.model import Order, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.units import PrecisionError, from_units, scale_bps, to_units_exact
from fixbridge.orders.validation import Rejection
from fixbridge.venues.base import Exact, SwapIntent
from fixbridge.venues.v3_price import sqrt_price_limit


class TokenLike(Protocol):
    """What the arithmetic needs of a token (a spec's `Token` or an `Asset`)."""

    @property
    def symbol(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def decimals(self) -> int: ...


class InstrumentLike(Protocol):
    """What the sell-to-open rule needs of an instrument (a spec's `Instrument`)."""

    @property
    def security_type(self) -> str: ...

    @property
    def market(self) -> str | None: ...


T = TypeVar("T", bound=TokenLike)


class SessionTerms(Protocol):
    """What the arithmetic needs of a session's settings (a `Counterparty`)."""

    @property
    def max_slippage_bps(self) -> int: ...

    @property
    def deadline_seconds(self) -> int: ...


@dataclass(frozen=True)
class Asset:
    """A token as plain data, for callers without a spec (the unit tests)."""
    symbol: str
    address: str
    decimals: int


class Rounding(str, enum.Enum):
    """The named rule a bound was rounded with to integer base units (see units.py)."""
    CEILING = "CEILING"  # a minimum output from the client's price; a maximum input from a quote + slippage
    FLOOR = "FLOOR"      # a maximum input from the client's price; a minimum output from a quote − slippage


class NotPlannable(Exception):
    """The order cannot become a swap; `rejection` says why, as the client reads it."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.text)
        self.rejection = rejection


@dataclass(frozen=True)
class SwapShape(Generic[T]):
    """Which way the swap goes and what it fixes: decided by the side and by which quantity the
    client gave (OrderQty fixes base, CashOrderQty fixes quote), before any venue is asked."""
    token_in: T
    token_out: T
    exact: Exact
    amount: int      # base units of `fixed`, rule EXACT
    by_base: bool    # OrderQty (True) or CashOrderQty (False)
    qty: Decimal     # the client's quantity, as sent

    @property
    def fixed(self) -> T:
        """The token of `amount`: what goes in (exact input) or comes out (exact output)."""
        return self.token_in if self.exact is Exact.INPUT else self.token_out

    @property
    def other(self) -> T:
        """The token of the venue's quote and of the bound."""
        return self.token_out if self.exact is Exact.INPUT else self.token_in

    def meets(self, quoted: int, bound: int) -> bool:
        """Whether a quote honours a bound: at least the minimum out, at most the maximum in."""
        return quoted >= bound if self.exact is Exact.INPUT else quoted <= bound


@dataclass(frozen=True)
class Bound:
    """A bound in base units of `SwapShape.other`, the exact rational value it was rounded from,
    and the rule that rounded it."""
    units: int
    exact_units: Fraction
    rounding: Rounding


@dataclass(frozen=True)
class SwapTerms:
    """One order as one swap: the shape, its bound, its deadline, and whether it may fill part."""
    shape: SwapShape[TokenLike]
    bound: Bound
    deadline: int    # unix seconds
    partial: bool    # IOC: a venue with a price limit (Uniswap V3) fills what it can, up to it
    quoted: int      # the venue's quote for the other side, which a market bound comes from

    def intent(self, recipient: str) -> SwapIntent:
        s = self.shape
        return SwapIntent(s.token_in.address, s.token_out.address, s.exact, s.amount, self.bound.units, recipient,
                          self.deadline, self.partial)

    def price_limit_x96(self, fee: int) -> int | None:
        """Uniswap V3's sqrtPriceX96 limit in the fee tier `fee` (the venue picks the tier), where it
        applies: IOC only. FOK swaps with no limit and the bound as given: all or nothing."""
        if not self.partial:
            return None
        s = self.shape
        return sqrt_price_limit(s.token_in.address, s.token_out.address, s.exact, s.amount, self.bound.units, fee)


def swap_shape(order: Order, base: T, quote: T) -> SwapShape[T]:
    """Side and quantity → token in/out, exact input or output, and the amount (rule EXACT)."""
    by_base = order.order_qty is not None and order.cash_order_qty is None
    qty = order.order_qty if by_base else order.cash_order_qty
    tag = "OrderQty" if by_base else "CashOrderQty"
    if qty is None or not qty.is_finite() or qty <= 0:
        raise NotPlannable(Rejection(RejectReason.INCORRECT_QUANTITY, f"{tag} must be a positive number, got {qty}"))
    # Sell gives base; Buy gives quote. The token the client's quantity is in is the one fixed.
    token_in, token_out = (base, quote) if order.side is Side.SELL else (quote, base)
    fixed = base if by_base else quote
    exact = Exact.INPUT if fixed is token_in else Exact.OUTPUT
    try:
        amount = to_units_exact(qty, fixed.decimals)
    except PrecisionError:
        amount = 0
    if amount == 0:  # finer than the token can hold: rejected, never rounded
        raise NotPlannable(Rejection(RejectReason.INCORRECT_QUANTITY,
                                     f"{tag} {qty} is finer than {fixed.symbol}'s {fixed.decimals} decimals"))
    return SwapShape(token_in, token_out, exact, amount, by_base, qty)


def limit_bound(shape: SwapShape, limit: Decimal) -> Bound:
    """A limit order's bound from its price (quote per base), in the other token of the swap:
    OrderQty × P in quote, or Cash / P in base. A minimum output rounds up, a maximum input down."""
    if not limit.is_finite() or limit <= 0:
        raise NotPlannable(Rejection(RejectReason.OTHER, f"Price must be positive, got {limit}"))
    value = Fraction(shape.qty) * Fraction(limit) if shape.by_base else Fraction(shape.qty) / Fraction(limit)
    exact_units = value * 10 ** shape.other.decimals
    if shape.exact is Exact.INPUT:
        return Bound(math.ceil(exact_units), exact_units, Rounding.CEILING)
    return Bound(math.floor(exact_units), exact_units, Rounding.FLOOR)


def market_bound(exact: Exact, quoted: int, max_slippage_bps: int) -> Bound:
    """A market order's bound from the venue's quote and the session's slippage, in base units:
    a minimum output of quote × (1 − bps) rounds down, a maximum input of quote × (1 + bps) up."""
    up = exact is Exact.OUTPUT
    sign = 1 if up else -1
    exact_units = Fraction(quoted * (10_000 + sign * max_slippage_bps), 10_000)
    return Bound(scale_bps(quoted, max_slippage_bps, up=up), exact_units, Rounding.CEILING if up else Rounding.FLOOR)


def order_bound(order: Order, shape: SwapShape, quoted: int, max_slippage_bps: int) -> Bound:
    """The bound the swap must honour: from the limit price, or (market) from the quote. A bound
    of zero base units would let the swap give anything away (or take nothing): rejected."""
    if order.ord_type is OrdType.LIMIT:
        if order.price is None:
            raise NotPlannable(Rejection(RejectReason.OTHER, "Price (44) is required for a limit order"))
        bound = limit_bound(shape, order.price)
    else:
        bound = market_bound(shape.exact, quoted, max_slippage_bps)
    if bound.units <= 0:
        raise NotPlannable(Rejection(RejectReason.INCORRECT_QUANTITY, "The price bound rounds to zero in base units"))
    return bound


def swap_deadline(expire_time: datetime | None, now: float, deadline_seconds: int) -> int:
    """The swap's on-chain deadline: the client's ExpireTime (126), else now + the session's
    deadline_seconds (through a UTC datetime, as the journal's times are)."""
    deadline = expire_time or datetime.fromtimestamp(now + deadline_seconds, timezone.utc)
    return int(deadline.timestamp())


def swap_terms(order: Order, shape: SwapShape, quoted: int, max_slippage_bps: int, deadline: int) -> SwapTerms:
    """The whole swap of one order, given the chosen venue's quote for the other side."""
    bound = order_bound(order, shape, quoted, max_slippage_bps)
    return SwapTerms(shape, bound, deadline, fills_partially(order), quoted)


def fills_partially(order: Order) -> bool:
    """Whether the swap may fill part and leave the rest (on a venue that can stop part-way): IOC,
    and a market order whatever its TimeInForce (a Day or GTC market order trades at once, as on
    any venue; what the pool cannot give within the slippage is not left waiting)."""
    return order.time_in_force is TimeInForce.IOC or (
        order.ord_type is OrdType.MARKET and order.time_in_force in (TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTD))


def order_swap(order: Order, base: TokenLike, quote: TokenLike, quoted: int, session: SessionTerms,
               now: float) -> SwapTerms:
    """All of it in one call: (order, its tokens, the venue's quote, the session's settings, the
    time) -> the swap. The engine calls the parts (the shape first: the quote needs its amount)."""
    shape: SwapShape[TokenLike] = swap_shape(order, base, quote)
    deadline = swap_deadline(order.expire_time, now, session.deadline_seconds)
    return swap_terms(order, shape, quoted, session.max_slippage_bps, deadline)


def expected_base(shape: SwapShape, quoted: int, base: TokenLike) -> Decimal:
    """The base quantity the order should trade: OrderQty, or (CashOrderQty) the quoted base."""
    return shape.qty if shape.by_base else from_units(quoted, base.decimals)


def may_sell_to_open(order: Order, instrument: InstrumentLike, may_write_options: bool, exact: Exact,
                     venue_writes_into: bool) -> bool:
    """Whether a Sell of an option series may write (mint) what the wallet lacks: sessions allowed
    to write, exact input of the series, through the V2 pool the market's writeAndSell sells into.
    Whether it does depends on the balance (the engine reads it): held < amount."""
    return (order.side is Side.SELL and instrument.security_type == "OPT" and bool(instrument.market)
            and may_write_options and exact is Exact.INPUT and venue_writes_into)
