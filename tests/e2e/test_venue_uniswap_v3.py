"""The Uniswap V3 venue on the real V3 contracts of the session devnet: quotes from every fee
tier, exact-in/exact-out swaps through SwapRouter built by the adapter and read back from the
pool's Swap log, and IOC partial fills stopped by the price limit (vs FOK reverting)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from eth_abi import decode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, function_signature_to_4byte_selector
from web3 import Web3
from web3.exceptions import ContractLogicError

from fixbridge.config.spec import load_spec
from fixbridge.devnet.deploy import load_own_artifact
from fixbridge.devnet.uniswap_v3 import (
    V3_CANONICAL,
    V3_DEPLOYER_ADDRESS,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    load_hardhat_artifact,
)
from fixbridge.venues import build_venue
from fixbridge.venues import uniswap_v3 as v3mod
from fixbridge.venues.base import Exact, SwapIntent
from fixbridge.venues.uniswap_v3 import NoQuote, UniswapV3

from support import ADDR, KEYS

E18, E6, E8 = 10**18, 10**6, 10**8
TRADER, TRADER_KEY = ADDR[1], KEYS[1]
FAR = 2**40  # deadline far in the future


class Signer:
    """Signs raw transactions from one key with nonces it counts itself."""

    def __init__(self, w3: Web3, key: str) -> None:
        from eth_account import Account

        self.w3, self.account = w3, Account.from_key(key)
        self.nonce = w3.eth.get_transaction_count(self.account.address, "pending")

    def tx(self, to: str, data: bytes, value: int = 0) -> dict:
        return {"from": self.account.address, "to": to, "data": data, "value": value}

    def send(self, to: str, data: bytes, value: int = 0) -> dict:
        call = self.tx(to, data, value)
        gas = self.w3.eth.estimate_gas(call)
        signed = self.account.sign_transaction({**call, "gas": gas + gas // 5, "nonce": self.nonce,
                                                "chainId": self.w3.eth.chain_id, "gasPrice": self.w3.eth.gas_price})
        self.nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction),
                                                           timeout=10, poll_latency=0.05)
        assert receipt["status"] == 1
        return receipt


@pytest.fixture(scope="module")
def chain(devnet) -> Iterator[tuple[Web3, object]]:
    """The session devnet, rolled back after this module (the other modules see it untouched)."""
    snap = devnet.rpc("evm_snapshot")
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    yield w3, devnet.deployment
    assert devnet.rpc("evm_revert", [snap]) is True


@pytest.fixture(scope="module")
def venue(chain, devnet) -> UniswapV3:
    w3, _ = chain
    spec = load_spec(devnet.spec_path)
    v = build_venue(spec.venues["uniswap_v3"], w3)
    assert isinstance(v, UniswapV3) and v.fee_tiers == (500, 3000)
    return v


@pytest.fixture(scope="module")
def trader(chain, venue) -> Signer:
    w3, dep = chain
    s = Signer(w3, TRADER_KEY)
    s.send(dep.weth, function_signature_to_4byte_selector("deposit()"), 400 * E18)  # 100 WETH -> 500 WETH
    erc20 = w3.eth.contract(abi=load_own_artifact("TestToken")["abi"])
    for token in (dep.weth, dep.usdc, dep.wbtc):
        s.send(token, bytes.fromhex(erc20.encode_abi("approve", [venue.router, 2**256 - 1])[2:]))
    return s


@pytest.fixture
def snapshot(devnet, trader) -> Iterator[None]:
    """Each swap test starts from the deployed pools (and the trader's approvals)."""
    snap = devnet.rpc("evm_snapshot")
    nonce = trader.nonce
    yield
    assert devnet.rpc("evm_revert", [snap]) is True
    trader.nonce = nonce


def balance(w3: Web3, token: str, who: str) -> int:
    out = w3.eth.call({"to": token, "data": function_signature_to_4byte_selector("balanceOf(address)")
                       + bytes(12) + bytes.fromhex(who[2:])})
    return decode(["uint256"], out)[0]


def slot0_sqrt_price(w3: Web3, pool: str) -> int:
    return decode(["uint160"], w3.eth.call({"to": pool, "data": function_signature_to_4byte_selector("slot0()")})[:32])[0]


def swap_and_check(w3: Web3, venue: UniswapV3, trader: Signer, intent: SwapIntent, fee: int):
    """Build, send, decode; the balances must move exactly as the one Swap log says."""
    in_before, out_before = balance(w3, intent.token_in, TRADER), balance(w3, intent.token_out, TRADER)
    call = venue.build_swap(intent)
    assert call.to == call.spender == venue.router
    receipt = trader.send(call.to, call.data)
    legs = venue.decode_swaps(receipt, intent)
    assert len(legs) == 1
    leg = legs[0]
    [log] = [log for log in receipt["logs"] if log["logIndex"] == leg.log_index]
    assert log["address"] == venue.pool(intent.token_in, intent.token_out, fee)  # the tier chosen
    assert balance(w3, intent.token_in, TRADER) == in_before - leg.amount_in
    assert balance(w3, intent.token_out, TRADER) == out_before + leg.amount_out
    return leg


# -- the contracts and the math ----------------------------------------------------------------


def test_signatures_match_the_artifacts() -> None:
    """The adapter carries no artifact; its signatures must be the real ABI's."""
    def selectors(package: str, path: str) -> set[bytes]:
        abi = load_hardhat_artifact(package, path)["abi"]
        return {function_abi_to_4byte_selector(e) for e in abi if e["type"] == "function"}

    router = selectors("@uniswap/v3-periphery", "contracts/SwapRouter.sol/SwapRouter")
    quoter = selectors("@uniswap/v3-periphery", "contracts/lens/QuoterV2.sol/QuoterV2")
    factory = selectors("@uniswap/v3-core", "contracts/UniswapV3Factory.sol/UniswapV3Factory")
    for sig, where in [(v3mod.EXACT_INPUT_SINGLE, router), (v3mod.EXACT_OUTPUT_SINGLE, router),
                       (v3mod.QUOTE_EXACT_IN, quoter), (v3mod.QUOTE_EXACT_OUT, quoter), (v3mod.GET_POOL, factory)]:
        assert function_signature_to_4byte_selector(sig) in where, sig
    pool_abi = load_hardhat_artifact("@uniswap/v3-core", "contracts/UniswapV3Pool.sol/UniswapV3Pool")["abi"]
    swap = next(e for e in pool_abi if e["type"] == "event" and e["name"] == "Swap")
    assert event_abi_to_log_topic(swap) == v3mod.SWAP_TOPIC
    assert [i["name"] for i in swap["inputs"] if i["indexed"]] == ["sender", "recipient"]


def test_tick_math_is_the_contracts() -> None:
    assert get_sqrt_ratio_at_tick(0) == 2**96
    assert get_sqrt_ratio_at_tick(-887272) == v3mod.MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(887272) == v3mod.MAX_SQRT_RATIO
    for tick in (-196250, -1, 1, 60, 69081):
        s = get_sqrt_ratio_at_tick(tick)
        assert get_tick_at_sqrt_ratio(s) == tick and get_tick_at_sqrt_ratio(s - 1) == tick - 1


@pytest.mark.parametrize("exact", [Exact.INPUT, Exact.OUTPUT])
@pytest.mark.parametrize("fee", [500, 3000])
def test_price_limit_is_rounded_for_the_client(chain, exact: Exact, fee: int) -> None:
    _, dep = chain
    weth, usdc = dep.weth, dep.usdc  # WETH is token0 of WETH/USDC
    assert int(weth, 16) < int(usdc, 16)
    weth_units, usdc_units = 7 * E18, 20_650 * E6 + 1  # 2950 USDC per WETH and a bit: not a perfect square

    def intent(token_in: str, token_out: str) -> SwapIntent:
        units = {weth: weth_units, usdc: usdc_units}
        # exact input: amount = what goes in, bound = least out; exact output: the other way round
        amount, bound = (units[token_in], units[token_out]) if exact is Exact.INPUT else (units[token_out], units[token_in])
        return SwapIntent(token_in, token_out, exact, amount, bound, TRADER, FAR, partial=True)

    # The pool price is USDC units per WETH unit (token1/token0); at the limit the last unit, after
    # the fee, trades at exactly 2950.0000001: pool price = 20650e6+1 / 7e18 / (1 - fee).
    # Selling WETH (token0) the price falls: the limit rounds up.
    num, den = usdc_units * 10**6, weth_units * (10**6 - fee)
    s = UniswapV3.sqrt_price_limit(intent(weth, usdc), fee)
    assert s * s * den >= num << 192 > (s - 1) * (s - 1) * den
    # Buying WETH with USDC (token1) the price rises: pool price = 20650e6+1 / 7e18 * (1 - fee),
    # the limit rounds down.
    num, den = usdc_units * (10**6 - fee), weth_units * 10**6
    s = UniswapV3.sqrt_price_limit(intent(usdc, weth), fee)
    assert s * s * den <= num << 192 < (s + 1) * (s + 1) * den


# -- quotes ------------------------------------------------------------------------------------


def test_devnet_v3_is_where_the_spec_says(chain, venue) -> None:
    _, dep = chain
    assert (venue.router, venue.factory, venue.quoter) == (dep.v3.router, dep.v3.factory, dep.v3.quoter)
    assert dep.v3.router == V3_CANONICAL["router"] and dep.v3.deployer == V3_DEPLOYER_ADDRESS
    assert venue.pools(dep.weth, dep.usdc) == dep.v3.pools["WETH/USDC"] and set(dep.v3.pools["WETH/USDC"]) == {500, 3000}
    assert venue.pools(dep.wbtc, dep.usdc) == dep.v3.pools["WBTC/USDC"] and set(dep.v3.pools["WBTC/USDC"]) == {3000}
    assert venue.pools(dep.wbtc, dep.weth) == {}


def test_quotes_come_from_both_tiers_and_the_best_wins(chain, venue) -> None:
    _, dep = chain
    # 1 WETH: both tiers; the narrow 0.05% pool pays more
    small = venue.quotes(dep.weth, dep.usdc, Exact.INPUT, E18)
    assert set(small) == {500, 3000}
    assert 2_995 * E6 < small[500].amount <= 3_000 * E6 and 2_985 * E6 < small[3000].amount < small[500].amount
    best = venue.quote_detail(dep.weth, dep.usdc, Exact.INPUT, E18)
    assert best == small[500] and venue.best_tier(dep.weth, dep.usdc, Exact.INPUT, E18) == 500
    assert venue.quote(dep.weth, dep.usdc, Exact.INPUT, E18) == small[500].amount
    # 200 WETH: more than the narrow pool holds in its range; only the wide 0.3% pool takes it
    big = venue.quotes(dep.weth, dep.usdc, Exact.INPUT, 200 * E18)
    assert set(big) == {3000}
    assert venue.quote_detail(dep.weth, dep.usdc, Exact.INPUT, 200 * E18).fee == 3000
    # exact output: the least input wins (0.05% for 3000 USDC, 0.3% for 600,000 USDC)
    out_small = venue.quotes(dep.weth, dep.usdc, Exact.OUTPUT, 3_000 * E6)
    assert set(out_small) == {500, 3000} and out_small[500].amount < out_small[3000].amount
    assert venue.quote_detail(dep.weth, dep.usdc, Exact.OUTPUT, 3_000 * E6) == out_small[500]
    assert venue.best_tier(dep.weth, dep.usdc, Exact.OUTPUT, 600_000 * E6) == 3000
    # WBTC/USDC: one tier, about 60000; WBTC/WETH: no V3 pool at all
    q = venue.quote_detail(dep.wbtc, dep.usdc, Exact.INPUT, E8)
    assert q.fee == 3000 and 59_000 * E6 < q.amount < 60_000 * E6
    with pytest.raises(NoQuote):
        venue.quote(dep.wbtc, dep.weth, Exact.INPUT, E8)
    with pytest.raises(NoQuote):  # more USDC than either pool holds
        venue.quote(dep.weth, dep.usdc, Exact.OUTPUT, 10_000_000 * E6)


# -- swaps -------------------------------------------------------------------------------------


def test_exact_input_swap_fills_as_quoted(chain, venue, trader, snapshot) -> None:
    w3, dep = chain
    amount = 2 * E18  # WETH in (token0 of WETH/USDC) for USDC out
    q = venue.quote_detail(dep.weth, dep.usdc, Exact.INPUT, amount)
    assert q.fee == 500
    intent = SwapIntent(dep.weth, dep.usdc, Exact.INPUT, amount, q.amount, TRADER, FAR)
    leg = swap_and_check(w3, venue, trader, intent, q.fee)
    assert (leg.amount_in, leg.amount_out) == (amount, q.amount)  # nothing moved in between: exactly the quote
    assert 5_990 * E6 < leg.amount_out < 6_000 * E6


def test_exact_output_swap_fills_as_quoted(chain, venue, trader, snapshot) -> None:
    w3, dep = chain
    amount = 150 * E18  # exactly this WETH out, for USDC in (token1); only the wide pool has it
    q = venue.quote_detail(dep.usdc, dep.weth, Exact.OUTPUT, amount)
    assert q.fee == 3000
    intent = SwapIntent(dep.usdc, dep.weth, Exact.OUTPUT, amount, q.amount, TRADER, FAR)
    leg = swap_and_check(w3, venue, trader, intent, q.fee)
    assert (leg.amount_in, leg.amount_out) == (q.amount, amount)
    assert 450_000 * E6 < leg.amount_in < 500_000 * E6
    # a second swap of the pair in the other tier is decoded too; another recipient's is not
    intent2 = SwapIntent(dep.weth, dep.usdc, Exact.OUTPUT, 1_000 * E6, E18, TRADER, FAR)
    call = venue.build_swap(intent2, fee=500)
    receipt = trader.send(call.to, call.data)
    [leg2] = venue.decode_swaps(receipt, intent2)
    assert leg2.amount_out == 1_000 * E6 and leg2.amount_in < E18
    assert venue.decode_swaps(receipt, SwapIntent(dep.weth, dep.usdc, Exact.OUTPUT, 1, 1, ADDR[2], FAR)) == []


def test_ioc_sell_fills_part_at_no_worse_than_the_limit(chain, venue, trader, snapshot) -> None:
    w3, dep = chain
    # Sell 200 WETH at 2950 or better: far more than both pools hold down to that price.
    intent = SwapIntent(dep.weth, dep.usdc, Exact.INPUT, 200 * E18, 200 * 2_950 * E6, TRADER, FAR, partial=True)
    fee = venue.choose_tier(intent)
    assert fee == 500  # the narrow pool gives the most down to the limit
    limit = venue.sqrt_price_limit(intent, fee)
    leg = swap_and_check(w3, venue, trader, intent, fee)
    assert 0 < leg.amount_in < intent.amount  # part of it
    assert 50 * E18 < leg.amount_in < 100 * E18
    assert leg.amount_out * intent.amount >= intent.bound * leg.amount_in  # average at the limit or better
    pool = venue.pool(dep.weth, dep.usdc, fee)
    assert slot0_sqrt_price(w3, pool) >= limit  # the pool stopped at the limit (selling token0: price falls)


def test_ioc_buy_by_exact_output_fills_part(chain, venue, trader, snapshot) -> None:
    w3, dep = chain
    # Buy 300 WETH paying at most 3040 USDC each: USDC (token1) in, the price rises to the limit.
    intent = SwapIntent(dep.usdc, dep.weth, Exact.OUTPUT, 300 * E18, 300 * 3_040 * E6, TRADER, FAR, partial=True)
    fee = venue.choose_tier(intent)
    leg = swap_and_check(w3, venue, trader, intent, fee)
    assert 0 < leg.amount_out < intent.amount
    assert leg.amount_in * intent.amount <= intent.bound * leg.amount_out  # paid no more than 3040 each
    assert slot0_sqrt_price(w3, venue.pool(dep.usdc, dep.weth, fee)) <= venue.sqrt_price_limit(intent, fee)


def test_fok_of_the_same_reverts(chain, venue, trader) -> None:
    w3, dep = chain
    for intent, reason in [
        (SwapIntent(dep.weth, dep.usdc, Exact.INPUT, 200 * E18, 200 * 2_950 * E6, TRADER, FAR), "Too little received"),
        (SwapIntent(dep.usdc, dep.weth, Exact.OUTPUT, 300 * E18, 300 * 3_040 * E6, TRADER, FAR), "Too much requested"),
    ]:
        call = venue.build_swap(intent)
        with pytest.raises(ContractLogicError, match=reason):
            w3.eth.estimate_gas(trader.tx(call.to, call.data))
        # and as IOC it goes through
        partial = dataclasses.replace(intent, partial=True)
        ioc = venue.build_swap(partial)
        assert w3.eth.estimate_gas(trader.tx(ioc.to, ioc.data)) > 0


def test_ioc_beyond_the_market_fills_nothing(chain, venue, trader) -> None:
    w3, dep = chain
    # Sell 1 WETH for at least 3100: the pools are at 3000, the limit is on the wrong side.
    intent = SwapIntent(dep.weth, dep.usdc, Exact.INPUT, E18, 3_100 * E6, TRADER, FAR, partial=True)
    call = venue.build_swap(intent)
    with pytest.raises(ContractLogicError, match="SPL"):
        w3.eth.estimate_gas(trader.tx(call.to, call.data))
