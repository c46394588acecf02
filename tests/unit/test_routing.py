"""Best execution without a chain (fixbridge/engine/routing.py): the venue with the best quote net
of its swap's gas wins, ties go to the venue listed first, and the decision says why."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from fixbridge.engine.routing import RouteDecision, VenueQuote, decide, swap_gas_wei
from fixbridge.orders.intent import NotPlannable
from fixbridge.orders.model import RejectReason
from fixbridge.venues.base import Exact

unit = settings(max_examples=300, deadline=None)

# Small ranges on purpose: ties (equal nets) come up often.
venue_quotes = st.lists(st.tuples(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=20)),
                        min_size=1, max_size=5)


def quotes_of(raw: list[tuple[int, int]], exact: Exact) -> list[VenueQuote]:
    return [VenueQuote.of(f"venue{i}", q, gas, exact) for i, (q, gas) in enumerate(raw)]


@unit
@given(raw=venue_quotes, exact=st.sampled_from(Exact))
def test_the_best_net_wins_and_a_tie_goes_to_the_venue_listed_first(raw, exact):
    qs = quotes_of(raw, exact)
    d = decide("BASE/QUOTE", exact, qs)
    # net of gas: exact input gets less out, exact output pays more in
    for q, (quoted, gas) in zip(qs, raw):
        assert q.net == (quoted - gas if exact is Exact.INPUT else quoted + gas)
    nets = [q.net for q in qs]
    best = max(nets) if exact is Exact.INPUT else min(nets)
    assert d.chosen.net == best
    assert d.chosen is qs[nets.index(best)]  # the first venue with the best net
    assert d.considered == tuple(qs) and d.exact is exact
    assert decide("BASE/QUOTE", exact, list(qs)) == d  # the same quotes, the same decision


@unit
@given(raw=venue_quotes, exact=st.sampled_from(Exact), data=st.data())
def test_the_order_of_the_venues_only_breaks_ties(raw, exact, data):
    qs = quotes_of(raw, exact)
    shuffled = data.draw(st.permutations(qs))
    d1, d2 = decide("X", exact, qs), decide("X", exact, shuffled)
    assert d1.chosen.net == d2.chosen.net
    if [q.net for q in qs].count(d1.chosen.net) == 1:
        assert d1.chosen == d2.chosen


def test_gas_can_change_the_choice():
    # V3 quotes 10 more out but its swap's gas costs 15 of the output token: V2 is better net
    qs = [VenueQuote.of("uniswap_v2", 1000, 5, Exact.INPUT), VenueQuote.of("uniswap_v3", 1010, 20, Exact.INPUT)]
    assert decide("WETH/USDC", Exact.INPUT, qs).chosen.venue == "uniswap_v2"
    # a buy by exact output pays the least in net of gas
    qs = [VenueQuote.of("uniswap_v2", 1000, 30, Exact.OUTPUT), VenueQuote.of("uniswap_v3", 1010, 5, Exact.OUTPUT)]
    assert decide("WETH/USDC", Exact.OUTPUT, qs).chosen.venue == "uniswap_v3"


def test_no_quote_at_all_is_a_reject_naming_each_venue():
    with pytest.raises(NotPlannable) as e:
        decide("WETH/USDC", Exact.INPUT, [], {"uniswap_v2": "INSUFFICIENT_LIQUIDITY", "uniswap_v3": "no pool"})
    r = e.value.rejection
    assert r.reason is RejectReason.OTHER
    assert r.text == ("No venue can quote WETH/USDC for this size (not enough liquidity?): "
                      "uniswap_v2: INSUFFICIENT_LIQUIDITY; uniswap_v3: no pool")


def test_the_decision_as_journaled():
    qs = [VenueQuote.of("uniswap_v2", 1000, 5, Exact.OUTPUT), VenueQuote.of("uniswap_v3", 990, 7, Exact.OUTPUT)]
    d = decide("WETH/USDC", Exact.OUTPUT, qs, {"curve": "down"})
    assert isinstance(d, RouteDecision) and d.chosen.venue == "uniswap_v3"
    assert d.why("USDC") == "routed to uniswap_v3: best input net of gas among uniswap_v2=1005, uniswap_v3=997 (USDC units)"
    assert d.detail(2_000_000_000) == {
        "considered": [{"venue": "uniswap_v2", "quoted": "1000", "gas_in_other_units": "5", "net": "1005"},
                       {"venue": "uniswap_v3", "quoted": "990", "gas_in_other_units": "7", "net": "997"}],
        "unquotable": {"curve": "down"}, "chosen": "uniswap_v3", "gas_price_wei": "2000000000"}


@given(gas_price=st.integers(min_value=0, max_value=10**15))
def test_a_swaps_gas_is_the_venues_typical_gas_at_the_price(gas_price):
    from fixbridge.venues.uniswap_v2 import UniswapV2
    from fixbridge.venues.uniswap_v3 import UniswapV3
    assert swap_gas_wei(UniswapV2.swap_gas, gas_price) == 110_000 * gas_price
    assert swap_gas_wei(UniswapV3.swap_gas, gas_price) == 140_000 * gas_price
