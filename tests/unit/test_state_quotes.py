"""Routing's quotes from the live market state (engine/quoting.py) when the feed is a moment behind
the block the engine's watcher has seen: the order waits briefly for the feed rather than asking the
node, and once the feed has missed a block's grace the orders behind it ask the node at once."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from fixbridge.config import load_spec
from fixbridge.engine.quoting import FEED_GRACE_S, StateQuotes
from fixbridge.market.pools import PoolKey, V2Pool
from fixbridge.market.state import Listing, MarketState
from fixbridge.venues.base import Exact

ROOT = Path(__file__).resolve().parents[2]
E18, E6 = 10**18, 10**6
WETH, USDC = "0x5fbdb2315678afecb367f032d93f642f64180aa3", "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
PAIR = PoolKey("uniswap_v2", "uniswap_v2", "devnet", "0xpair", WETH, USDC)


class Heads:  # the engine's view of the chain head (ChainHeads.head), set by the test
    def __init__(self, head: int) -> None:
        self.at = head

    def head(self, chain: str) -> int:
        return self.at


class Venue:  # only what StateQuotes touches of a venue
    name = "uniswap_v2"

    def __init__(self) -> None:
        self.remembered: list[tuple] = []

    def remember_quote(self, *args) -> None:
        self.remembered.append(args)


def setup(head: int):
    spec = load_spec(ROOT / "specs" / "devnet.toml")
    state = MarketState(spec)
    state.list({"WETH/USDC": Listing("WETH/USDC", "devnet", WETH, USDC, 18, 6, (PAIR,))})
    state.publish("devnet", 10, {PAIR.address: V2Pool(PAIR, 1000 * E18, 3_000_000 * E6)}, None)
    return state, StateQuotes(state, Heads(head), spec), Venue()  # type: ignore[arg-type]


def test_a_quote_waits_for_the_feed_to_apply_the_block_the_engine_has_seen():
    state, quotes, venue = setup(head=11)
    moved = V2Pool(PAIR, 1001 * E18, 2_997_004 * E6)
    threading.Timer(0.02, lambda: state.publish("devnet", 11, {PAIR.address: moved}, None)).start()
    got = quotes.quote(venue, WETH, USDC, Exact.INPUT, E18)  # type: ignore[arg-type]
    assert got == moved.quote_exact_in(WETH, E18).amount_out  # block 11's pool, not block 10's
    assert got != V2Pool(PAIR, 1000 * E18, 3_000_000 * E6).quote_exact_in(WETH, E18).amount_out
    assert venue.remembered


def test_a_feed_that_misses_the_grace_sends_the_orders_behind_to_the_node_at_once():
    state, quotes, venue = setup(head=11)
    t0 = time.monotonic()
    assert quotes.quote(venue, WETH, USDC, Exact.INPUT, E18) is None  # type: ignore[arg-type]
    assert time.monotonic() - t0 >= FEED_GRACE_S * 0.9
    t1 = time.monotonic()
    assert quotes.quote(venue, WETH, USDC, Exact.INPUT, E18) is None  # type: ignore[arg-type]
    assert time.monotonic() - t1 < FEED_GRACE_S / 2  # no second wait at the same head
    assert not venue.remembered
    state.publish("devnet", 11, {}, None)
    assert quotes.quote(venue, WETH, USDC, Exact.INPUT, E18) is not None  # type: ignore[arg-type]
