"""Uniswap V3's price limit without a chain (fixbridge/venues/v3_price.py): the pool stops where the
last unit filled, after the fee, trades at the client's worst rate, rounded so it stops sooner."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from fixbridge.venues.base import Exact
from fixbridge.venues.v3_price import (FEE_DENOMINATOR, MAX_SQRT_RATIO, MIN_SQRT_RATIO, ceil_sqrt_x96, floor_sqrt_x96,
                                       sqrt_price_limit)

unit = settings(max_examples=300, deadline=None)
LOW, HIGH = "0x" + "11" * 20, "0x" + "ee" * 20   # LOW is token0 of the pair
E18, E6 = 10**18, 10**6
amounts = st.integers(min_value=1, max_value=10**30)
fees = st.sampled_from([100, 500, 3000, 10000])


@unit
@given(num=st.integers(min_value=0, max_value=10**40), den=st.integers(min_value=1, max_value=10**40))
def test_square_roots_round_the_named_way(num, den):
    s = ceil_sqrt_x96(num, den)
    assert s * s * den >= num << 192 and (s == 0 or (s - 1) * (s - 1) * den < num << 192)
    f = floor_sqrt_x96(num, den)
    assert f * f * den <= num << 192 < (f + 1) * (f + 1) * den


@unit
@given(amount=amounts, bound=amounts, fee=fees, exact=st.sampled_from(Exact))
def test_the_limit_stops_the_pool_no_later_than_the_clients_rate(amount, bound, fee, exact):
    out_units, in_units = (bound, amount) if exact is Exact.INPUT else (amount, bound)
    # pool_rate (token_out per gross token_in, before the fee) the last unit may trade at: num/den
    num, den = out_units * FEE_DENOMINATOR, in_units * (FEE_DENOMINATOR - fee)
    # token_in is token0: the price (token1/token0 = pool_rate) falls as we sell; the limit rounds up
    s = sqrt_price_limit(LOW, HIGH, exact, amount, bound, fee)
    assert MIN_SQRT_RATIO < s < MAX_SQRT_RATIO
    if MIN_SQRT_RATIO + 1 < s < MAX_SQRT_RATIO - 1:  # not clamped
        assert s * s * den >= num << 192 > (s - 1) * (s - 1) * den
    # token_in is token1: the price (1 / pool_rate) rises as we sell; the limit rounds down
    s = sqrt_price_limit(HIGH, LOW, exact, amount, bound, fee)
    assert MIN_SQRT_RATIO < s < MAX_SQRT_RATIO
    if MIN_SQRT_RATIO + 1 < s < MAX_SQRT_RATIO - 1:
        assert s * s * num <= den << 192 < (s + 1) * (s + 1) * num


@pytest.mark.parametrize("exact", [Exact.INPUT, Exact.OUTPUT])
@pytest.mark.parametrize("fee", [500, 3000])
def test_weth_usdc_at_2950(exact, fee):
    # the case test_venue_uniswap_v3 checks on chain: 2950.0000001 USDC per WETH at the margin
    weth_units, usdc_units = 7 * E18, 20_650 * E6 + 1
    sell = (weth_units, usdc_units) if exact is Exact.INPUT else (usdc_units, weth_units)
    s = sqrt_price_limit(LOW, HIGH, exact, *sell, fee)   # WETH (token0) in
    num, den = usdc_units * 10**6, weth_units * (10**6 - fee)
    assert s * s * den >= num << 192 > (s - 1) * (s - 1) * den
    buy = (usdc_units, weth_units) if exact is Exact.INPUT else (weth_units, usdc_units)
    s = sqrt_price_limit(HIGH, LOW, exact, *buy, fee)    # USDC (token1) in
    num, den = usdc_units * (10**6 - fee), weth_units * 10**6
    assert s * s * den <= num << 192 < (s + 1) * (s + 1) * den


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        sqrt_price_limit(LOW, HIGH, Exact.INPUT, 0, 1, 3000)
    with pytest.raises(ValueError):
        sqrt_price_limit(LOW, HIGH, Exact.INPUT, 1, 1, 0)
