"""MarketState: every venue pool of the spec as of the latest block its feed applied, read by
anyone (routing, market data) without a lock: the pools are immutable and the map of them is
replaced whole, once per block.

    state.quote_exact_in(pool, token_in, amount_in)   -> Quote (amount_in, amount_out, ...)
    state.quote_exact_out(pool, token_in, amount_out) -> Quote
    state.pools_of("WETH/USDC")                       -> [PoolKey, ...]
    state.block("devnet")                             -> the block the chain's pools are as of
    state.subscribe(fn)  fn(BlockChange) for every block that changed a pool (on the feed's thread)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import structlog

from fixbridge.config import Spec
from fixbridge.market.pools import NoQuote, Pool, PoolKey, Quote

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Trade:
    """One Swap log in a pool: amounts signed as the pool sees them (+ into the pool)."""
    chain: str
    block: int
    tx_hash: str
    log_index: int
    pool: str
    amount0: int
    amount1: int
    sender: str     # who called the pool (a router, usually)
    recipient: str  # who received the output: the trader, for a router swap


@dataclass(frozen=True)
class BlockChange:
    """What one block did to the pools of a chain (reloaded: read afresh after a reorg or gap)."""
    chain: str
    block: int
    pools: frozenset[str]
    trades: tuple[Trade, ...] = ()
    reloaded: bool = False


@dataclass(frozen=True)
class Listing:
    """An instrument as the market sees it: its tokens (lower-case), decimals and pools."""
    symbol: str
    chain: str
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    pools: tuple[PoolKey, ...]


class MarketState:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._pools: dict[str, Pool] = {}
        self._blocks: dict[str, int] = {}
        self.listings: dict[str, Listing] = {}
        self._subscribers: list[Callable[[BlockChange], None]] = []
        self._write = threading.Lock()  # one writer at a time (a chain's feed); readers take none
        self._published = threading.Condition()  # woken on each publish (a reader waiting for a block)

    # ---- reads -------------------------------------------------------------------------------
    def pool(self, address: str) -> Pool:
        try:
            return self._pools[address.lower()]
        except KeyError:
            raise NoQuote(f"no pool {address} in the market state") from None

    def pools_of(self, symbol: str) -> list[PoolKey]:
        listing = self.listings.get(symbol)
        return list(listing.pools) if listing else []

    def block(self, chain: str) -> int | None:
        return self._blocks.get(chain)

    def wait_block(self, chain: str, block: int, timeout: float) -> bool:
        """Wait up to `timeout` s for the state to reach `block` on `chain`; whether it has."""
        with self._published:
            return self._published.wait_for(lambda: (self._blocks.get(chain) or -1) >= block, timeout)

    def quote_exact_in(self, pool: str, token_in: str, amount_in: int, sqrt_price_limit_x96: int = 0) -> Quote:
        return self.pool(pool).quote_exact_in(token_in, amount_in, sqrt_price_limit_x96)

    def quote_exact_out(self, pool: str, token_in: str, amount_out: int, sqrt_price_limit_x96: int = 0) -> Quote:
        return self.pool(pool).quote_exact_out(token_in, amount_out, sqrt_price_limit_x96)

    def snapshot(self) -> dict[str, Pool]:
        """Every pool, all as of the same update (the dict is never changed once published)."""
        return self._pools

    # ---- writes (the feed) -------------------------------------------------------------------
    def subscribe(self, fn: Callable[[BlockChange], None]) -> None:
        """fn is called on the feed's (the block watcher's) thread: it must be quick."""
        self._subscribers.append(fn)

    def list(self, listings: dict[str, Listing]) -> None:
        self.listings = dict(listings)

    def publish(self, chain: str, block: int, pools: dict[str, Pool], change: BlockChange | None) -> None:
        """A chain's pools as of `block` (all of them after a load, the changed ones otherwise)."""
        with self._write:
            self._pools = {**self._pools, **pools}
            self._blocks = {**self._blocks, chain: block}
        with self._published:
            self._published.notify_all()
        if change is None:
            return
        for fn in self._subscribers:
            try:
                fn(change)
            except Exception:  # a subscriber's failure must not stop the feed or the others
                log.exception("market subscriber failed", chain=chain, block=block)
