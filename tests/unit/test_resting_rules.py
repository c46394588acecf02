"""The resting-order rules with no chain: expiry of Day and GTD orders in a session's time zone,
stop and limit triggers against the touch, the largest fill within a limit, and what an amend may change."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from fixbridge.orders.model import OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.resting import (Amend, DayClose, RestingRejection, Touch, check_amend, expires_at,
                                      largest_within, limit_marketable, rests, size_within_limit,
                                      stop_triggered)

UTC = timezone.utc
NY_5PM = DayClose("America/New_York", time(17, 0))


def test_day_order_expires_at_the_sessions_next_close() -> None:
    # 2026-12-04 15:00 UTC is 10:00 in New York (EST, UTC-5): today's 17:00 close is 22:00 UTC.
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert expires_at(TimeInForce.DAY, None, None, now, NY_5PM) == datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
    # After the close, the order lives until tomorrow's.
    late = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert expires_at(TimeInForce.DAY, None, None, late, NY_5PM) == datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    # Summer time moves the close in UTC, not in New York.
    july = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert expires_at(TimeInForce.DAY, None, None, july, NY_5PM) == datetime(2026, 7, 1, 21, 0, tzinfo=UTC)


def test_default_close_is_utc_midnight() -> None:
    now = datetime(2026, 12, 4, 23, 59, tzinfo=UTC)
    assert expires_at(TimeInForce.DAY, None, None, now, DayClose()) == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    # A GTD for a date ends at the close that ends that date: midnight after it.
    assert expires_at(TimeInForce.GTD, None, date(2026, 12, 6), now, DayClose()) == datetime(2026, 12, 7, tzinfo=UTC)


def test_gtd_takes_the_expire_time_or_the_date_close() -> None:
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    at = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
    assert expires_at(TimeInForce.GTD, at, None, now, NY_5PM) == at
    assert expires_at(TimeInForce.GTD, None, date(2026, 12, 10), now, NY_5PM) == datetime(2026, 12, 10, 22, 0, tzinfo=UTC)


def test_gtd_without_a_time_or_in_the_past_is_refused() -> None:
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    with pytest.raises(RestingRejection, match="needs ExpireTime"):
        expires_at(TimeInForce.GTD, None, None, now, NY_5PM)
    with pytest.raises(RestingRejection, match="already passed") as e:
        expires_at(TimeInForce.GTD, datetime(2026, 12, 4, 14, 0, tzinfo=UTC), None, now, NY_5PM)
    assert e.value.reason is RejectReason.TOO_LATE_TO_ENTER


def test_gtc_and_immediate_orders_have_no_life_end() -> None:
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    deadline = datetime(2026, 12, 4, 15, 1, tzinfo=UTC)  # an IOC's 126 is its transaction's deadline
    for tif in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
        assert expires_at(tif, deadline, None, now, NY_5PM) is None


def test_what_rests() -> None:
    assert rests(TimeInForce.GTC, OrdType.LIMIT) and rests(TimeInForce.DAY, OrdType.LIMIT)
    assert rests(TimeInForce.IOC, OrdType.STOP)  # a stop waits for its trigger whatever its TIF
    assert not rests(TimeInForce.IOC, OrdType.LIMIT) and not rests(TimeInForce.FOK, OrdType.MARKET)
    assert not rests(TimeInForce.DAY, OrdType.MARKET)  # a market order trades at once, whatever its TIF


def test_stops_trigger_on_the_side_they_trade() -> None:
    touch = Touch(bid=Decimal("2990"), offer=Decimal("3010"))
    assert stop_triggered(Side.BUY, Decimal("3010"), touch)       # offer reached the stop
    assert not stop_triggered(Side.BUY, Decimal("3011"), touch)
    assert stop_triggered(Side.SELL, Decimal("2990"), touch)
    assert not stop_triggered(Side.SELL, Decimal("2989.99"), touch)  # bid still above
    assert not stop_triggered(Side.BUY, Decimal("1"), Touch(bid=Decimal("1"), offer=None))


def test_limits_are_marketable_at_or_better_than_their_price() -> None:
    touch = Touch(bid=Decimal("2990"), offer=Decimal("3010"))
    assert limit_marketable(Side.BUY, Decimal("3010"), touch)
    assert not limit_marketable(Side.BUY, Decimal("3009.999"), touch)
    assert limit_marketable(Side.SELL, Decimal("2990"), touch)
    assert not limit_marketable(Side.SELL, Decimal("2990.01"), touch)
    assert not limit_marketable(Side.SELL, Decimal("1"), Touch(bid=None, offer=Decimal("1")))


def _v2_cost(x: int, y: int):
    """UniswapV2Library.getAmountIn: quote paid for `out` base from reserves (x base, y quote)."""
    def cost(out: int) -> int:
        return (y * out * 1000) // ((x - out) * 997) + 1
    return cost


@given(x=st.integers(10**9, 10**24), y=st.integers(10**9, 10**24), limit_num=st.integers(1, 10**6),
       limit_den=st.integers(1, 10**6))
def test_largest_within_is_the_exact_boundary_of_a_v2_buy(x: int, y: int, limit_num: int, limit_den: int) -> None:
    cost = _v2_cost(x, y)

    def within(out: int) -> bool:  # average price cost/out at most limit_num/limit_den, in integers
        return cost(out) * limit_den <= limit_num * out

    n = largest_within(x - 1, within)
    assert 0 <= n < x
    if n:
        assert within(n)
    if n < x - 1:
        assert not within(n + 1)


@given(x=st.integers(10**12, 10**24), y=st.integers(10**6, 10**15), most=st.integers(1, 10**20),
       px=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=4))
def test_size_within_limit_buys_and_sells_no_worse_than_the_limit(x: int, y: int, most: int, px: Decimal) -> None:
    """A V2 pair of x base units (18 decimals) and y quote units (6 decimals): what a resting limit may
    take is exactly the largest size whose average price meets its limit, on either side."""
    bd, qd = 18, 6

    def cost(n: int) -> int | None:  # getAmountIn of n base out
        return None if n >= x else (y * n * 1000) // ((x - n) * 997) + 1

    def proceeds(n: int) -> int:  # getAmountOut of n base in
        return (n * 997 * y) // (x * 1000 + n * 997)

    lim = Fraction(px)
    for side, f in ((Side.BUY, cost), (Side.SELL, proceeds)):
        n = size_within_limit(side, px, most, bd, qd, f)
        assert 0 <= n <= most

        def ok(k: int) -> bool:
            q = f(k)
            if q is None:
                return False
            avg = Fraction(q * 10**bd, k * 10**qd)
            return avg <= lim if side is Side.BUY else avg >= lim

        if n:
            assert ok(n)
        if n < most:
            assert not ok(n + 1)


def test_largest_within_edges() -> None:
    assert largest_within(0, lambda n: True) == 0
    assert largest_within(100, lambda n: False) == 0
    assert largest_within(100, lambda n: True) == 100
    assert largest_within(100, lambda n: n <= 37) == 37


def _check(**kw) -> None:
    args = dict(ord_type=OrdType.LIMIT, cum_qty=Decimal("0.4"), resting=True, terminal=False, amend=Amend())
    args.update(kw)
    check_amend(**args)


def test_amend_rules() -> None:
    _check(amend=Amend(order_qty=Decimal("0.5"), price=Decimal("2900"), time_in_force=TimeInForce.GTD))
    with pytest.raises(RestingRejection, match="not above the 0.4 already filled") as e:
        _check(amend=Amend(order_qty=Decimal("0.4")))
    assert e.value.reason is RejectReason.INCORRECT_QUANTITY
    with pytest.raises(RestingRejection, match="already on its way"):
        _check(resting=False, amend=Amend(price=Decimal("1")))
    with pytest.raises(RestingRejection, match="Too late"):
        _check(terminal=True, amend=Amend(price=Decimal("1")))
    with pytest.raises(RestingRejection, match="Price must be positive"):
        _check(amend=Amend(price=Decimal("-1")))
    with pytest.raises(RestingRejection, match="does not rest"):
        _check(amend=Amend(time_in_force=TimeInForce.IOC))
    with pytest.raises(RestingRejection, match="no Price"):
        _check(ord_type=OrdType.STOP, amend=Amend(price=Decimal("3000")))
