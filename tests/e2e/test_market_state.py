"""The live market state (fixbridge.market) on a real anvil devnet with the real Uniswap V2 and V3
contracts: loaded whole, then kept in step from each block's logs by a real BlockWatcher, it
quotes every pool exactly as the chain's own quoters do (V2 Router02 getAmountsOut/In, V3 QuoterV2
quoteExactInput/OutputSingle), bit for bit, at random sizes including ones that cross ticks and
bitmap words; after an outside account's swaps, after V3 liquidity is added and removed, and after
a reorg (evm_revert, then other blocks at the same heights)."""
from __future__ import annotations

import random
import time

import pytest
from web3 import Web3

from fixbridge.chain.rpc import connect
from fixbridge.chain.watcher import BlockWatcher
from fixbridge.config.spec import load_spec
from fixbridge.market.feed import MarketFeed
from fixbridge.market.state import BlockChange, MarketState
from fixbridge.venues import build_venue

from market_support import Outsider, compare_all, compare_limits, wait_for_block

E18, E6 = 10**18, 10**6


@pytest.fixture(scope="module")
def market(devnet):
    spec = load_spec(devnet.spec_path)
    w3 = connect(devnet.rpc_url)
    state = MarketState(spec)
    feed = MarketFeed(spec, {"devnet": w3}, state)
    feed.start()
    changes: list[BlockChange] = []
    state.subscribe(changes.append)
    watcher = BlockWatcher("devnet", w3, feed)
    watcher.start()
    venues = {name: build_venue(v, Web3(Web3.HTTPProvider(devnet.rpc_url))) for name, v in spec.venues.items()}
    yield state, feed, w3, venues, changes
    watcher.stop()


@pytest.fixture(scope="module")
def outsider(devnet, market):
    _, _, w3, venues, _ = market
    o = Outsider(w3, devnet.deployment)
    o.fund(2_000 * E18, 5_000_000 * E6, [venues["uniswap_v2"].router, venues["uniswap_v3"].router, o.npm.address])
    return o


def test_loaded_state_has_every_pool(market, devnet):
    state, _, w3, _, _ = market
    spec = load_spec(devnet.spec_path)
    assert set(state.listings) == set(spec.instruments)
    labels = {k.label for k in state.pools_of("WETH/USDC")}
    assert labels == {"uniswap_v2", "uniswap_v3/500", "uniswap_v3/3000"}
    v3 = state.pool(next(k.address for k in state.pools_of("WETH/USDC") if k.fee == 500))
    assert len(v3.ticks) == 2 and v3.liquidity > 0  # the deployment's one position
    assert all(state.pools_of(s) for s in spec.instruments), "every instrument has a pool"


def test_quotes_equal_the_chain_quoters(market):
    state, _, w3, venues, _ = market
    wait_for_block(state, "devnet", w3)
    compared, _ = compare_all(state, venues, random.Random(1), n=10)
    assert compared > 100  # each V3 pool holds one position: nothing to cross before its edge


def test_after_an_outsiders_swaps_the_state_still_quotes_exactly(market, outsider, devnet):
    state, _, w3, venues, changes = market
    dep = devnet.deployment
    for venue, fee in (("uniswap_v2", None), ("uniswap_v3", 500), ("uniswap_v3", 3000)):
        before = len(changes)
        receipt = outsider.swap(venues[venue], dep.weth, dep.usdc, 3 * E18, fee)
        wait_for_block(state, "devnet", w3)
        trades = [t for c in changes[before:] for t in c.trades]
        assert [t.tx_hash for t in trades] == ["0x" + bytes(receipt["transactionHash"]).hex()]
        assert trades[0].recipient == outsider.address.lower() and trades[0].block == receipt["blockNumber"]
    # a large one through the 0.3 % pool: far across its price range (and a bitmap word)
    outsider.swap(venues["uniswap_v3"], dep.usdc, dep.weth, 2_000_000 * E6, 3000)
    wait_for_block(state, "devnet", w3)
    compared, _ = compare_all(state, venues, random.Random(2), n=8)
    assert compared > 100


def test_after_liquidity_is_added_and_removed_the_state_still_quotes_exactly(market, outsider):
    state, _, w3, venues, _ = market
    key = next(k for k in state.pools_of("WETH/USDC") if k.fee == 500)
    pool = state.pool(key.address)
    t = pool.tick // key.spacing * key.spacing
    token_id = outsider.add_liquidity(key, t - 50, t + 30, 20 * E18, 60_000 * E6)  # inside the deployment's range
    wide = outsider.add_liquidity(key, t - 2_600, t - 40, 0, 200_000 * E6)         # below the price, across a word
    wait_for_block(state, "devnet", w3)
    after = state.pool(key.address)
    assert len(after.ticks) == 6 and after.liquidity > pool.liquidity
    assert compare_limits(state, venues) >= 4  # an IOC's price limit at each tick on the way
    compared, crossing = compare_all(state, venues, random.Random(3), n=10)
    assert compared > 100 and crossing > 0
    outsider.remove_liquidity(token_id, (1, 2))
    outsider.remove_liquidity(wide, (1, 1))  # all of it: its ticks are no longer initialized
    wait_for_block(state, "devnet", w3)
    assert len(state.pool(key.address).ticks) == 4
    compared, crossing = compare_all(state, venues, random.Random(4), n=10)
    assert compared > 100 and crossing > 0


def test_after_a_reorg_the_state_is_read_again_and_quotes_exactly(market, outsider, devnet):
    state, _, w3, venues, changes = market
    dep = devnet.deployment
    snap = devnet.rpc("evm_snapshot")
    outsider.swap(venues["uniswap_v3"], dep.weth, dep.usdc, 40 * E18, 3000)
    outsider.swap(venues["uniswap_v2"], dep.usdc, dep.weth, 100_000 * E6)
    wait_for_block(state, "devnet", w3)
    moved = {a: p for a, p in state.snapshot().items()}
    assert devnet.rpc("evm_revert", [snap]) is True
    before = len(changes)
    # other blocks at the same heights: the watcher sees other hashes, the feed reloads
    outsider.swap(venues["uniswap_v3"], dep.usdc, dep.weth, 1_000 * E6, 500)
    outsider.swap(venues["uniswap_v2"], dep.weth, dep.usdc, E18)
    end = time.monotonic() + 10
    while not any(c.reloaded for c in changes[before:]) and time.monotonic() < end:
        time.sleep(0.02)
    assert any(c.reloaded for c in changes[before:]), "no reload after the reorg"
    wait_for_block(state, "devnet", w3)
    assert state.snapshot() != moved
    compared, crossing = compare_all(state, venues, random.Random(5), n=8)
    assert compared > 100 and crossing > 0  # the added positions are before the snapshot: still there
