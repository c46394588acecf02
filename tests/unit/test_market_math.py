"""The market state's arithmetic (fixbridge.market): Uniswap V3's SwapMath and TickMath against the
vectors of v3-core's own tests (test/SwapMath.spec.ts, test/TickMath.spec.ts), the tick-bitmap walk
against a brute-force bitmap, properties of the V2 and V3 quotes (hypothesis), the pool updates a
Mint/Burn makes, and the book's named rounding. No chain: the e2e test_market_state.py shows the
same quotes equal the chain's quoters bit for bit."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import assume, given, settings, strategies as st

from fixbridge.market import v2_math, v3_math as m
from fixbridge.market.book import BID, OFFER, book, mid, prints
from fixbridge.market.pools import NoQuote, PoolKey, V2Pool, V3Pool
from fixbridge.market.state import Listing, Trade

E18 = 10**18


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """v3-core's test helper: bignumber.js (20 decimal places, half up) sqrt(r1/r0) * 2^96, floored."""
    with localcontext() as c:
        c.prec = 120
        q = Decimal(20)
        ratio = (Decimal(reserve1) / Decimal(reserve0)).quantize(Decimal(1).scaleb(-q), ROUND_HALF_UP)
        root = ratio.sqrt().quantize(Decimal(1).scaleb(-q), ROUND_HALF_UP)
        return int(root * (1 << 96))


# ---- SwapMath.spec.ts -------------------------------------------------------------------------
@pytest.mark.parametrize("price, target, liquidity, amount, fee, want", [
    (encode_price_sqrt(1, 1), encode_price_sqrt(101, 100), 2 * E18, E18, 600,
     ("target", 9975124224178055, 9925619580021728, 5988667735148)),
    (encode_price_sqrt(1, 1), encode_price_sqrt(101, 100), 2 * E18, -E18, 600,
     ("target", 9975124224178055, 9925619580021728, 5988667735148)),
    (encode_price_sqrt(1, 1), encode_price_sqrt(1000, 100), 2 * E18, E18, 600,
     (None, 999400000000000000, 666399946655997866, 600000000000000)),
    (encode_price_sqrt(1, 1), encode_price_sqrt(10000, 100), 2 * E18, -E18, 600,
     (None, 2000000000000000000, E18, 1200720432259356)),
    (417332158212080721273783715441582, 1452870262520218020823638996, 159344665391607089467575320103, -1, 1,
     (417332158212080721273783715441581, 1, 1, 1)),
    (2, 1, 1, 3915081100057732413702495386755767, 1,
     (1, 39614081257132168796771975168, 0, 39614120871253040049813)),
    (2413, 79887613182836312, 1985041575832132834610021537970, 10, 1872, (2413, 0, 0, 10)),
    (20282409603651670423947251286016, 20282409603651670423947251286016 * 11 // 10, 1024, -4, 3000,
     ("target", 26215, 0, 79)),
    (20282409603651670423947251286016, 20282409603651670423947251286016 * 9 // 10, 1024, -263000, 3000,
     ("target", 1, 26214, 1)),
], ids=["in capped", "out capped", "in fully spent", "out fully received", "out capped at desired",
        "target price 1", "all input is fee", "zero for one insufficient", "one for zero insufficient"])
def test_compute_swap_step_matches_v3_core(price, target, liquidity, amount, fee, want):
    step = m.compute_swap_step(price, target, liquidity, amount, fee)
    sqrt_q, amount_in, amount_out, fee_amount = want
    assert (step.amount_in, step.amount_out, step.fee_amount) == (amount_in, amount_out, fee_amount)
    if sqrt_q == "target":
        assert step.sqrt_next == target
    elif sqrt_q is not None:
        assert step.sqrt_next == sqrt_q
    else:  # not at the target: exactly where the whole remaining amount takes the price
        assert step.sqrt_next != target
        if amount > 0:
            assert step.sqrt_next == m.next_sqrt_price_from_input(price, liquidity, amount - fee_amount, False)
        else:
            assert step.sqrt_next == m.next_sqrt_price_from_output(price, liquidity, -amount, False)


# ---- TickMath.spec.ts -------------------------------------------------------------------------
def test_tick_math_matches_v3_core():
    assert m.sqrt_ratio_at_tick(m.MIN_TICK) == m.MIN_SQRT_RATIO == 4295128739
    assert m.sqrt_ratio_at_tick(m.MIN_TICK + 1) == 4295343490
    assert m.sqrt_ratio_at_tick(m.MAX_TICK - 1) == 1461373636630004318706518188784493106690254656249
    assert m.sqrt_ratio_at_tick(m.MAX_TICK) == m.MAX_SQRT_RATIO
    assert m.tick_at_sqrt_ratio(m.MIN_SQRT_RATIO) == m.MIN_TICK
    assert m.tick_at_sqrt_ratio(4295343490) == m.MIN_TICK + 1
    assert m.tick_at_sqrt_ratio(m.MAX_SQRT_RATIO - 1) == m.MAX_TICK - 1
    for bad in (m.MIN_SQRT_RATIO - 1, m.MAX_SQRT_RATIO):
        with pytest.raises(m.SwapFailed, match="R"):
            m.tick_at_sqrt_ratio(bad)
    with pytest.raises(m.SwapFailed, match="T"):
        m.sqrt_ratio_at_tick(m.MAX_TICK + 1)


@settings(max_examples=300, deadline=None)
@given(st.integers(m.MIN_TICK, m.MAX_TICK - 1))
def test_tick_and_sqrt_ratio_round_trip(tick):
    r = m.sqrt_ratio_at_tick(tick)
    assert m.tick_at_sqrt_ratio(r) == tick
    assert m.tick_at_sqrt_ratio(m.sqrt_ratio_at_tick(tick + 1) - 1) == tick
    assert r < m.sqrt_ratio_at_tick(tick + 1)


# ---- TickBitmap ------------------------------------------------------------------------------
def brute_next(ticks: list[int], tick: int, spacing: int, lte: bool) -> tuple[int, bool]:
    """nextInitializedTickWithinOneWord written from the contract's bit operations on a real bitmap."""
    bitmap: dict[int, int] = {}
    for t in ticks:
        c = t // spacing
        bitmap[c >> 8] = bitmap.get(c >> 8, 0) | (1 << (c % 256))
    compressed = tick // spacing
    if lte:
        word, bit = compressed >> 8, compressed % 256
        masked = bitmap.get(word, 0) & ((1 << bit) - 1 + (1 << bit))
        if masked:
            return (compressed - (bit - (masked.bit_length() - 1))) * spacing, True
        return (compressed - bit) * spacing, False
    word, bit = (compressed + 1) >> 8, (compressed + 1) % 256
    masked = bitmap.get(word, 0) & ~((1 << bit) - 1)
    if masked:
        lsb = (masked & -masked).bit_length() - 1
        return (compressed + 1 + (lsb - bit)) * spacing, True
    return (compressed + 1 + (255 - bit)) * spacing, False


@settings(max_examples=400, deadline=None)
@given(spacing=st.sampled_from([1, 10, 60, 200]), data=st.data(), lte=st.booleans())
def test_the_bitmap_walk_is_the_contracts(spacing, data, lte):
    span = 3 * 256 * spacing
    ticks = sorted(set(data.draw(st.lists(st.integers(-span, span).map(lambda t: t // spacing * spacing), max_size=12))))
    tick = data.draw(st.integers(-span - 300 * spacing, span + 300 * spacing))
    assert m.next_initialized_tick_within_one_word(ticks, tick, spacing, lte) == brute_next(ticks, tick, spacing, lte)


# ---- the pools' quotes (properties) ------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**30), st.integers(10**6, 10**30), st.integers(10**6, 10**30))
def test_v2_exact_in_and_out_agree(amount, r_in, r_out):
    out = v2_math.get_amount_out(amount, r_in, r_out)
    assume(out > 0)
    # Buying what x bought never costs more than x, but for one unit: UniswapV2Library.getAmountIn
    # adds 1 to the floor of its quotient even when the division is exact (hypothesis found
    # amount=1000000, r_in=1000000, r_out=2095020887021155: 1000001).
    assert v2_math.get_amount_in(out, r_in, r_out) <= amount + 1
    back = v2_math.get_amount_in(out, r_in, r_out)
    assert v2_math.get_amount_out(back, r_in, r_out) >= out
    with pytest.raises(v2_math.InsufficientLiquidity):
        v2_math.get_amount_in(r_out, r_in, r_out)


KEY = PoolKey("uniswap_v3", "uniswap_v3", "devnet", "0xpool", "0xaaaa", "0xbbbb", 3000, 60)


def v3_pool(price_tick: int = 0, positions=((-600, 600, 10**22), (-120, 60, 5 * 10**21), (-6000, -1200, 10**21))):
    pool = V3Pool(KEY, m.sqrt_ratio_at_tick(price_tick) + 12345, price_tick, 0)
    for lower, upper, liq in positions:
        pool = pool.position_changed(lower, upper, liq)
    return pool


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**21), st.booleans())
def test_v3_exact_out_of_an_exact_ins_output_costs_no_more(amount, zero_for_one):
    pool = v3_pool()
    token_in = KEY.token0 if zero_for_one else KEY.token1
    try:
        q = pool.quote_exact_in(token_in, amount)
    except NoQuote:
        return
    assume(q.amount_out > 0)
    back = pool.quote_exact_out(token_in, q.amount_out)
    assert back.amount_in <= amount and back.amount_out == q.amount_out
    assert (q.sqrt_price_after < pool.sqrt_price_x96) == zero_for_one  # the price moves against the taker


def test_a_swap_crosses_initialized_ticks_and_the_liquidity_follows():
    pool = v3_pool()
    assert pool.liquidity == 10**22 + 5 * 10**21
    q = pool.quote_exact_in(KEY.token0, 4 * 10**20)  # selling token0: the price falls
    r = m.swap(sqrt_price_x96=pool.sqrt_price_x96, tick=pool.tick, liquidity=pool.liquidity, fee=3000, spacing=60,
               ticks=pool.ticks, liquidity_net=pool.net, zero_for_one=True, amount_specified=4 * 10**20,
               sqrt_price_limit_x96=m.MIN_SQRT_RATIO + 1)
    # through -120 and -600 (no liquidity), to -1200 where the third position takes over
    assert q.ticks_crossed == r.ticks_crossed == 3 and r.tick < -1200 and r.liquidity == 10**21
    assert (q.amount_in, q.amount_out) == (r.amount0, -r.amount1)


def test_mint_and_burn_update_ticks_and_in_range_liquidity():
    pool = v3_pool()
    ticks, liquidity = pool.ticks, pool.liquidity
    more = pool.position_changed(-60, 120, 7)
    assert more.liquidity == liquidity + 7 and set(more.ticks) == set(ticks) | {-60, 120}
    assert more.net[-60] == 7 and more.net[120] == -7
    assert more.position_changed(-60, 120, -7) == pool  # all of it removed: the ticks are not initialized
    outside = pool.position_changed(1200, 1800, 9)
    assert outside.liquidity == liquidity  # above the price: not in range
    with pytest.raises(NoQuote):
        pool.quote_exact_out(KEY.token1, 10**40)  # more than the pool holds


# ---- the book's rounding --------------------------------------------------------------------
LISTING = Listing("WETH/USDC", "devnet", "0xaaaa", "0xbbbb", 18, 6, ())


def test_bids_round_down_offers_up_trades_half_even():
    v2 = V2Pool(PoolKey("uniswap_v2", "uniswap_v2", "devnet", "0xpair", "0xaaaa", "0xbbbb"), 1000 * E18, 3_000_000 * 10**6 + 7)
    levels = book([v2], LISTING, [E18 // 10, E18])
    bid = next(lv for lv in levels if lv.side == BID and lv.venue and lv.position == 2)
    offer = next(lv for lv in levels if lv.side == OFFER and lv.venue and lv.position == 2)
    got = v2_math.get_amount_out(E18, 1000 * E18, 3_000_000 * 10**6 + 7)
    paid = v2_math.get_amount_in(E18, 3_000_000 * 10**6 + 7, 1000 * E18)
    assert bid.price == Decimal(got * 10**10 // 10**6) / 10**10 <= Decimal(got) / 10**6
    assert offer.price == Decimal(-(-paid * 10**10 // 10**6)) / 10**10 >= Decimal(paid) / 10**6
    assert bid.price < mid(v2, LISTING) < offer.price
    best = [lv for lv in levels if lv.venue is None]
    assert {(lv.side, lv.position) for lv in best} == {(BID, 1), (BID, 2), (OFFER, 1), (OFFER, 2)}
    [p] = prints([Trade("devnet", 5, "0xtx", 3, "0xpair", -E18, 3001_000001, "0xrouter", "0xme")], LISTING,
                 {"0xpair": v2.key})
    assert (p.buy, p.size, p.price, p.taker) == (True, Decimal(1), Decimal("3001.000001"), "0xme")
