"""The order arithmetic without a chain (fixbridge/orders/intent.py): every row of README's table
of how a swap honours an order, every rounding rule, for random decimals, quantities, prices and
slippage. The bound is checked against the exact rational value, computed here independently."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from fixbridge.config import Counterparty, Token
from fixbridge.orders.intent import (Asset, Bound, NotPlannable, Rounding, SwapTerms, expected_base, limit_bound,
                                     market_bound, may_sell_to_open, order_bound, order_swap, swap_deadline,
                                     swap_shape, swap_terms)
from fixbridge.orders.model import Order, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.units import _CTX, scale_bps, to_units_ceil, to_units_exact, to_units_floor
from fixbridge.venues.base import Exact
from fixbridge.venues.v3_price import sqrt_price_limit

# No deadline: other tests share the cores, and a timed assertion would only measure that.
unit = settings(max_examples=200, deadline=None)

BASE_ADDR, QUOTE_ADDR = "0x" + "11" * 20, "0x" + "22" * 20
RECIPIENT = "0x" + "33" * 20

decimals = st.integers(min_value=0, max_value=18)
units = st.integers(min_value=1, max_value=10**30)
# Prices with up to 30 significant digits and any scale: more digits than Python's default
# Decimal context (28) keeps, so an arithmetic that rounds an intermediate would show.
prices = st.builds(lambda n, e: D(f"{n}E{e}"), st.integers(min_value=1, max_value=10**30),
                   st.integers(min_value=-30, max_value=10))
slippage = st.integers(min_value=0, max_value=5000)
quotes = st.integers(min_value=0, max_value=2**256 - 1)


def tokens(base_decimals: int, quote_decimals: int) -> tuple[Asset, Asset]:
    return Asset("BASE", BASE_ADDR, base_decimals), Asset("QUOTE", QUOTE_ADDR, quote_decimals)


def order(side: Side, *, qty: D | None = None, cash: D | None = None, price: D | None = None,
          tif: TimeInForce = TimeInForce.IOC, expire: datetime | None = None) -> Order:
    return Order(session_id="FIX.4.4:FIXBRIDGE->T", cl_ord_id="c1", symbol="BASE/QUOTE", side=side,
                 ord_type=OrdType.LIMIT if price is not None else OrdType.MARKET, time_in_force=tif,
                 order_qty=qty, cash_order_qty=cash, price=price, expire_time=expire)


def qty_of(n: int, d: int) -> D:
    """n base units of a d-decimals token, as the client would send it (exactly: no context)."""
    return D(f"{n}E-{d}")


# README "Orders": order shape -> (token in, exact, the bound's rule for a limit order)
TABLE = [
    # side, by_base, token in, exact, limit rounding, the bound is
    (Side.SELL, True, "BASE", Exact.INPUT, Rounding.CEILING),    # min quote out = OrderQty x P, up
    (Side.BUY, True, "QUOTE", Exact.OUTPUT, Rounding.FLOOR),     # max quote in = OrderQty x P, down
    (Side.BUY, False, "QUOTE", Exact.INPUT, Rounding.CEILING),   # min base out = Cash / P, up
    (Side.SELL, False, "BASE", Exact.OUTPUT, Rounding.FLOOR),    # max base in = Cash / P, down
]


def exact_limit_units(by_base: bool, qty: D, price: D, other_decimals: int) -> Fraction:
    """OrderQty x P (in quote) or Cash / P (in base), in base units of that token, exactly."""
    value = Fraction(qty) * Fraction(price) if by_base else Fraction(qty) / Fraction(price)
    return value * 10**other_decimals


@pytest.mark.parametrize("side, by_base, token_in, exact, rule", TABLE)
@unit
@given(bd=decimals, qd=decimals, n=units, price=prices)
def test_limit_orders_shape_and_bound(side, by_base, token_in, exact, rule, bd, qd, n, price):
    base, quote = tokens(bd, qd)
    q = qty_of(n, bd if by_base else qd)
    o = order(side, qty=q if by_base else None, cash=None if by_base else q, price=price)
    shape = swap_shape(o, base, quote)
    # the shape of the README's row
    assert shape.token_in.symbol == token_in and shape.exact is exact
    assert shape.fixed is (base if by_base else quote) and shape.other is (quote if by_base else base)
    assert shape.amount == n  # the client's quantity, exactly (rule EXACT)
    # the bound: the exact value rounded by the row's rule, never past it, within one base unit
    ex = exact_limit_units(by_base, q, price, shape.other.decimals)
    b = limit_bound(shape, price)
    assert isinstance(b.units, int) and b.exact_units == ex and b.rounding is rule
    if rule is Rounding.CEILING:      # a minimum output: never below OrderQty x P (or Cash / P)
        assert ex <= b.units < ex + 1
    else:                             # a maximum input: never above it
        assert ex - 1 < b.units <= ex
    # and through the order: a bound of 0 units is a reject, any other is the limit bound
    if b.units <= 0:
        with pytest.raises(NotPlannable) as e:
            order_bound(o, shape, 0, 0)
        assert e.value.rejection.reason is RejectReason.INCORRECT_QUANTITY and "rounds to zero" in e.value.rejection.text
    else:
        assert order_bound(o, shape, 12345, 100) == b  # a limit bound ignores the quote and the slippage


@pytest.mark.parametrize("side, by_base, token_in, exact, rule", TABLE)
@unit
@given(bd=decimals, qd=decimals, n=units, quoted=quotes, bps=slippage)
def test_market_orders_same_shapes_bound_from_the_quote(side, by_base, token_in, exact, rule, bd, qd, n, quoted, bps):
    base, quote = tokens(bd, qd)
    q = qty_of(n, bd if by_base else qd)
    o = order(side, qty=q if by_base else None, cash=None if by_base else q)
    shape = swap_shape(o, base, quote)
    assert shape.token_in.symbol == token_in and shape.exact is exact and shape.amount == n
    b = market_bound(shape.exact, quoted, bps)
    if exact is Exact.INPUT:   # min out = quote x (1 - bps), rounded down
        ex = Fraction(quoted * (10_000 - bps), 10_000)
        assert b.rounding is Rounding.FLOOR and ex - 1 < b.units <= ex
    else:                      # max in = quote x (1 + bps), rounded up
        ex = Fraction(quoted * (10_000 + bps), 10_000)
        assert b.rounding is Rounding.CEILING and ex <= b.units < ex + 1
    assert b.exact_units == ex and b.units == scale_bps(quoted, bps, up=exact is Exact.OUTPUT)
    if b.units <= 0:
        with pytest.raises(NotPlannable):
            order_bound(o, shape, quoted, bps)
    else:
        assert order_bound(o, shape, quoted, bps) == b


@pytest.mark.parametrize("by_base", [True, False])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
@unit
@given(d=decimals, n=units, extra=st.integers(min_value=1, max_value=6), price=prices)
def test_a_quantity_finer_than_the_token_is_rejected_never_rounded(by_base, side, d, n, extra, price):
    base, quote = tokens(d, d)
    if n % 10**extra == 0:
        n += 1  # not a whole number of base units at d decimals
    q = D(f"{n}E-{d + extra}")
    o = order(side, qty=q if by_base else None, cash=None if by_base else q, price=price)
    with pytest.raises(NotPlannable) as e:
        swap_shape(o, base, quote)
    r = e.value.rejection
    assert r.reason is RejectReason.INCORRECT_QUANTITY and f"is finer than {'BASE' if by_base else 'QUOTE'}'s {d} decimals" in r.text


@pytest.mark.parametrize("bad", [D(0), D("-1"), D("-0.000001")])
def test_a_quantity_must_be_positive(bad):
    base, quote = tokens(18, 6)
    with pytest.raises(NotPlannable) as e:
        swap_shape(order(Side.BUY, qty=bad, price=D(1)), base, quote)
    assert e.value.rejection.reason is RejectReason.INCORRECT_QUANTITY


# ---- behaviour kept from the engine as it was -------------------------------------------------

def legacy_limit_bound(by_base: bool, exact: Exact, qty: D, price: D, other_decimals: int) -> int:
    """The engine's bound before the arithmetic moved (execution.py `_plan`), verbatim: the
    product in Python's default Decimal context (28 digits), the quotient in units' _CTX."""
    other_amt = (qty * price) if by_base else _CTX.divide(qty, price)
    return to_units_ceil(other_amt, other_decimals) if exact is Exact.INPUT else to_units_floor(other_amt, other_decimals)


@pytest.mark.parametrize("side, by_base, token_in, exact, rule", TABLE)
@unit
@given(bd=decimals, qd=decimals, n=st.integers(min_value=1, max_value=10**12),
       price=st.builds(lambda n, e: D(f"{n}E{e}"), st.integers(1, 10**12), st.integers(-12, 6)))
def test_same_bound_as_the_engine_had_where_its_arithmetic_was_exact(side, by_base, token_in, exact, rule, bd, qd, n,
                                                                      price):
    # 12 digits x 12 digits fit the old 28-digit product exactly: the same bound, unit for unit.
    base, quote = tokens(bd, qd)
    q = qty_of(n, bd if by_base else qd)
    shape = swap_shape(order(side, qty=q if by_base else None, cash=None if by_base else q, price=price), base, quote)
    assert limit_bound(shape, price).units == legacy_limit_bound(by_base, exact, q, price, shape.other.decimals)


def test_a_long_price_no_longer_rounds_the_product_first():
    # Buy 412.60899282 WBTC (8) paying WETH (18) at a 24-digit price: the old product, rounded to
    # 28 digits before the bound, gave a maximum input one unit above OrderQty x P.
    base, quote = Asset("WBTC", BASE_ADDR, 8), Asset("WETH", QUOTE_ADDR, 18)
    q, p = D("412.60899282"), D("19147132.3515138109451600")
    shape = swap_shape(order(Side.BUY, qty=q, price=p), base, quote)
    ex = Fraction(q) * Fraction(p) * 10**18
    assert legacy_limit_bound(True, Exact.OUTPUT, q, p, 18) > ex           # the old rule broken
    assert limit_bound(shape, p).units == math.floor(ex) <= ex               # the rule kept


def test_readme_examples():
    weth, usdc = Asset("WETH", BASE_ADDR, 18), Asset("USDC", QUOTE_ADDR, 6)
    # Buy 0.5 WETH @ 3100: exact output of 0.5 WETH, at most 1550 USDC in
    s = swap_shape(order(Side.BUY, qty=D("0.5"), price=D(3100)), weth, usdc)
    assert (s.token_in, s.token_out, s.exact, s.amount) == (usdc, weth, Exact.OUTPUT, 5 * 10**17)
    assert limit_bound(s, D(3100)) == Bound(1_550_000_000, Fraction(1_550_000_000), Rounding.FLOOR)
    # Buy 300 USDC worth @ 3200: exact input of 300 USDC, at least 300/3200 = 0.09375 WETH out
    s = swap_shape(order(Side.BUY, cash=D(300), price=D(3200)), weth, usdc)
    assert (s.token_in, s.exact, s.amount) == (usdc, Exact.INPUT, 300_000_000)
    assert limit_bound(s, D(3200)).units == 93_750_000_000_000_000
    # Sell 100 USDC worth @ 3000: max base in = 1/30 WETH, rounded down to 18 decimals
    s = swap_shape(order(Side.SELL, cash=D(100), price=D(3000)), weth, usdc)
    assert (s.token_in, s.exact) == (weth, Exact.OUTPUT) and limit_bound(s, D(3000)).units == 33_333_333_333_333_333
    # Sell 0.25 WETH @ 2900.0000001: min out 725.000000025 USDC, rounded up to 6 decimals
    s = swap_shape(order(Side.SELL, qty=D("0.25"), price=D("2900.0000001")), weth, usdc)
    assert limit_bound(s, D("2900.0000001")).units == 725_000_001
    # Market, 100 bps: min out rounds down, max in rounds up
    assert market_bound(Exact.INPUT, 1001, 100).units == 990 and market_bound(Exact.OUTPUT, 1001, 100).units == 1012  # 990.99, 1011.01


# ---- the whole swap: deadline, partial fills, the intent the venue gets -----------------------

@unit
@given(bd=decimals, qd=decimals, n=units, price=prices, tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK]), side=st.sampled_from(Side),
       by_base=st.booleans(), quoted=st.integers(min_value=1, max_value=10**40))
def test_swap_terms_carry_the_order_to_the_venue(bd, qd, n, price, tif, side, by_base, quoted):
    base, quote = tokens(bd, qd)
    q = qty_of(n, bd if by_base else qd)
    o = order(side, qty=q if by_base else None, cash=None if by_base else q, price=price, tif=tif)
    shape = swap_shape(o, base, quote)
    try:
        terms = swap_terms(o, shape, quoted, 50, 1_900_000_000)
    except NotPlannable:
        assert limit_bound(shape, price).units <= 0
        return
    assert isinstance(terms, SwapTerms) and terms.partial is (tif is TimeInForce.IOC) and terms.quoted == quoted
    i = terms.intent(RECIPIENT)
    assert (i.token_in, i.token_out, i.exact, i.amount, i.bound, i.recipient, i.deadline, i.partial) == (
        shape.token_in.address, shape.token_out.address, shape.exact, n, terms.bound.units, RECIPIENT, 1_900_000_000,
        terms.partial)
    # what the wallet must cover: the amount it gives, or the most it may give
    assert i.max_in == (n if shape.exact is Exact.INPUT else terms.bound.units)
    # the V3 price limit applies to IOC only, and is the venue's
    if tif is TimeInForce.FOK:
        assert terms.price_limit_x96(3000) is None
    else:
        assert terms.price_limit_x96(3000) == sqrt_price_limit(i.token_in, i.token_out, i.exact, i.amount, i.bound, 3000)
    # the base quantity the order should trade: OrderQty, or the quote's base side of a cash order
    eb = expected_base(shape, quoted, base)
    assert eb == (q if by_base else Fraction(quoted, 10**bd)) and isinstance(eb, D)


@unit
@given(now=st.integers(min_value=1_600_000_000, max_value=2_000_000_000), frac=st.integers(0, 999_999),
       secs=st.integers(min_value=1, max_value=86_400))
def test_deadline_is_expire_time_or_now_plus_the_sessions_seconds(now, frac, secs):
    t = now + frac / 1_000_000
    assert swap_deadline(None, t, secs) == now + secs
    expire = datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=7, microseconds=frac)
    assert swap_deadline(expire, t, secs) == now + 7


def test_sell_to_open_is_for_writing_sessions_selling_a_series_by_quantity_on_v2():
    class Ins:
        security_type, market = "OPT", "options"

    class Spot:
        security_type, market = "SPOT", None

    sell = order(Side.SELL, qty=D(1), price=D(1))
    assert may_sell_to_open(sell, Ins(), True, Exact.INPUT, True)
    assert not may_sell_to_open(sell, Ins(), False, Exact.INPUT, True)          # not allowed to write
    assert not may_sell_to_open(sell, Spot(), True, Exact.INPUT, True)         # not an option
    assert not may_sell_to_open(sell, Ins(), True, Exact.OUTPUT, True)         # a cash sell
    assert not may_sell_to_open(sell, Ins(), True, Exact.INPUT, False)          # writeAndSell sells on V2 only
    assert not may_sell_to_open(order(Side.BUY, qty=D(1), price=D(1)), Ins(), True, Exact.INPUT, True)


def test_the_engine_is_given_exact_numbers_only():
    # no float anywhere: amounts and bounds are int, the exact value a Fraction, quantities Decimal
    base, quote = tokens(18, 6)
    o = order(Side.SELL, qty=D("1.5"), price=D("3000.5"))
    shape = swap_shape(o, base, quote)
    terms = swap_terms(o, shape, 4_000_000_000, 50, 1_900_000_000)
    assert type(shape.amount) is int and type(terms.bound.units) is int and type(terms.bound.exact_units) is Fraction
    assert type(shape.qty) is D and terms.bound.units == to_units_exact(D("4500.75"), 6)


def test_one_call_with_the_specs_own_types():
    # the engine passes the spec's Token and the session's Counterparty: plain, frozen config
    weth = Token(symbol="WETH", chain="devnet", address="0x" + "aa" * 20, decimals=18)
    usdc = Token(symbol="USDC", chain="devnet", address="0x" + "bb" * 20, decimals=6)
    cp = Counterparty(wallets=["w1"], max_slippage_bps=100, deadline_seconds=120)
    market_buy = order(Side.BUY, qty=D("0.5"))
    terms = order_swap(market_buy, weth, usdc, 1_500_000_001, cp, now=1_800_000_000.25)
    assert terms.shape.token_in is usdc and terms.shape.exact is Exact.OUTPUT and terms.shape.amount == 5 * 10**17
    assert terms.bound == Bound(1_515_000_002, Fraction(151_500_000_101, 100), Rounding.CEILING)  # max in, up
    assert terms.deadline == 1_800_000_120 and terms.partial
    i = terms.intent(RECIPIENT)
    assert (i.token_in, i.token_out, i.bound) == (usdc.address, weth.address, 1_515_000_002)
