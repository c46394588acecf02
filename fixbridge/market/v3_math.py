"""Uniswap V3's swap arithmetic, ported from v3-core 1.0 (TickMath, FullMath, SqrtPriceMath,
SwapMath, LiquidityMath, TickBitmap, UniswapV3Pool.swap): Python's unbounded integers with each
library's rounding and each require() kept, so a quote here equals the pool's (and QuoterV2's) to
the unit. Pure functions; the pool's state comes in as arguments."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple, Sequence

MIN_TICK, MAX_TICK = -887272, 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
Q96 = 1 << 96
_U256 = 1 << 256
_U160_MAX = (1 << 160) - 1
_U128_MAX = (1 << 128) - 1
_I256_MAX = (1 << 255) - 1


class SwapFailed(ArithmeticError):
    """The pool would revert (the message is the contract's, where it has one)."""


# ---- FullMath, UnsafeMath -------------------------------------------------------------------
def mul_div(a: int, b: int, d: int) -> int:
    """floor(a*b/d); reverts (here: raises) when d is 0 or the result needs more than 256 bits."""
    if d == 0:
        raise SwapFailed("mulDiv by zero")
    r = a * b // d
    if r >= _U256:
        raise SwapFailed("mulDiv overflow")
    return r


def mul_div_rounding_up(a: int, b: int, d: int) -> int:
    r = mul_div(a, b, d)
    if (a * b) % d:
        if r >= _U256 - 1:
            raise SwapFailed("mulDivRoundingUp overflow")
        r += 1
    return r


def div_rounding_up(x: int, y: int) -> int:
    return -(-x // y)


# ---- TickMath -------------------------------------------------------------------------------
_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A), (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0), (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0), (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053), (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54), (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9), (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5), (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6), (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604), (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


def sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) * 2^96, rounded up as the contract."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise SwapFailed("T")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 1 << 128
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = (_U256 - 1) // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is <= the price. The
    contract finds it by a log2 approximation proven exact; a binary search over
    sqrt_ratio_at_tick gives the same tick by definition."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise SwapFailed("R")
    lo, hi = MIN_TICK, MAX_TICK
    while lo < hi:  # ratio(lo) <= price < ratio(hi + 1)
        mid = (lo + hi + 1) // 2
        if sqrt_ratio_at_tick(mid) <= sqrt_price_x96:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ---- SqrtPriceMath --------------------------------------------------------------------------
def _next_from_amount0_rounding_up(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if amount == 0:
        return sqrt_p
    numerator1 = liquidity << 96
    product = amount * sqrt_p
    if add:
        if product < _U256 and numerator1 + product < _U256:  # no overflow in the contract
            return mul_div_rounding_up(numerator1, sqrt_p, numerator1 + product)
        return div_rounding_up(numerator1, numerator1 // sqrt_p + amount)
    if product >= _U256 or numerator1 <= product:
        raise SwapFailed("getNextSqrtPriceFromAmount0RoundingUp")
    r = mul_div_rounding_up(numerator1, sqrt_p, numerator1 - product)
    if r > _U160_MAX:
        raise SwapFailed("toUint160")
    return r


def _next_from_amount1_rounding_down(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if add:
        r = sqrt_p + (amount << 96) // liquidity
        if r > _U160_MAX:
            raise SwapFailed("toUint160")
        return r
    quotient = div_rounding_up(amount << 96, liquidity)
    if sqrt_p <= quotient:
        raise SwapFailed("getNextSqrtPriceFromAmount1RoundingDown")
    return sqrt_p - quotient


def next_sqrt_price_from_input(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    if sqrt_p <= 0 or liquidity <= 0:
        raise SwapFailed("getNextSqrtPriceFromInput")
    if zero_for_one:
        return _next_from_amount0_rounding_up(sqrt_p, liquidity, amount_in, True)
    return _next_from_amount1_rounding_down(sqrt_p, liquidity, amount_in, True)


def next_sqrt_price_from_output(sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    if sqrt_p <= 0 or liquidity <= 0:
        raise SwapFailed("getNextSqrtPriceFromOutput")
    if zero_for_one:
        return _next_from_amount1_rounding_down(sqrt_p, liquidity, amount_out, False)
    return _next_from_amount0_rounding_up(sqrt_p, liquidity, amount_out, False)


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a <= 0:
        raise SwapFailed("getAmount0Delta")
    numerator1, numerator2 = liquidity << 96, sqrt_b - sqrt_a
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_b), sqrt_a)
    return mul_div(numerator1, numerator2, sqrt_b) // sqrt_a


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_b - sqrt_a, Q96)
    return mul_div(liquidity, sqrt_b - sqrt_a, Q96)


# ---- SwapMath -------------------------------------------------------------------------------
class Step(NamedTuple):
    sqrt_next: int
    amount_in: int
    amount_out: int
    fee_amount: int


def compute_swap_step(sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int,
                      fee_pips: int) -> Step:
    """SwapMath.computeSwapStep: amount_remaining > 0 is an exact input, < 0 an exact output."""
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        less_fee = mul_div(amount_remaining, 1_000_000 - fee_pips, 1_000_000)
        amount_in = (amount0_delta(sqrt_target, sqrt_current, liquidity, True) if zero_for_one
                     else amount1_delta(sqrt_current, sqrt_target, liquidity, True))
        sqrt_next = (sqrt_target if less_fee >= amount_in
                     else next_sqrt_price_from_input(sqrt_current, liquidity, less_fee, zero_for_one))
    else:
        amount_out = (amount1_delta(sqrt_target, sqrt_current, liquidity, False) if zero_for_one
                      else amount0_delta(sqrt_current, sqrt_target, liquidity, False))
        sqrt_next = (sqrt_target if -amount_remaining >= amount_out
                     else next_sqrt_price_from_output(sqrt_current, liquidity, -amount_remaining, zero_for_one))
    at_target = sqrt_target == sqrt_next
    if zero_for_one:
        if not (at_target and exact_in):
            amount_in = amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (at_target and not exact_in):
            amount_out = amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (at_target and exact_in):
            amount_in = amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (at_target and not exact_in):
            amount_out = amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != sqrt_target:
        fee_amount = amount_remaining - amount_in  # what is left of the input is all fee
    else:
        fee_amount = mul_div_rounding_up(amount_in, fee_pips, 1_000_000 - fee_pips)
    return Step(sqrt_next, amount_in, amount_out, fee_amount)


# ---- TickBitmap over a sorted list of initialized ticks -------------------------------------
def next_initialized_tick_within_one_word(ticks: Sequence[int], tick: int, spacing: int,
                                          lte: bool) -> tuple[int, bool]:
    """TickBitmap.nextInitializedTickWithinOneWord on `ticks`, the pool's initialized ticks in
    ascending order. The pool steps to a word's edge even where no tick is initialized, and each
    step rounds on its own: stepping as the contract does is what makes the quote exact."""
    compressed = tick // spacing  # Python floors toward -inf, as the contract's `compressed--`
    if lte:
        word_start = compressed - (compressed % 256)
        i = bisect_right(ticks, compressed * spacing) - 1  # the highest initialized tick <= compressed
        if i >= 0 and ticks[i] >= word_start * spacing:
            return ticks[i], True
        return word_start * spacing, False
    nxt = compressed + 1
    word_end = nxt - (nxt % 256) + 255
    i = bisect_left(ticks, nxt * spacing)
    if i < len(ticks) and ticks[i] <= word_end * spacing:
        return ticks[i], True
    return word_end * spacing, False


# ---- UniswapV3Pool.swap ---------------------------------------------------------------------
class SwapResult(NamedTuple):
    amount0: int          # into the pool (+) or out of it (-), as the pool's Swap event
    amount1: int
    sqrt_price_x96: int   # after the swap
    tick: int
    liquidity: int
    ticks_crossed: int    # initialized ticks crossed


def swap(*, sqrt_price_x96: int, tick: int, liquidity: int, fee: int, spacing: int,
         ticks: Sequence[int], liquidity_net: dict[int, int], zero_for_one: bool, amount_specified: int,
         sqrt_price_limit_x96: int) -> SwapResult:
    """The pool's swap loop without the transfers: amount_specified > 0 exact input, < 0 exact
    output; `ticks` the initialized ticks ascending, `liquidity_net` theirs."""
    if amount_specified == 0:
        raise SwapFailed("AS")
    if zero_for_one:
        if not (MIN_SQRT_RATIO < sqrt_price_limit_x96 < sqrt_price_x96):
            raise SwapFailed("SPL")
    elif not (sqrt_price_x96 < sqrt_price_limit_x96 < MAX_SQRT_RATIO):
        raise SwapFailed("SPL")
    if abs(amount_specified) > _I256_MAX:
        raise SwapFailed("amount over int256")
    exact_input = amount_specified > 0
    remaining, calculated, crossed = amount_specified, 0, 0
    while remaining != 0 and sqrt_price_x96 != sqrt_price_limit_x96:
        start = sqrt_price_x96
        tick_next, initialized = next_initialized_tick_within_one_word(ticks, tick, spacing, zero_for_one)
        tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
        sqrt_next_tick = sqrt_ratio_at_tick(tick_next)
        beyond = sqrt_next_tick < sqrt_price_limit_x96 if zero_for_one else sqrt_next_tick > sqrt_price_limit_x96
        step = compute_swap_step(sqrt_price_x96, sqrt_price_limit_x96 if beyond else sqrt_next_tick,
                                 liquidity, remaining, fee)
        sqrt_price_x96 = step.sqrt_next
        if exact_input:
            remaining -= step.amount_in + step.fee_amount
            calculated -= step.amount_out
        else:
            remaining += step.amount_out
            calculated += step.amount_in + step.fee_amount
        if sqrt_price_x96 == sqrt_next_tick:
            if initialized:
                net = liquidity_net.get(tick_next, 0)
                liquidity = add_delta(liquidity, -net if zero_for_one else net)
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price_x96 != start:
            tick = tick_at_sqrt_ratio(sqrt_price_x96)
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return SwapResult(amount0, amount1, sqrt_price_x96, tick, liquidity, crossed)


def add_delta(x: int, y: int) -> int:
    """LiquidityMath.addDelta: reverts on underflow ('LS') or overflow ('LA')."""
    z = x + y
    if z < 0:
        raise SwapFailed("LS")
    if z > _U128_MAX:
        raise SwapFailed("LA")
    return z
