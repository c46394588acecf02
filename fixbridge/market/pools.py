"""One pool's state as of a block, immutable: an update makes a new one, so a reader holding a
pool never sees half a block. Quotes are the protocol's own integer maths (v2_math, v3_math)."""
from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from fixbridge.market import v2_math, v3_math
from fixbridge.market.v3_math import MAX_SQRT_RATIO, MIN_SQRT_RATIO, SwapFailed

V2_FEE = 3000  # hundredths of a bip: the pair's 0.3 %


class NoQuote(ArithmeticError):
    """The pool cannot do the swap as asked (it would revert, or cannot fill all of it)."""


class Quote(NamedTuple):
    amount_in: int
    amount_out: int
    sqrt_price_after: int = 0   # V3 only
    ticks_crossed: int = 0      # V3 only


@dataclass(frozen=True)
class PoolKey:
    """What a pool is: its venue, chain, address (lower-case) and tokens (token0 < token1)."""
    venue: str
    kind: Literal["uniswap_v2", "uniswap_v3"]
    chain: str
    address: str
    token0: str
    token1: str
    fee: int = V2_FEE
    spacing: int = 0

    @property
    def label(self) -> str:
        """How the pool is named on the wire (MDMkt): the venue, with the fee tier for V3."""
        return self.venue if self.kind == "uniswap_v2" else f"{self.venue}/{self.fee}"

    def zero_for_one(self, token_in: str) -> bool:
        t = token_in.lower()
        if t not in (self.token0, self.token1):
            raise NoQuote(f"{t} is not a token of pool {self.address}")
        return t == self.token0


@dataclass(frozen=True)
class V2Pool:
    key: PoolKey
    reserve0: int
    reserve1: int

    def synced(self, reserve0: int, reserve1: int) -> "V2Pool":
        return replace(self, reserve0=reserve0, reserve1=reserve1)

    def _reserves(self, token_in: str) -> tuple[int, int]:
        return (self.reserve0, self.reserve1) if self.key.zero_for_one(token_in) else (self.reserve1, self.reserve0)

    def quote_exact_in(self, token_in: str, amount_in: int, sqrt_price_limit_x96: int = 0) -> Quote:
        r_in, r_out = self._reserves(token_in)
        try:
            return Quote(amount_in, v2_math.get_amount_out(amount_in, r_in, r_out))
        except v2_math.InsufficientLiquidity as e:
            raise NoQuote(str(e)) from None

    def quote_exact_out(self, token_in: str, amount_out: int, sqrt_price_limit_x96: int = 0) -> Quote:
        r_in, r_out = self._reserves(token_in)
        try:
            return Quote(v2_math.get_amount_in(amount_out, r_in, r_out), amount_out)
        except v2_math.InsufficientLiquidity as e:
            raise NoQuote(str(e)) from None

    def price_x(self) -> tuple[int, int]:
        """The mid as a ratio token1 per token0, in base units: (numerator, denominator)."""
        return self.reserve1, self.reserve0


@dataclass(frozen=True)
class V3Pool:
    key: PoolKey
    sqrt_price_x96: int
    tick: int
    liquidity: int
    # The initialized ticks (liquidityGross > 0), ascending, and their liquidityNet / Gross.
    ticks: tuple[int, ...] = ()
    net: dict[int, int] = field(default_factory=dict)
    gross: dict[int, int] = field(default_factory=dict)

    def swapped(self, sqrt_price_x96: int, liquidity: int, tick: int) -> "V3Pool":
        """After a Swap event: the event carries the pool's new price, tick and liquidity."""
        return replace(self, sqrt_price_x96=sqrt_price_x96, liquidity=liquidity, tick=tick)

    def position_changed(self, lower: int, upper: int, delta: int) -> "V3Pool":
        """After a Mint (delta > 0) or Burn (delta < 0) of `delta` liquidity in [lower, upper):
        Tick.update and the pool's in-range liquidity, as _modifyPosition does them."""
        if delta == 0:
            return self
        net, gross, ticks = dict(self.net), dict(self.gross), list(self.ticks)
        for t, signed in ((lower, delta), (upper, -delta)):
            g = gross.get(t, 0) + abs(delta) * (1 if delta > 0 else -1)
            n = net.get(t, 0) + signed
            if g == 0:
                gross.pop(t, None)
                net.pop(t, None)
                if t in ticks:
                    ticks.remove(t)
            else:
                if t not in gross:
                    insort(ticks, t)
                gross[t], net[t] = g, n
        liquidity = self.liquidity + delta if lower <= self.tick < upper else self.liquidity
        return replace(self, liquidity=liquidity, ticks=tuple(ticks), net=net, gross=gross)

    def _swap(self, zero_for_one: bool, amount: int, limit: int) -> v3_math.SwapResult:
        if limit == 0:
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        try:
            return v3_math.swap(sqrt_price_x96=self.sqrt_price_x96, tick=self.tick, liquidity=self.liquidity,
                                fee=self.key.fee, spacing=self.key.spacing, ticks=self.ticks, liquidity_net=self.net,
                                zero_for_one=zero_for_one, amount_specified=amount, sqrt_price_limit_x96=limit)
        except SwapFailed as e:
            raise NoQuote(f"the pool would revert: {e}") from None

    def quote_exact_in(self, token_in: str, amount_in: int, sqrt_price_limit_x96: int = 0) -> Quote:
        """QuoterV2.quoteExactInputSingle: with no price limit, the pool must take all of the input
        (a swap that runs out of price range is no quote, as the venue adapter treats it)."""
        z = self.key.zero_for_one(token_in)
        r = self._swap(z, amount_in, sqrt_price_limit_x96)
        took, out = (r.amount0, -r.amount1) if z else (r.amount1, -r.amount0)
        if out <= 0 and took <= 0:
            raise NoQuote("no liquidity")  # QuoterV2's callback requires a positive delta
        if sqrt_price_limit_x96 == 0 and took != amount_in:
            raise NoQuote("the pool cannot take all of the input")
        return Quote(took, out, r.sqrt_price_x96, r.ticks_crossed)

    def quote_exact_out(self, token_in: str, amount_out: int, sqrt_price_limit_x96: int = 0) -> Quote:
        """QuoterV2.quoteExactOutputSingle: with no price limit, all of the output or no quote."""
        z = self.key.zero_for_one(token_in)
        r = self._swap(z, -amount_out, sqrt_price_limit_x96)
        paid, got = (r.amount0, -r.amount1) if z else (r.amount1, -r.amount0)
        if paid <= 0 and got <= 0:
            raise NoQuote("no liquidity")
        if sqrt_price_limit_x96 == 0 and got != amount_out:
            raise NoQuote("the pool cannot give all of the output")
        return Quote(paid, got, r.sqrt_price_x96, r.ticks_crossed)

    def price_x(self) -> tuple[int, int]:
        return self.sqrt_price_x96 ** 2, 1 << 192

    def levels(self) -> list[tuple[int, int]]:
        """(tick, liquidity in force from that tick up) for every initialized tick: the book's levels."""
        out, running = [], 0
        for t in self.ticks:
            running += self.net[t]
            out.append((t, running))
        return out


Pool = V2Pool | V3Pool
