"""Exact conversion between FIX decimals and on-chain integer base units.

Every conversion names its rounding rule. The rules protect the client:
- a quantity the client gives must be representable exactly in the token (no rounding: reject);
- a bound the bridge derives from a price rounds so the client never gets a worse deal than asked
  (minimum output rounds up, maximum input rounds down);
- prices reported back (LastPx, AvgPx) are exact quotients rounded half-even to PX_PLACES.
"""
from __future__ import annotations

import decimal
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

# 78 digits holds any uint256; the context never rounds an intermediate silently.
_CTX = decimal.Context(prec=100, rounding=ROUND_HALF_EVEN, traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.FloatOperation])
PX_PLACES = 10


class PrecisionError(ValueError):
    """A quantity has more decimal places than the token can hold."""


def to_units_exact(amount: Decimal, decimals: int) -> int:
    """Client-given quantity -> base units. Rule EXACT: reject rather than round."""
    scaled = _CTX.multiply(amount, Decimal(10) ** decimals)
    if scaled != scaled.to_integral_value():
        raise PrecisionError(f"{amount} has more than {decimals} decimal places")
    return int(scaled)


def to_units_ceil(amount: Decimal, decimals: int) -> int:
    """Derived minimum output -> base units. Rule CEILING (never below what the client asked)."""
    return int(_CTX.multiply(amount, Decimal(10) ** decimals).to_integral_value(rounding=ROUND_CEILING))


def to_units_floor(amount: Decimal, decimals: int) -> int:
    """Derived maximum input -> base units. Rule FLOOR (never above what the client allowed)."""
    return int(_CTX.multiply(amount, Decimal(10) ** decimals).to_integral_value(rounding=ROUND_FLOOR))


def from_units(units: int, decimals: int) -> Decimal:
    """Base units -> Decimal. Exact (a power-of-ten scale never rounds)."""
    return _plain(Decimal(units).scaleb(-decimals, _CTX))


def _plain(d: Decimal) -> Decimal:
    """Same value, no trailing zeros, never in exponent form (310, not 3.1E+2)."""
    return d.quantize(Decimal(1), context=_CTX) if d == d.to_integral_value() else d.normalize(_CTX)


def price(quote_units: int, quote_decimals: int, base_units: int, base_decimals: int) -> Decimal:
    """Quote per base from two amounts. Rule HALF_EVEN to PX_PLACES."""
    if base_units == 0:
        return Decimal(0)
    q = _CTX.divide(from_units(quote_units, quote_decimals), from_units(base_units, base_decimals))
    return _plain(q.quantize(Decimal(1).scaleb(-PX_PLACES), rounding=ROUND_HALF_EVEN, context=_CTX))


def scale_bps(units: int, bps: int, *, up: bool) -> int:
    """units × (1 ± bps/10000) in integers: up rounds up (max input), down rounds down (min output)."""
    if up:
        return -((-units * (10_000 + bps)) // 10_000)
    return (units * (10_000 - bps)) // 10_000


def fmt(d: Decimal) -> str:
    """Decimal as a FIX value: plain notation, no exponent, no trailing zeros."""
    s = format(_plain(d), "f")
    return s if s != "-0" else "0"
