"""Exact money: conversions between FIX decimals and on-chain base units, with named rounding."""
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from fixbridge.orders.units import (PrecisionError, fmt, from_units, price, scale_bps, to_units_ceil,
                                    to_units_exact, to_units_floor)


def test_exact_conversion_refuses_to_round():
    assert to_units_exact(D("0.5"), 18) == 5 * 10**17
    assert to_units_exact(D("1.000001"), 6) == 1_000_001
    with pytest.raises(PrecisionError):
        to_units_exact(D("1.0000001"), 6)


def test_bounds_round_in_the_clients_favour():
    assert to_units_ceil(D("1500.0000001"), 6) == 1_500_000_001   # a minimum output rounds up
    assert to_units_floor(D("1500.0000009"), 6) == 1_500_000_000  # a maximum input rounds down
    assert scale_bps(1000, 50, up=True) == 1005 and scale_bps(1001, 50, up=True) == 1007
    assert scale_bps(1000, 50, up=False) == 995 and scale_bps(1001, 50, up=False) == 995


def test_prices_are_exact_quotients_half_even():
    assert price(1_500_000_000, 6, 5 * 10**17, 18) == D("3000")
    assert price(1, 6, 3, 0) == D("0.0000003333")
    assert price(5, 0, 10**11, 0) == D("0") and price(5, 0, 2 * 10**10, 0) == D("0.0000000002")  # 2.5e-10 -> even
    assert price(0, 6, 0, 18) == 0


def test_fix_rendering_never_uses_exponents():
    assert fmt(D("1E+3")) == "1000" and fmt(D("1E-18")) == "0.000000000000000001" and fmt(D("0.500")) == "0.5"
    assert fmt(D("-0")) == "0" and str(from_units(310_000_000, 6)) == "310"


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=30))
def test_units_round_trip_exactly(units, decimals):
    assert to_units_exact(from_units(units, decimals), decimals) == units
