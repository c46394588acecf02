"""Uniswap V3 through SwapRouter and QuoterV2: quote every fee tier and take the best, swap
exact-in or exact-out in one pool (one fee tier), read fills from the pool's Swap event.

Like the V2 adapter, ABI encoding is eth-abi with the function signatures below: no artifact
at run time.

Fee tiers. A pair has one pool per fee tier (500 = 0.05%, 3000 = 0.3%, ...). `quote_detail`
asks QuoterV2 about every configured tier whose pool exists and returns the best (most out for
exact input, least in for exact output) with its fee; `build_swap` uses the tier of the last
`quote_detail`/`quote` for the same (token_in, token_out, exact, amount) when there is one
(and, for a partial intent, when that quote met the bound), otherwise `choose_tier(intent)`.
`build_swap(intent, fee=...)` forces a tier.

Partial fills (IOC, `SwapIntent.partial`). V3 can stop a swap part-way at a price limit
(sqrtPriceLimitX96): the pool fills what it can down to that price and the router pays/takes
only that. `sqrt_price_limit(intent, fee)` is the pool price at which the *marginal* unit,
after the tier's fee, trades exactly at the client's worst rate bound/amount; every unit
filled before it trades at that rate or better, so the fill's average is too. FOK
(`partial=False`) swaps with no price limit and the bound as given: all or nothing.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception

from fixbridge.chain.rpc import eth_call
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import Call, Exact, SwapIntent, SwapLeg, selector
# The price-limit arithmetic is pure and lives in v3_price (unit-tested without a chain).
from fixbridge.venues.v3_price import MAX_SQRT_RATIO, MIN_SQRT_RATIO, sqrt_price_limit as _sqrt_price_limit

QUOTE_EXACT_IN = "quoteExactInputSingle((address,address,uint256,uint24,uint160))"
QUOTE_EXACT_OUT = "quoteExactOutputSingle((address,address,uint256,uint24,uint160))"
EXACT_INPUT_SINGLE = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
EXACT_OUTPUT_SINGLE = "exactOutputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
GET_POOL = "getPool(address,address,uint24)"
SWAP_TOPIC = keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)")

#: The fee tiers the canonical factory enables; decode_swaps recognises pools of any of them.
STANDARD_FEES = (100, 500, 3000, 10000)
_ZERO = "0x" + "00" * 20
_MEMORY_SECONDS = 60.0
_MEMORY_SIZE = 256

_QUOTE_TYPES = ["(address,address,uint256,uint24,uint160)"]
_SWAP_TYPES = ["(address,address,uint24,address,uint256,uint256,uint256,uint160)"]


def swap_log_amounts(data: bytes) -> tuple[int, int]:
    """(amount0, amount1) of a pool's Swap log data: signed, positive into the pool."""
    amount0, amount1, _sqrt, _liq, _tick = decode(["int256", "int256", "uint160", "uint128", "int24"], data)
    return amount0, amount1


def _calldata(signature: str, types: list[str], args: list[Any]) -> bytes:
    return selector(signature) + encode(types, args)


class Quote(NamedTuple):
    """A quote from one fee tier: `amount` is the output (exact input) or input (exact output)."""

    amount: int
    fee: int
    sqrt_price_after: int


class NoQuote(LookupError):
    """No pool of the pair, in any configured fee tier, can do the swap."""


class UniswapV3:
    kind = "uniswap_v3"
    swap_gas = 140_000
    fills_partially = True   # IOC: a sqrtPriceLimitX96 at the client's limit
    writes_into = False

    def __init__(self, name: str, w3: Web3, router: str, factory: str, quoter: str | None,
                 fee_tiers: list[int] | tuple[int, ...]) -> None:
        if not quoter or not fee_tiers:
            raise ValueError(f"venue {name}: a uniswap_v3 venue needs a quoter and fee_tiers")
        self.name, self.w3 = name, w3
        self.router, self.factory = to_checksum_address(router), to_checksum_address(factory)
        self.quoter = to_checksum_address(quoter)
        self.fee_tiers = tuple(dict.fromkeys(int(f) for f in fee_tiers))
        self._pools: dict[tuple[str, str, int], str] = {}        # existing pools, forever
        self._missing: dict[tuple[str, str, int], float] = {}    # no pool (yet): when we asked
        self._memory: OrderedDict[Any, tuple[float, Any]] = OrderedDict()  # recent quotes and choices
        self._lock = threading.Lock()

    # -- pools -------------------------------------------------------------------
    def _call(self, to: str, data: bytes) -> bytes:
        return eth_call(self.w3, to, data)

    def pool(self, a: str, b: str, fee: int) -> str | None:
        """The pair's pool in the fee tier (factory.getPool), or None if there is none."""
        t0, t1 = sorted((a.lower(), b.lower()))
        key = (t0, t1, fee)
        if key in self._pools:
            return self._pools[key]
        asked = self._missing.get(key)
        if asked is not None and time.monotonic() - asked < _MEMORY_SECONDS:
            return None
        out = self._call(self.factory, _calldata(GET_POOL, ["address", "address", "uint24"],
                                                 [to_checksum_address(t0), to_checksum_address(t1), fee]))
        address = to_checksum_address(decode(["address"], out)[0])
        if address == _ZERO:
            self._missing[key] = time.monotonic()
            return None
        self._pools[key] = address
        return address

    def pools(self, a: str, b: str, fees: tuple[int, ...] | None = None) -> dict[int, str]:
        """fee -> pool for the configured fee tiers (or `fees`) in which the pair has a pool."""
        found = {fee: self.pool(a, b, fee) for fee in (self.fee_tiers if fees is None else fees)}
        return {fee: p for fee, p in found.items() if p is not None}

    # -- quotes ------------------------------------------------------------------
    def quote_tier(self, token_in: str, token_out: str, exact: Exact, amount: int, fee: int,
                   sqrt_price_limit_x96: int = 0) -> Quote | None:
        """QuoterV2 for one tier; None if that pool cannot do the whole swap (or, with a price
        limit, cannot do any of it). QuoterV2's functions are not `view` (they run the swap and
        revert with the result) but work through eth_call."""
        sig = QUOTE_EXACT_IN if exact is Exact.INPUT else QUOTE_EXACT_OUT
        data = _calldata(sig, _QUOTE_TYPES, [(token_in, token_out, amount, fee, sqrt_price_limit_x96)])
        try:
            out = self._call(self.quoter, data)
        except (Web3Exception, ValueError):  # no liquidity, not enough for an exact output, SPL...
            return None
        got, sqrt_after, _ticks, _gas = decode(["uint256", "uint160", "uint32", "uint256"], out)
        if exact is Exact.INPUT and sqrt_price_limit_x96 == 0 and sqrt_after in (MIN_SQRT_RATIO + 1, MAX_SQRT_RATIO - 1):
            # The swap ran to the end of the price range with input left over: this pool cannot
            # take the whole amount (QuoterV2 reports the output of the part it took).
            return None
        if got == 0:
            return None
        return Quote(got, fee, sqrt_after)

    def quotes(self, token_in: str, token_out: str, exact: Exact, amount: int) -> dict[int, Quote]:
        """fee -> quote for every configured tier that can do the whole swap."""
        found = {}
        for fee in self.pools(token_in, token_out):
            q = self.quote_tier(token_in, token_out, exact, amount, fee)
            if q is not None:
                found[fee] = q
        return found

    @staticmethod
    def _best(quotes: dict[int, Quote], exact: Exact) -> Quote:
        # most out for exact input, least in for exact output; on a tie the lower fee
        if exact is Exact.INPUT:
            return max(quotes.values(), key=lambda q: (q.amount, -q.fee))
        return min(quotes.values(), key=lambda q: (q.amount, q.fee))

    def quote_detail(self, token_in: str, token_out: str, exact: Exact, amount: int) -> Quote:
        """The best tier's quote (amount and fee). Remembered for `build_swap` of the same swap.
        Raises NoQuote when no tier can do the whole swap."""
        found = self.quotes(token_in, token_out, exact, amount)
        if not found:
            raise NoQuote(f"{self.name}: no pool in fee tiers {list(self.fee_tiers)} can swap {amount} units "
                          f"{exact.value} {token_in} -> {token_out}")
        best = self._best(found, exact)
        self._remember((token_in.lower(), token_out.lower(), exact, amount), best)
        return best

    def best_tier(self, token_in: str, token_out: str, exact: Exact, amount: int) -> int:
        return self.quote_detail(token_in, token_out, exact, amount).fee

    def remember_quote(self, token_in: str, token_out: str, exact: Exact, amount: int, quoted: int, fee: int) -> None:
        """A quote of this swap made on the live market state: `build_swap` takes its tier, as it would
        after `quote_detail`."""
        self._remember((token_in.lower(), token_out.lower(), exact, amount), Quote(quoted, fee, 0))

    def quote(self, token_in: str, token_out: str, exact: Exact, amount: int) -> int:
        """For exact input: the output now; for exact output: the input now (best tier)."""
        return self.quote_detail(token_in, token_out, exact, amount).amount

    def _remember(self, key: Any, value: Any) -> None:
        with self._lock:
            self._memory[key] = (time.monotonic(), value)
            self._memory.move_to_end(key)
            while len(self._memory) > _MEMORY_SIZE:
                self._memory.popitem(last=False)

    def _recall(self, key: Any) -> Any:
        with self._lock:
            hit = self._memory.get(key)
        if hit is None or time.monotonic() - hit[0] > _MEMORY_SECONDS:
            return None
        return hit[1]

    # -- tiers and price limits ----------------------------------------------------
    @staticmethod
    def _meets(q: Quote, intent: SwapIntent) -> bool:
        return q.amount >= intent.bound if intent.exact is Exact.INPUT else q.amount <= intent.bound

    def choose_tier(self, intent: SwapIntent) -> int:
        """The fee tier `build_swap` uses when not told: the tier of a fresh quote of the same swap
        if there is one; otherwise the best tier for the whole amount; for a partial intent whose
        bound no tier meets for the whole amount, the tier that fills the most within the price
        limit. Cached per intent for a minute (the engine builds the same intent twice)."""
        chosen = self._recall(intent)
        if chosen is not None:
            return chosen
        quoted = self._recall((intent.token_in.lower(), intent.token_out.lower(), intent.exact, intent.amount))
        if quoted is not None and (not intent.partial or self._meets(quoted, intent)):
            fee = quoted.fee
        else:
            fee = self._choose(intent)
        self._remember(intent, fee)
        return fee

    def _choose(self, intent: SwapIntent) -> int:
        pools = self.pools(intent.token_in, intent.token_out)
        if not pools:
            raise NoQuote(f"{self.name}: no {intent.token_in}/{intent.token_out} pool in fee tiers {list(self.fee_tiers)}")
        full = self.quotes(intent.token_in, intent.token_out, intent.exact, intent.amount)
        best = self._best(full, intent.exact) if full else None
        if best is not None and (self._meets(best, intent) or not intent.partial):
            return best.fee
        if intent.partial:
            # What each tier gives up to its price limit: exact input -> the output, exact output
            # -> the input paid; both grow with the part filled, all of it at acceptable prices.
            limited = {}
            for fee in pools:
                q = self.quote_tier(intent.token_in, intent.token_out, intent.exact, intent.amount, fee,
                                    self.sqrt_price_limit(intent, fee))
                if q is not None:
                    limited[fee] = q
            if limited:
                return max(limited.values(), key=lambda q: (q.amount, -q.fee)).fee
        # Nothing fills: any tier; the swap will revert on its bound (or price limit) and say why.
        return best.fee if best is not None else min(pools)

    @staticmethod
    def sqrt_price_limit(intent: SwapIntent, fee: int) -> int:
        """sqrtPriceX96 at which the pool must stop so that the last unit filled, after the fee,
        trades at the client's worst rate (bound/amount); rounded for the client and clamped into
        the pool's range. The arithmetic: `v3_price.sqrt_price_limit`."""
        return _sqrt_price_limit(intent.token_in, intent.token_out, intent.exact, intent.amount, intent.bound, fee)

    # -- the swap ----------------------------------------------------------------
    def build_swap(self, intent: SwapIntent, fee: int | None = None) -> Call:
        """SwapRouter.exactInputSingle / exactOutputSingle in one pool; `fee` picks the tier
        (default: `choose_tier(intent)`)."""
        fee = self.choose_tier(intent) if fee is None else fee
        if not intent.partial:
            # FOK: no price limit, the bound as given; the router reverts ("Too little received" /
            # "Too much requested", or the pool runs dry) rather than fill part.
            limit, bound = 0, intent.bound
        else:
            # IOC: the pool stops at the price limit, so every unit filled is at the client's
            # rate or better (see sqrt_price_limit) and the fill's average is too; the bound on
            # the *total* would make a partial fill revert, so it gives way to the limit:
            limit = self.sqrt_price_limit(intent, fee)
            if intent.exact is Exact.INPUT:
                # amountOutMinimum = bound would revert any fill of part of the input. 1 keeps
                # only one guard: never give input for nothing (a fill that rounds to 0 out).
                bound = min(intent.bound, 1)
            else:
                # amountInMaximum stays the bound: a fill of part of the output costs less than
                # bound (each unit at most bound/amount), so it never trips it, and the bound is
                # what the wallet approved (intent.max_in) — the router must not pull more.
                bound = intent.bound
        sig = EXACT_INPUT_SINGLE if intent.exact is Exact.INPUT else EXACT_OUTPUT_SINGLE
        # Both structs are (tokenIn, tokenOut, fee, recipient, deadline, amount, bound, sqrtPriceLimitX96).
        data = _calldata(sig, _SWAP_TYPES, [(intent.token_in, intent.token_out, fee, intent.recipient,
                                             intent.deadline, intent.amount, bound, limit)])
        return Call(to=self.router, data=data, spender=self.router)

    # -- the fills ---------------------------------------------------------------
    def pool_fees(self, a: str, b: str) -> dict[str, int]:
        """pool address (lower case) -> fee, for every pool of the pair this factory has in any
        standard or configured fee tier."""
        fees = tuple(dict.fromkeys(self.fee_tiers + STANDARD_FEES))
        return {p.lower(): fee for fee, p in self.pools(a, b, fees).items()}

    def decode_swaps(self, receipt: dict[str, Any], intent: SwapIntent) -> list[SwapLeg]:
        """The pair's pools' Swap logs paying intent.recipient, in the intent's orientation
        (the event's amounts are signed: positive into the pool, negative out of it)."""
        swap_logs = [log for log in receipt["logs"] if log["topics"] and bytes(log["topics"][0]) == SWAP_TOPIC]
        if not swap_logs:
            return []
        pools = self.pool_fees(intent.token_in, intent.token_out)
        in_is_token0 = int(intent.token_in, 16) < int(intent.token_out, 16)
        legs = []
        for log in swap_logs:
            if log["address"].lower() not in pools:
                continue
            recipient = to_checksum_address(bytes(log["topics"][2])[-20:])
            if recipient.lower() != intent.recipient.lower():
                continue
            amount0, amount1 = swap_log_amounts(bytes(log["data"]))
            amount_in, amount_out = (amount0, -amount1) if in_is_token0 else (amount1, -amount0)
            legs.append(SwapLeg(log_index=int(log["logIndex"]), amount_in=amount_in, amount_out=amount_out))
        return legs
