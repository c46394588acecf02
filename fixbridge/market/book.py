"""An AMM's book, as a ladder of sizes: for each size of the base token, the average price a
sell (bid) or buy (offer) of exactly that size gets in each pool, and the best pool's (the
aggregated level: what one order of that size would get routed to, before gas). Pure: the pools
come in, Decimals go out.

Rounding, named: a bid's price rounds DOWN and an offer's rounds UP, at PX_PLACES decimal places
(the book never shows a price better than a trade of that size gets); a trade's price and a mid
round HALF_EVEN, as the bridge's fill prices (orders/units.price).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fixbridge.market.pools import NoQuote, Pool, PoolKey
from fixbridge.market.state import Listing, Trade
from fixbridge.orders.units import PX_PLACES, from_units, price as half_even_price, to_units_exact

#: The ladder, in whole base tokens, when the instrument names none (spec: depth_sizes).
DEFAULT_SIZES = (Decimal("0.1"), Decimal("1"), Decimal("10"))

BID, OFFER = "bid", "offer"


@dataclass(frozen=True)
class Level:
    side: str              # BID or OFFER
    venue: str | None      # the pool's label (MDMkt), None: the best across pools
    position: int          # 1 = the smallest size
    size: Decimal          # base tokens
    price: Decimal         # quote per base, average over the size (bid DOWN, offer UP)


@dataclass(frozen=True)
class Print:
    """A swap in one of the instrument's pools, as a trade in the instrument."""
    tx_hash: str
    log_index: int
    block: int
    venue: str
    buy: bool              # the taker bought the base token
    size: Decimal
    price: Decimal         # HALF_EVEN
    taker: str             # the swap's recipient


def _ratio(quote_units: int, base_units: int, listing: Listing, up: bool) -> Decimal:
    """quote/base in quote per base, at PX_PLACES, rounded up or down, exactly (integers only)."""
    num = quote_units * 10 ** (listing.base_decimals + PX_PLACES)
    den = base_units * 10 ** listing.quote_decimals
    q = -(-num // den) if up else num // den
    return from_units(q, PX_PLACES)


def ladder_units(listing: Listing, sizes: tuple[Decimal, ...] | list[Decimal] = DEFAULT_SIZES) -> list[int]:
    return [to_units_exact(s, listing.base_decimals) for s in sizes]


def pool_levels(pool: Pool, listing: Listing, sizes: list[int]) -> list[Level]:
    """Bid and offer of one pool at each size it can fill in full."""
    out = []
    for i, units in enumerate(sizes, 1):
        size = from_units(units, listing.base_decimals)
        try:
            got = pool.quote_exact_in(listing.base, units).amount_out    # sell the base: quote received
            if got > 0:
                out.append(Level(BID, pool.key.label, i, size, _ratio(got, units, listing, up=False)))
        except NoQuote:
            pass
        try:
            paid = pool.quote_exact_out(listing.quote, units).amount_in  # buy the base: quote paid
            out.append(Level(OFFER, pool.key.label, i, size, _ratio(paid, units, listing, up=True)))
        except NoQuote:
            pass
    return out


def book(pools: list[Pool], listing: Listing, sizes: list[int]) -> list[Level]:
    """Every pool's levels, then the best of them per side and size (venue None)."""
    return with_best([lv for p in pools for lv in pool_levels(p, listing, sizes)])


def with_best(levels: list[Level]) -> list[Level]:
    """The best level per side and size across pools (venue None), then the pools' own."""
    best: dict[tuple[str, int], Level] = {}
    for lv in levels:
        k = (lv.side, lv.position)
        cur = best.get(k)
        if cur is None or (lv.price > cur.price if lv.side == BID else lv.price < cur.price):
            best[k] = lv
    aggregated = [Level(lv.side, None, lv.position, lv.size, lv.price) for _, lv in sorted(best.items())]
    return aggregated + levels


def mid(pool: Pool, listing: Listing) -> Decimal:
    """The pool's marginal price (before fee) in quote per base, HALF_EVEN at PX_PLACES."""
    num, den = pool.price_x()  # token1 per token0, base units
    if pool.key.token0 == listing.base:
        return half_even_price(num, listing.quote_decimals, den, listing.base_decimals)
    return half_even_price(den, listing.quote_decimals, num, listing.base_decimals)


def prints(trades: tuple[Trade, ...] | list[Trade], listing: Listing, keys: dict[str, PoolKey]) -> list[Print]:
    """The trades in the instrument's pools as prints (base size, quote per base)."""
    out = []
    for t in trades:
        key = keys.get(t.pool)
        if key is None:
            continue
        base_in_pool, quote_in_pool = (t.amount0, t.amount1) if key.token0 == listing.base else (t.amount1, t.amount0)
        if base_in_pool == 0:
            continue
        units = abs(base_in_pool)
        out.append(Print(t.tx_hash, t.log_index, t.block, key.label, base_in_pool < 0,
                         from_units(units, listing.base_decimals),
                         half_even_price(abs(quote_in_pool), listing.quote_decimals, units, listing.base_decimals),
                         t.recipient))
    return out
