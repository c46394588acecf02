"""Quotes from the live market state (fixbridge/market/): the venues' own integer maths on the pools
as of the latest block, with no round trip to the node (tests/e2e/test_market_state.py shows them
equal to Router02's and QuoterV2's, bit for bit). The planner asks here first; when the state cannot
answer — there is none, it is behind the block the engine has seen, or it does not hold the venue's
pools for the pair — the venue is asked on chain, as before. The simulation before signing stays."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fixbridge.config import Spec
from fixbridge.engine.heads import ChainHeads
from fixbridge.market.pools import NoQuote, PoolKey
from fixbridge.venues.base import Exact, Venue

if TYPE_CHECKING:
    from fixbridge.market.state import MarketState

# The engine's watcher hands each block to the feed right after the engine: an order arriving in
# between waits this long for the feed rather than paying a quote round trip (a feed that is failing
# costs each order at most this).
FEED_GRACE_S = 0.1


class StateQuotes:
    def __init__(self, market: "MarketState | None", heads: ChainHeads, spec: Spec) -> None:
        self.market, self.heads, self.spec = market, heads, spec
        self._pairs: dict[tuple[str, frozenset[str]], list[PoolKey]] | None = None
        self._gave_up: dict[str, int] = {}  # chain -> the head the feed did not reach in time

    def _waited(self, chain: str, head: int) -> bool:
        """Whether the feed reached `head` within the grace; waited for once per head (orders behind
        one that waited in vain ask the chain at once)."""
        assert self.market is not None
        if self._gave_up.get(chain) == head:
            return False
        if self.market.wait_block(chain, head, FEED_GRACE_S):
            return True
        self._gave_up[chain] = head
        return False

    def _pools(self, venue: str, a: str, b: str) -> list[PoolKey]:
        assert self.market is not None
        if self._pairs is None:  # the listings are fixed once the feed has started
            pairs: dict[tuple[str, frozenset[str]], list[PoolKey]] = {}
            for listing in self.market.listings.values():
                for k in listing.pools:
                    keys = pairs.setdefault((k.venue, frozenset((k.token0, k.token1))), [])
                    if k not in keys:
                        keys.append(k)
            self._pairs = pairs
        return self._pairs.get((venue, frozenset((a.lower(), b.lower()))), [])

    def quote(self, venue: Venue, token_in: str, token_out: str, exact: Exact, amount: int) -> int | None:
        """The venue's best quote over its pools of the pair (exact input: the output; exact output:
        the input; on a tie the lower fee), or None when the state cannot answer (ask the chain).
        Raises NoQuote when no pool of the venue can do the whole swap, as the chain's quoter would."""
        if self.market is None or not self.market.listings:
            return None
        chain = self.spec.venues[venue.name].chain
        at, head = self.market.block(chain), self.heads.head(chain)
        if at is None or (at < head and not self._waited(chain, head)):
            return None  # the feed has not applied the block the engine has seen: the chain answers
        keys = self._pools(venue.name, token_in, token_out)
        if not keys:
            return None
        best: tuple[int, int] | None = None  # (amount, fee)
        for k in keys:
            try:
                pool = self.market.pool(k.address)
                q = (pool.quote_exact_in(token_in, amount) if exact is Exact.INPUT
                     else pool.quote_exact_out(token_in, amount))
            except NoQuote:
                continue
            got = q.amount_out if exact is Exact.INPUT else q.amount_in
            if got <= 0:
                continue
            if best is None or (got > best[0] if exact is Exact.INPUT else got < best[0]) or (
                    got == best[0] and k.fee < best[1]):
                best = (got, k.fee)
        if best is None:
            raise NoQuote(f"no pool can swap {amount} units {exact.value} {token_in} -> {token_out} "
                          "(not enough liquidity in the live market state)")
        venue.remember_quote(token_in, token_out, exact, amount, best[0], best[1])
        return best[0]
