"""Deploy Uniswap V3 on the devnet from the npm build artifacts (`@uniswap/v3-core`,
`@uniswap/v3-periphery`): UniswapV3Factory, SwapRouter, NonfungiblePositionManager and
QuoterV2, then pools with liquidity minted through the position manager.

The V3 contracts come from their own deployer (`V3_DEPLOYER_KEY`, not an anvil account), whose
nonces start at 0 on every fresh chain: the V3 addresses are fixed (see `V3_CANONICAL`) no
matter how many wallets the V2 part funded before. The main deployer (anvil account #0, owner of
the TestTokens) only gives it ETH and mints it the USDC and WBTC the pools need.

Pools (price in quote per base, liquidity in whole tokens):

| pool            | fee  | range                 | deposit                    |
|-----------------|------|-----------------------|----------------------------|
| WETH/USDC       | 500  | 3000 +- ~2% (+-200 ticks) | 100 WETH + 300,000 USDC |
| WETH/USDC       | 3000 | 3000 x/÷ ~2            | 1,000 WETH + 3,000,000 USDC |
| WBTC/USDC       | 3000 | 60000 x/÷ ~2           | 50 WBTC + 3,000,000 USDC   |

The 0.05% pool is narrow and shallow (best for small orders: deeper at the price and a lower
fee, but it runs dry after ~2%); the 0.3% pool is wide (the only one that takes large orders).

All numbers are exact integers: sqrtPriceX96 by `math.isqrt`, ticks by a port of TickMath, and the
amounts each mint takes by a port of LiquidityAmounts/SqrtPriceMath, so the deployer is given
exactly what the pools take and keeps nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.utils import get_create_address

from fixbridge.devnet.deploy import (
    DEPLOYER_ADDRESS,
    DeployError,
    _constructor_data,
    _normalise,
    npm_artifact_path,
    _read_json,
    _Sender,
    _Tx,
    load_artifact,
    load_own_artifact,
)

__all__ = [
    "FEE_TICK_SPACING",
    "MAX_SQRT_RATIO",
    "MIN_SQRT_RATIO",
    "POOL_INIT_CODE_HASH",
    "V3_CANONICAL",
    "V3_DEPLOYER_ADDRESS",
    "V3_DEPLOYER_KEY",
    "V3_POSITIONS",
    "V3Deployment",
    "V3Position",
    "deploy_uniswap_v3",
    "encode_sqrt_price_x96",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "load_hardhat_artifact",
    "position_amounts",
]

# ---------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------

#: The V3 deployer: a devnet-only key derived from a fixed phrase (not an anvil account, so no
#: test or other deployment ever moves its nonce). Everything V3 is deployed from it.
V3_DEPLOYER_KEY = "0x" + keccak(text="fixbridge devnet: uniswap v3 deployer").hex()
V3_DEPLOYER_ADDRESS = Account.from_key(V3_DEPLOYER_KEY).address

#: What the periphery (SwapRouter, NonfungiblePositionManager, QuoterV2) hard-codes in
#: PoolAddress.POOL_INIT_CODE_HASH to compute a pool's address; must be keccak(UniswapV3Pool bytecode).
POOL_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"

MIN_TICK, MAX_TICK = -887272, 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
Q96 = 1 << 96

#: The factory's fee tiers (hundredths of a bip) and their tick spacing.
FEE_TICK_SPACING: dict[int, int] = {100: 1, 500: 10, 3000: 60, 10000: 200}

_E18, _E6, _E8 = 10**18, 10**6, 10**8
_MAX_UINT = 2**256 - 1
_DEADLINE = 2**64 - 1
#: ETH for the V3 deployer's gas (on top of the ETH it wraps for the pools).
_V3_GAS_ETH = 5 * _E18

# Deployment order = V3 deployer nonce. Changing it changes every V3 address.
_V3_ORDER = ("factory", "router", "position_manager", "quoter")
V3_CANONICAL: dict[str, str] = {
    name: get_create_address(V3_DEPLOYER_ADDRESS, nonce) for nonce, name in enumerate(_V3_ORDER)
}

_ARTIFACTS = {
    "factory": ("@uniswap/v3-core", "contracts/UniswapV3Factory.sol/UniswapV3Factory"),
    "pool": ("@uniswap/v3-core", "contracts/UniswapV3Pool.sol/UniswapV3Pool"),
    "router": ("@uniswap/v3-periphery", "contracts/SwapRouter.sol/SwapRouter"),
    "position_manager": (
        "@uniswap/v3-periphery",
        "contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager",
    ),
    "quoter": ("@uniswap/v3-periphery", "contracts/lens/QuoterV2.sol/QuoterV2"),
}


@dataclass(frozen=True)
class V3Position:
    """One liquidity position: `price` is (base units, quote units) for the pool's start price;
    the range is the price's tick +- `width_ticks`, widened outward to the tick spacing;
    `base`/`quote` are the amounts offered (the mint takes all of one, and of the other what
    the price within the range needs)."""

    instrument: str
    fee: int
    price: tuple[int, int]
    width_ticks: int
    base: int
    quote: int


#: The pools and their liquidity (see the module docstring).
V3_POSITIONS: tuple[V3Position, ...] = (
    V3Position("WETH/USDC", 500, (_E18, 3_000 * _E6), 200, 100 * _E18, 300_000 * _E6),
    V3Position("WETH/USDC", 3000, (_E18, 3_000 * _E6), 6960, 1_000 * _E18, 3_000_000 * _E6),
    V3Position("WBTC/USDC", 3000, (_E8, 60_000 * _E6), 6960, 50 * _E8, 3_000_000 * _E6),
)

# ---------------------------------------------------------------------------
# exact V3 math (ports of TickMath, SqrtPriceMath, LiquidityAmounts)
# ---------------------------------------------------------------------------

_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) * 2^96, bit for bit as the contract."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise ValueError(f"tick {tick} out of range")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 1 << 128
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = _MAX_UINT // ratio
    return (ratio >> 32) + (0 if ratio % (1 << 32) == 0 else 1)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is <= sqrt_price_x96."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError("sqrt price out of range")
    lo, hi = MIN_TICK, MAX_TICK
    while lo < hi:  # invariant: ratio(lo) <= price; ratio(hi + 1) > price
        mid = (lo + hi + 1) // 2
        if get_sqrt_ratio_at_tick(mid) <= sqrt_price_x96:
            lo = mid
        else:
            hi = mid - 1
    return lo


def encode_sqrt_price_x96(amount1: int, amount0: int) -> int:
    """floor(sqrt(amount1 / amount0) * 2^96): the pool price token1 per token0, in base units."""
    return math.isqrt((amount1 << 192) // amount0)


def _mul_div(a: int, b: int, d: int) -> int:
    return a * b // d


def _mul_div_up(a: int, b: int, d: int) -> int:
    return -(-a * b // d)


def _amount0_delta(sa: int, sb: int, liquidity: int, round_up: bool) -> int:
    sa, sb = min(sa, sb), max(sa, sb)
    n1, n2 = liquidity << 96, sb - sa
    if round_up:
        return -(-_mul_div_up(n1, n2, sb) // sa)
    return _mul_div(n1, n2, sb) // sa


def _amount1_delta(sa: int, sb: int, liquidity: int, round_up: bool) -> int:
    sa, sb = min(sa, sb), max(sa, sb)
    return _mul_div_up(liquidity, sb - sa, Q96) if round_up else _mul_div(liquidity, sb - sa, Q96)


def _liquidity_for_amounts(sp: int, sa: int, sb: int, amount0: int, amount1: int) -> int:
    """LiquidityAmounts.getLiquidityForAmounts (what NonfungiblePositionManager.mint uses)."""
    sa, sb = min(sa, sb), max(sa, sb)

    def for0(a: int, b: int) -> int:
        return _mul_div(amount0, _mul_div(a, b, Q96), b - a)

    def for1(a: int, b: int) -> int:
        return _mul_div(amount1, Q96, b - a)

    if sp <= sa:
        liquidity = for0(sa, sb)
    elif sp < sb:
        liquidity = min(for0(sp, sb), for1(sa, sp))
    else:
        liquidity = for1(sa, sb)
    if liquidity >= 1 << 128:
        raise ValueError("liquidity overflows uint128")
    return liquidity


def position_amounts(
    sqrt_price_x96: int, tick_lower: int, tick_upper: int, amount0_desired: int, amount1_desired: int
) -> tuple[int, int, int]:
    """(liquidity, amount0, amount1) that NonfungiblePositionManager.mint with these desired
    amounts mints and takes from the payer (UniswapV3Pool._modifyPosition, rounding up)."""
    sa, sb = get_sqrt_ratio_at_tick(tick_lower), get_sqrt_ratio_at_tick(tick_upper)
    liquidity = _liquidity_for_amounts(sqrt_price_x96, sa, sb, amount0_desired, amount1_desired)
    tick = get_tick_at_sqrt_ratio(sqrt_price_x96)
    if tick < tick_lower:
        return liquidity, _amount0_delta(sa, sb, liquidity, True), 0
    if tick < tick_upper:
        return (
            liquidity,
            _amount0_delta(sqrt_price_x96, sb, liquidity, True),
            _amount1_delta(sa, sqrt_price_x96, liquidity, True),
        )
    return liquidity, 0, _amount1_delta(sa, sb, liquidity, True)


# ---------------------------------------------------------------------------
# artifacts
# ---------------------------------------------------------------------------


def load_hardhat_artifact(package: str, path: str) -> dict[str, Any]:
    """A hardhat artifact of an npm package: node_modules/<package>/artifacts/<path>.json,
    e.g. load_hardhat_artifact("@uniswap/v3-periphery", "contracts/SwapRouter.sol/SwapRouter")."""
    file = npm_artifact_path(package, f"artifacts/{path}.json", path)
    return _normalise(_read_json(Path(file)), Path(path).name, file)


def _v3_artifacts() -> dict[str, dict[str, Any]]:
    return {key: load_hardhat_artifact(pkg, path) for key, (pkg, path) in _ARTIFACTS.items()}


def check_init_code_hash(arts: dict[str, dict[str, Any]]) -> None:
    """The periphery finds pools by CREATE2 address from POOL_INIT_CODE_HASH: it must be the
    hash of the core's pool bytecode, and it must be what the periphery bytecode carries."""
    got = "0x" + keccak(hexstr=arts["pool"]["bytecode"]).hex()
    if got != POOL_INIT_CODE_HASH:
        raise DeployError(
            f"keccak of the @uniswap/v3-core UniswapV3Pool bytecode is {got}, but the periphery's "
            f"PoolAddress.POOL_INIT_CODE_HASH is {POOL_INIT_CODE_HASH}: the periphery could not find "
            "any pool; install the pinned @uniswap/v3-core / v3-periphery versions (npm ci)"
        )
    needle = POOL_INIT_CODE_HASH[2:]
    for key in ("router", "position_manager", "quoter"):
        if needle not in arts[key]["bytecode"].lower():
            raise DeployError(
                f"{arts[key]['contractName']} bytecode does not carry POOL_INIT_CODE_HASH "
                f"{POOL_INIT_CODE_HASH}; the @uniswap/v3-periphery artifacts do not match v3-core"
            )


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class V3Deployment:
    factory: str
    router: str  # SwapRouter
    position_manager: str  # NonfungiblePositionManager
    quoter: str  # QuoterV2
    #: instrument key ("WETH/USDC", "WBTC/USDC") -> fee -> pool address
    pools: dict[str, dict[int, str]] = field(default_factory=dict)
    #: every fee tier a pool was deployed in, ascending
    fee_tiers: tuple[int, ...] = ()
    deployer: str = V3_DEPLOYER_ADDRESS


# ---------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    position: V3Position
    token0: str
    token1: str
    base_is_token0: bool
    sqrt_price_x96: int
    tick_lower: int
    tick_upper: int
    liquidity: int
    amount0: int
    amount1: int
    amount0_desired: int
    amount1_desired: int

    def amount_of(self, token: str) -> int:
        return self.amount0 if token == self.token0 else self.amount1 if token == self.token1 else 0


def _plan(pos: V3Position, tokens: dict[str, str]) -> _Plan:
    base, quote = pos.instrument.split("/")
    a_base, a_quote = to_checksum_address(tokens[base]), to_checksum_address(tokens[quote])
    base_is_token0 = int(a_base, 16) < int(a_quote, 16)
    price_base, price_quote = pos.price
    if base_is_token0:  # price = token1/token0 = quote per base
        token0, token1, sqrt_p = a_base, a_quote, encode_sqrt_price_x96(price_quote, price_base)
        d0, d1 = pos.base, pos.quote
    else:  # price = base per quote
        token0, token1, sqrt_p = a_quote, a_base, encode_sqrt_price_x96(price_base, price_quote)
        d0, d1 = pos.quote, pos.base
    spacing = FEE_TICK_SPACING[pos.fee]
    tick = get_tick_at_sqrt_ratio(sqrt_p)
    lower = (tick - pos.width_ticks) // spacing * spacing  # floor to the spacing
    upper = -(-(tick + pos.width_ticks) // spacing) * spacing  # ceil to the spacing
    if not (MIN_TICK <= lower < tick < upper <= MAX_TICK):
        raise DeployError(f"{pos.instrument} {pos.fee}: bad range [{lower}, {upper}] around tick {tick}")
    liquidity, a0, a1 = position_amounts(sqrt_p, lower, upper, d0, d1)
    if liquidity == 0 or a0 > d0 or a1 > d1:
        raise DeployError(f"{pos.instrument} {pos.fee}: liquidity math gave L={liquidity}, amounts {a0}, {a1}")
    return _Plan(pos, token0, token1, base_is_token0, sqrt_p, lower, upper, liquidity, a0, a1, d0, d1)


def deploy_uniswap_v3(
    w3: Web3,
    sender: _Sender,
    tokens: dict[str, str],
    *,
    positions: tuple[V3Position, ...] = V3_POSITIONS,
    log: Callable[[str], None] | None = None,
) -> V3Deployment:
    """Deploy V3 (factory, SwapRouter, NonfungiblePositionManager, QuoterV2) and `positions`.

    `sender` is the main deployer's sender (anvil account #0, owner of the TestTokens): it pays
    the V3 deployer's ETH and mints it the tokens. `tokens` is symbol -> address (WETH, USDC,
    WBTC). The V3 deployer must be fresh (nonce 0). Raises DeployError on anything unexpected.
    """
    say = log or (lambda _msg: None)
    arts = _v3_artifacts()
    check_init_code_hash(arts)

    v3 = _Sender(w3, V3_DEPLOYER_KEY, sender.chain_id, sender.timeout)
    if v3.nonce != 0:
        raise DeployError(
            f"V3 deployer {V3_DEPLOYER_ADDRESS} already has nonce {v3.nonce}: "
            "deploy_uniswap_v3 needs a fresh chain (the fixed V3 addresses come from its nonces 0..3)"
        )
    if sender.address != DEPLOYER_ADDRESS:
        raise DeployError(f"the tokens' owner {DEPLOYER_ADDRESS} must fund the V3 deployer, got {sender.address}")

    plans = [_plan(p, tokens) for p in positions]
    need = {sym: sum(p.amount_of(to_checksum_address(addr)) for p in plans) for sym, addr in tokens.items()}
    eth = need.get("WETH", 0) + _V3_GAS_ETH
    if w3.eth.get_balance(sender.address) < eth + _E18:
        raise DeployError(f"deployer {sender.address} cannot give the V3 deployer {eth} wei; start anvil with a larger --balance")

    token_abi = load_own_artifact("TestToken")["abi"]
    weth = w3.eth.contract(address=tokens["WETH"], abi=load_artifact("@uniswap/v2-periphery", "WETH9")["abi"])
    erc20 = {sym: w3.eth.contract(address=addr, abi=token_abi) for sym, addr in tokens.items()}

    # 1. the V3 deployer's ETH and tokens (from the tokens' owner)
    sender.batch(
        [_Tx("ETH -> V3 deployer", V3_DEPLOYER_ADDRESS, "0x", eth)]
        + [
            _Tx(f"{sym}.mint(V3 deployer)", tokens[sym], erc20[sym].encode_abi("mint", [V3_DEPLOYER_ADDRESS, need[sym]]))
            for sym in tokens
            if sym != "WETH" and need.get(sym, 0) > 0
        ]
    )

    # 2. the contracts, in _V3_ORDER (V3 deployer nonces 0..3)
    addr = dict(V3_CANONICAL)
    receipts = v3.batch(
        [
            _Tx("deploy UniswapV3Factory", None, arts["factory"]["bytecode"]),
            _Tx("deploy SwapRouter", None, _constructor_data(arts["router"], addr["factory"], tokens["WETH"])),
            _Tx(
                "deploy NonfungiblePositionManager",
                None,
                # tokenDescriptor: only tokenURI() uses it, the devnet needs no NFT metadata
                _constructor_data(arts["position_manager"], addr["factory"], tokens["WETH"], "0x" + "00" * 20),
            ),
            _Tx("deploy QuoterV2", None, _constructor_data(arts["quoter"], addr["factory"], tokens["WETH"])),
        ]
    )
    for name, receipt in zip(_V3_ORDER, receipts, strict=True):
        if receipt["contractAddress"] != addr[name]:
            raise DeployError(f"V3 {name} landed at {receipt['contractAddress']}, expected {addr[name]}")
    say(f"deployed UniswapV3Factory, SwapRouter, NonfungiblePositionManager, QuoterV2 (block {receipts[-1]['blockNumber']})")

    factory = w3.eth.contract(address=addr["factory"], abi=arts["factory"]["abi"])
    npm = w3.eth.contract(address=addr["position_manager"], abi=arts["position_manager"]["abi"])

    # 3. WETH for the pools, the position manager's allowances, the pools (created + initialised)
    v3.batch(
        ([_Tx("WETH.deposit", tokens["WETH"], weth.encode_abi("deposit"), need["WETH"])] if need.get("WETH") else [])
        + [
            _Tx(f"{sym}.approve(NonfungiblePositionManager)", tokens[sym],
                erc20[sym].encode_abi("approve", [addr["position_manager"], _MAX_UINT]))
            for sym in tokens
            if need.get(sym, 0) > 0
        ]
        + [
            _Tx(
                f"create {p.position.instrument} {p.position.fee}",
                addr["position_manager"],
                npm.encode_abi("createAndInitializePoolIfNecessary", [p.token0, p.token1, p.position.fee, p.sqrt_price_x96]),
            )
            for p in {(p.token0, p.token1, p.position.fee): p for p in plans}.values()
        ]
    )

    # 4. the positions: exactly the amounts the exact math says, checked by the mins
    v3.batch(
        [
            _Tx(
                f"mint {p.position.instrument} {p.position.fee}",
                addr["position_manager"],
                npm.encode_abi(
                    "mint",
                    [(p.token0, p.token1, p.position.fee, p.tick_lower, p.tick_upper, p.amount0_desired,
                      p.amount1_desired, p.amount0, p.amount1, V3_DEPLOYER_ADDRESS, _DEADLINE)],
                ),
            )
            for p in plans
        ]
    )

    pools: dict[str, dict[int, str]] = {}
    pool_abi = arts["pool"]["abi"]
    for p in plans:
        pool = factory.functions.getPool(p.token0, p.token1, p.position.fee).call()
        if int(pool, 16) == 0:
            raise DeployError(f"factory has no {p.position.instrument} {p.position.fee} pool after creating it")
        pools.setdefault(p.position.instrument, {})[p.position.fee] = to_checksum_address(pool)
    for p in plans:
        pool = w3.eth.contract(address=pools[p.position.instrument][p.position.fee], abi=pool_abi)
        if pool.functions.slot0().call()[0] != p.sqrt_price_x96:
            raise DeployError(f"{p.position.instrument} {p.position.fee}: pool price is not the one initialised")
    for sym, address in tokens.items():
        left = erc20[sym].functions.balanceOf(V3_DEPLOYER_ADDRESS).call()
        if left:
            raise DeployError(f"V3 deployer kept {left} {sym} units: the mint took other amounts than computed")
    say("V3 pools: " + ", ".join(f"{k} {fee} {a}" for k, by_fee in pools.items() for fee, a in by_fee.items()))

    # The periphery computes pool addresses from POOL_INIT_CODE_HASH; a quote through QuoterV2
    # proves it finds the pools the factory deployed.
    quoter = w3.eth.contract(address=addr["quoter"], abi=arts["quoter"]["abi"])
    if "WETH/USDC" in pools:
        for fee in pools["WETH/USDC"]:
            try:
                out = quoter.functions.quoteExactInputSingle((tokens["WETH"], tokens["USDC"], _E18, fee, 0)).call()[0]
            except Exception as exc:
                raise DeployError(f"QuoterV2 cannot quote 1 WETH -> USDC at fee {fee}: {exc} (init code hash mismatch?)") from exc
            if not 2_980 * _E6 <= out <= 3_000 * _E6:
                raise DeployError(f"QuoterV2 quotes 1 WETH = {out} USDC units at fee {fee}, expected about 2990")

    return V3Deployment(
        factory=addr["factory"],
        router=addr["router"],
        position_manager=addr["position_manager"],
        quoter=addr["quoter"],
        pools=pools,
        fee_tiers=tuple(sorted({p.position.fee for p in plans})),
        deployer=V3_DEPLOYER_ADDRESS,
    )
