"""UniswapV2Library's getAmountOut / getAmountIn, bit for bit (0.3 % fee: 997/1000)."""
from __future__ import annotations


class InsufficientLiquidity(ArithmeticError):
    """The pool cannot do the swap (the library reverts)."""


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """Output for an exact input; the router floors (integer division), as here."""
    if amount_in <= 0:
        raise InsufficientLiquidity("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise InsufficientLiquidity("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int) -> int:
    """Input for an exact output: floor + 1, as the library (never short by a unit)."""
    if amount_out <= 0:
        raise InsufficientLiquidity("UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise InsufficientLiquidity("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    if amount_out >= reserve_out:  # SafeMath sub underflows, or divides by zero
        raise InsufficientLiquidity("the pair holds less than the output asked")
    return reserve_in * amount_out * 1000 // ((reserve_out - amount_out) * 997) + 1
