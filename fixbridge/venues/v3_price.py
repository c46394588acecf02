"""Uniswap V3 price-limit arithmetic, pure: integers in, an integer sqrtPriceX96 out.

No I/O: the venue (`uniswap_v3.py`) and the order arithmetic (`orders/intent.py`) both use it, and
the unit tests check it without a chain.
"""
from __future__ import annotations

import math

from fixbridge.venues.base import Exact

MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
FEE_DENOMINATOR = 1_000_000


def ceil_sqrt_x96(num: int, den: int) -> int:
    """The least s with s^2 >= num/den * 2^192 (s = ceil(sqrt(num/den) * 2^96))."""
    x = -(-(num << 192) // den)  # s^2 is an integer, so s^2 >= num*2^192/den <=> s^2 >= ceil(...)
    s = math.isqrt(x)
    return s if s * s == x else s + 1


def floor_sqrt_x96(num: int, den: int) -> int:
    """The greatest s with s^2 <= num/den * 2^192."""
    return math.isqrt((num << 192) // den)


def sqrt_price_limit(token_in: str, token_out: str, exact: Exact, amount: int, bound: int, fee: int) -> int:
    """sqrtPriceX96 at which the pool must stop so that the last unit filled, after the fee,
    trades at the client's worst rate: token_out per token_in = bound/amount (exact input) or
    amount/bound (exact output), in base units (decimals are already in the amounts).

    A pool's price is token1 per token0. The marginal rate (token_out per gross token_in) is
    pool_rate * (1 - fee), so the pool may go to pool_rate = rate / (1 - fee):
    - token_in is token0 (zeroForOne): price = pool_rate falls as we sell; the limit is
      sqrt(rate * 1e6 / (1e6 - fee)) * 2^96 rounded UP (stops sooner: the client's favour);
    - token_in is token1: price = 1 / pool_rate rises as we sell; the limit is
      sqrt((1e6 - fee) / (rate * 1e6)) * 2^96 rounded DOWN (stops sooner).
    Clamped into the pool's valid range. A limit on the far side of the market price makes
    the pool revert with "SPL" (nothing fills: the client's price is through the market).
    """
    if exact is Exact.INPUT:
        out_units, in_units = bound, amount
    else:
        out_units, in_units = amount, bound
    if in_units <= 0:
        raise ValueError("a price limit needs a positive input (amount or bound)")
    if not 0 < fee < FEE_DENOMINATOR:
        raise ValueError(f"bad fee tier {fee}")
    num = out_units * FEE_DENOMINATOR          # pool_rate = num / den  (token_out per token_in)
    den = in_units * (FEE_DENOMINATOR - fee)
    zero_for_one = int(token_in, 16) < int(token_out, 16)
    if zero_for_one:
        limit = ceil_sqrt_x96(num, den)
    else:
        limit = MAX_SQRT_RATIO if num == 0 else floor_sqrt_x96(den, num)
    return min(max(limit, MIN_SQRT_RATIO + 1), MAX_SQRT_RATIO - 1)
