"""contracts/OptionsMarket.sol on a real anvil: series, fully collateralised writing, settlement,
redemption, collateral release, misuse, re-entrancy, and sell-to-open through the real Uniswap V2
Router02. Every amount is checked to the base unit against a model of the contract's rounding
(collateral and writers' debts round up, holders' payouts round down)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from fixbridge.devnet.anvil import Anvil, AnvilError, anvil_binary
from fixbridge.devnet.deploy import load_artifact, load_own_artifact

E18, E6, E8 = 10**18, 10**6, 10**8
MAX = 2**256 - 1
K3000 = 3000 * E6


# -- the model: what the contract must compute, in exact integers ------------------------------


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def collateral_for(is_call: bool, strike: int, dec: int, amount: int) -> int:
    return amount if is_call else ceil_div(amount * strike, 10**dec)


def payout_for(is_call: bool, strike: int, dec: int, price: int, amount: int) -> int:
    if is_call:
        return amount * (price - strike) // price if price > strike else 0
    return amount * (strike - price) // 10**dec if strike > price else 0


def owed_for(is_call: bool, strike: int, dec: int, price: int, amount: int) -> int:
    if is_call:
        return ceil_div(amount * (price - strike), price) if price > strike else 0
    return ceil_div(amount * (strike - price), 10**dec) if strike > price else 0


# -- the chain -----------------------------------------------------------------------------------


@dataclass
class Series:
    id: int
    token: Any  # the OptionToken contract
    expiry: int
    is_call: bool
    strike: int
    dec: int
    collateral: Any  # the collateral asset contract (calls: underlying, puts: strike asset)


class Chain:
    """One anvil with WETH9, USDC/WBTC TestTokens, Uniswap V2 and an OptionsMarket.

    Roles (anvil's unlocked accounts): owner #0, oracle #9, writers #1 #2, holders #3 #4.
    """

    def __init__(self, node: Anvil) -> None:
        self.node = node
        self.w3 = w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
        acc = w3.eth.accounts
        self.owner, self.oracle = acc[0], acc[9]
        self.writer, self.writer2, self.holder, self.holder2 = acc[1], acc[2], acc[3], acc[4]
        self.token_abi = load_own_artifact("TestToken")["abi"]
        self.option_abi = load_own_artifact("OptionToken")["abi"]
        self.weth = self.deploy(load_artifact("@uniswap/v2-periphery", "WETH9"))
        self.usdc = self.deploy(load_own_artifact("TestToken"), "USD Coin", "USDC", 6)
        self.wbtc = self.deploy(load_own_artifact("TestToken"), "Wrapped BTC", "WBTC", 8)
        self.factory = self.deploy(load_artifact("@uniswap/v2-core", "UniswapV2Factory"), self.owner)
        self.router = self.deploy(
            load_artifact("@uniswap/v2-periphery", "UniswapV2Router02"), self.factory.address, self.weth.address
        )
        self.market = self.deploy(load_own_artifact("OptionsMarket"), self.oracle)
        self.pair_abi = load_artifact("@uniswap/v2-core", "UniswapV2Pair")["abi"]
        for who in (self.writer, self.writer2):
            self.send(self.weth.functions.deposit(), who, value=2_000 * E18)
            for tok, amount in ((self.usdc, 50_000_000 * E6), (self.wbtc, 100 * E8)):
                self.send(tok.functions.mint(who, amount), self.owner)
            for tok in (self.weth, self.usdc, self.wbtc):
                self.send(tok.functions.approve(self.market.address, MAX), who)
                self.send(tok.functions.approve(self.router.address, MAX), who)

    # plumbing
    def deploy(self, artifact: dict, *args: Any, sender: str | None = None) -> Any:
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self.send(factory.constructor(*args), sender or self.owner)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    def send(self, fn: Any, sender: str, value: int = 0, gas: int | None = None) -> dict:
        """Send for real from an unlocked account; the receipt must say success."""
        tx: dict[str, Any] = {"from": sender, "value": value}
        if gas is not None:
            tx["gas"] = gas
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact(tx), timeout=10)
        assert receipt["status"] == 1, receipt
        return receipt

    def reverts(self, fn: Any, sender: str, reason: str) -> None:
        """The call reverts with `reason`, and the same transaction sent for real fails on chain."""
        with pytest.raises(ContractLogicError, match=reason):
            fn.call({"from": sender})
        h = fn.transact({"from": sender, "gas": 3_000_000})  # a fixed gas: no estimate, which would refuse
        assert self.w3.eth.wait_for_transaction_receipt(h, timeout=10)["status"] == 0

    def latest_ts(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def next_block_at(self, ts: int) -> None:
        self.node.rpc("evm_setNextBlockTimestamp", [ts])

    def mine_at(self, ts: int) -> None:
        """A block at `ts`: calls now see block.timestamp == ts; the next transaction lands a little later."""
        self.node.rpc("evm_mine", [ts])

    def bal(self, token: Any, who: str) -> int:
        return int(token.functions.balanceOf(who).call())

    def option(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=self.option_abi)

    def token_at(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=self.token_abi)

    # the market
    def new_series(
        self,
        is_call: bool,
        strike: int = K3000,
        *,
        underlying: Any = None,
        strike_asset: Any = None,
        label: str = "ETH",
        expiry: int | None = None,
    ) -> Series:
        underlying = underlying or self.weth
        strike_asset = strike_asset or self.usdc
        expiry = expiry or self.latest_ts() + 3_600
        receipt = self.send(
            self.market.functions.createSeries(
                underlying.address, strike_asset.address, strike, expiry, is_call, label
            ),
            self.owner,
        )
        (ev,) = self.market.events.SeriesCreated().process_receipt(receipt, errors=DISCARD)
        sid = ev["args"]["seriesId"]
        dec = int(underlying.functions.decimals().call())
        return Series(
            sid, self.option(ev["args"]["token"]), expiry, is_call, strike, dec,
            underlying if is_call else strike_asset,
        )  # fmt: skip

    def settle_at_expiry(self, s: Series, price: int) -> dict:
        if self.latest_ts() < s.expiry:
            self.next_block_at(s.expiry)
        # a fixed gas: an estimate would run at the latest block's time, before expiry
        return self.send(self.market.functions.settle(s.id, price), self.oracle, gas=200_000)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    try:
        anvil_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))
    with Anvil(port=0) as node:
        yield Chain(node)


@pytest.fixture
def c(chain: Chain) -> Iterator[Chain]:
    """The module chain; whatever a test does (time included) is rolled back after it."""
    snap = chain.node.rpc("evm_snapshot")
    yield chain
    assert chain.node.rpc("evm_revert", [snap]) is True


# -- series --------------------------------------------------------------------------------------


def _unix(y: int, m: int, d: int, hour: int = 8) -> int:
    return int(datetime(y, m, d, hour, tzinfo=UTC).timestamp())


def test_create_series_deploys_a_named_option_token(c: Chain) -> None:
    expiry = _unix(2099, 12, 31)
    receipt = c.send(
        c.market.functions.createSeries(c.weth.address, c.usdc.address, K3000, expiry, True, "ETH"), c.owner
    )
    (ev,) = c.market.events.SeriesCreated().process_receipt(receipt, errors=DISCARD)
    args = ev["args"]
    assert args["seriesId"] == 1 and args["symbol"] == "ETH-20991231-3000-C"
    assert (args["underlying"], args["strikeAsset"], args["strike"], args["expiry"], args["isCall"]) == (
        c.weth.address, c.usdc.address, K3000, expiry, True)  # fmt: skip
    token = c.option(args["token"])
    assert token.functions.symbol().call() == token.functions.name().call() == "ETH-20991231-3000-C"
    assert token.functions.decimals().call() == 18  # the underlying's
    assert token.functions.market().call() == c.market.address and token.functions.seriesId().call() == 1
    assert token.functions.totalSupply().call() == 0
    s = c.market.functions.getSeries(1).call()
    assert s == (c.weth.address, c.usdc.address, token.address, K3000, expiry, True, 18, False, 0, 0, 0, 0)
    assert c.market.functions.seriesCount().call() == 1
    assert c.market.functions.seriesIdOfToken(token.address).call() == 1
    assert c.market.functions.collateralAsset(1).call() == c.weth.address
    # the same series again is refused; a put on the same terms is another series
    c.reverts(c.market.functions.createSeries(c.weth.address, c.usdc.address, K3000, expiry, True, "ETH"),
              c.owner, "series exists")  # fmt: skip
    put = c.new_series(False, expiry=expiry)
    assert put.id == 2 and put.token.functions.symbol().call() == "ETH-20991231-3000-P"
    assert c.market.functions.collateralAsset(2).call() == c.usdc.address


@pytest.mark.parametrize(
    ("date", "strike", "strike_dec", "label", "symbol"),
    [
        ((2096, 2, 29), 3000_500000, 6, "ETH", "ETH-20960229-3000.5-P"),  # leap day, a fractional strike
        ((2100, 3, 1), 60_000 * E6, 6, "BTC", "BTC-21000301-60000-P"),  # 2100 is not a leap year
        ((2030, 1, 1), 1, 6, "ETH", "ETH-20300101-0.000001-P"),  # the smallest strike
        ((2031, 7, 4), 20 * E18 + 5 * 10**16, 18, "BTC", "BTC-20310704-20.05-P"),  # strike in WETH
    ],
)
def test_option_symbols_name_date_and_strike(c: Chain, date, strike, strike_dec, label, symbol) -> None:
    underlying = c.wbtc if label == "BTC" else c.weth
    strike_asset = c.weth if strike_dec == 18 else c.usdc
    expiry = _unix(*date) + 86_399 - 8 * 3600  # the last second of that UTC day
    s = c.new_series(False, strike, underlying=underlying, strike_asset=strike_asset, label=label, expiry=expiry)
    assert s.token.functions.symbol().call() == symbol
    assert s.token.functions.decimals().call() == (8 if label == "BTC" else 18)


def test_only_the_owner_creates_series_and_only_sensible_ones(c: Chain) -> None:
    f = c.market.functions
    future = c.latest_ts() + 3_600
    c.reverts(f.createSeries(c.weth.address, c.usdc.address, K3000, future, True, "ETH"), c.writer, "not the owner")
    c.reverts(f.createSeries(c.weth.address, c.usdc.address, K3000, c.latest_ts(), True, "ETH"), c.owner,
              "expiry in the past")  # fmt: skip
    c.reverts(f.createSeries(c.weth.address, c.usdc.address, 0, future, True, "ETH"), c.owner, "zero strike")
    c.reverts(f.createSeries(c.weth.address, c.weth.address, K3000, future, True, "ETH"), c.owner, "is the strike asset")
    c.reverts(f.createSeries(c.writer, c.usdc.address, K3000, future, True, "ETH"), c.owner, "not a contract")
    c.reverts(f.createSeries(c.weth.address, c.usdc.address, K3000, future, True, ""), c.owner, "empty label")
    c.reverts(f.setOracle(c.writer), c.writer, "not the owner")
    with pytest.raises(ContractLogicError, match="unknown series"):
        f.getSeries(7).call()
    c.reverts(f.write(7, E18), c.writer, "unknown series")


# -- writing -------------------------------------------------------------------------------------


def test_call_collateral_is_the_underlying_one_for_one(c: Chain) -> None:
    s = c.new_series(True)
    weth0 = c.bal(c.weth, c.writer)
    amount = 1_500_000_000_000_000_001  # 1.5 WETH and one wei
    assert c.market.functions.collateralFor(s.id, amount).call() == amount
    receipt = c.send(c.market.functions.write(s.id, amount), c.writer)
    (ev,) = c.market.events.Written().process_receipt(receipt, errors=DISCARD)
    assert dict(ev["args"]) == {"seriesId": s.id, "writer": c.writer, "amount": amount, "collateral": amount}
    assert c.bal(c.weth, c.writer) == weth0 - amount
    assert c.bal(c.weth, c.market.address) == amount
    assert c.bal(s.token, c.writer) == amount == s.token.functions.totalSupply().call()
    assert c.market.functions.written(s.id, c.writer).call() == amount
    assert c.market.functions.collateralOf(s.id, c.writer).call() == amount
    got = c.market.functions.getSeries(s.id).call()
    assert got[9:] == (amount, amount, amount)  # totalWritten, totalCollateral, collateralHeld


@pytest.mark.parametrize(
    ("strike", "amount", "collateral"),
    [
        (K3000, 15 * 10**17, 4_500 * E6),  # 1.5 puts at 3000: 4500 USDC exactly
        (K3000, 1, 1),  # one wei of option locks one USDC unit (3000e6 / 1e18 rounded up)
        (K3000, 333_333_333_333_333, 1_000_000),  # 999999.999 units rounded up
        (K3000, 333_333_333_333_334, 1_000_001),  # 1000000.002 units rounded up
        (3000_500000, E18, 3000_500000),  # a fractional strike
        (2_999_999_999, 7 * E18, 20_999_999_993),  # 7 x 2999.999999
    ],
)
def test_put_collateral_is_strike_times_amount_rounded_up(c: Chain, strike: int, amount: int, collateral: int) -> None:
    assert collateral == collateral_for(False, strike, 18, amount)
    s = c.new_series(False, strike)
    usdc0 = c.bal(c.usdc, c.writer)
    assert c.market.functions.collateralFor(s.id, amount).call() == collateral
    c.send(c.market.functions.write(s.id, amount), c.writer)
    assert c.bal(c.usdc, c.writer) == usdc0 - collateral
    assert c.bal(c.usdc, c.market.address) == collateral
    assert c.bal(s.token, c.writer) == amount
    assert c.market.functions.collateralOf(s.id, c.writer).call() == collateral


def test_put_on_an_8_decimal_underlying(c: Chain) -> None:
    s = c.new_series(False, 60_000 * E6, underlying=c.wbtc, label="BTC")  # 1 WBTC = 1e8 units
    c.send(c.market.functions.write(s.id, 2_500_000), c.writer)  # 0.025 BTC
    assert c.market.functions.collateralOf(s.id, c.writer).call() == 1_500 * E6
    assert s.token.functions.decimals().call() == 8


def test_writing_in_pieces_rounds_each_piece_up(c: Chain) -> None:
    s = c.new_series(False)
    for _ in range(3):
        c.send(c.market.functions.write(s.id, 1), c.writer)
    # three pieces of one wei lock 3 units (one piece of 3 wei would lock 1)
    assert c.market.functions.collateralOf(s.id, c.writer).call() == 3
    assert c.market.functions.collateralFor(s.id, 3).call() == 1
    assert c.market.functions.written(s.id, c.writer).call() == 3


def test_writing_until_just_before_expiry_then_never(c: Chain) -> None:
    s = c.new_series(True)
    c.next_block_at(s.expiry - 1)
    c.send(c.market.functions.write(s.id, E18), c.writer)  # the last second
    assert c.latest_ts() == s.expiry - 1
    c.mine_at(s.expiry)
    c.reverts(c.market.functions.write(s.id, E18), c.writer, "OptionsMarket: expired")
    deadline = s.expiry + 600
    c.reverts(c.market.functions.writeAndSell(s.id, E18, c.router.address, 0, deadline), c.writer, "expired")
    assert c.market.functions.written(s.id, c.writer).call() == E18


def test_writing_needs_an_amount_and_the_collateral(c: Chain) -> None:
    s = c.new_series(False)
    c.reverts(c.market.functions.write(s.id, 0), c.writer, "zero amount")
    c.reverts(c.market.functions.write(s.id, E18), c.holder, "insufficient allowance")  # the holder approved nothing
    c.send(c.usdc.functions.approve(c.market.address, MAX), c.holder)
    c.reverts(c.market.functions.write(s.id, E18), c.holder, "transfer amount exceeds balance")  # and has no USDC
    assert s.token.functions.totalSupply().call() == 0
    assert c.market.functions.written(s.id, c.holder).call() == 0


def test_only_the_market_mints_and_burns_option_tokens(c: Chain) -> None:
    s = c.new_series(True)
    c.send(c.market.functions.write(s.id, E18), c.writer)
    c.reverts(s.token.functions.mint(c.writer, E18), c.writer, "caller is not the market")
    c.reverts(s.token.functions.burn(c.writer, E18), c.owner, "caller is not the market")
    # an ordinary ERC-20 otherwise
    c.send(s.token.functions.transfer(c.holder, 4 * 10**17), c.writer)
    c.send(s.token.functions.approve(c.holder2, MAX), c.holder)
    c.send(s.token.functions.transferFrom(c.holder, c.holder2, 10**17), c.holder2)
    assert (c.bal(s.token, c.writer), c.bal(s.token, c.holder), c.bal(s.token, c.holder2)) == (
        6 * 10**17, 3 * 10**17, 10**17)  # fmt: skip
    assert s.token.functions.allowance(c.holder, c.holder2).call() == MAX  # infinite stays infinite


# -- settlement ----------------------------------------------------------------------------------


def _round_trip(c: Chain, s: Series, writes: dict[str, int], holdings: dict[str, int], price: int) -> dict[str, int]:
    """Writers write, hand options to holders, the oracle settles, every holder redeems everything,
    every writer releases. Checks each amount against the model; returns the totals."""
    m = c.market.functions
    for w, amount in writes.items():
        c.send(m.write(s.id, amount), w)
    for w, (h, amount) in zip(writes, holdings.items(), strict=False):
        c.send(s.token.functions.transfer(h, amount), w)
    total_collateral = sum(collateral_for(s.is_call, s.strike, s.dec, a) for a in writes.values())
    assert c.bal(s.collateral, c.market.address) == total_collateral

    receipt = c.settle_at_expiry(s, price)
    (ev,) = c.market.events.Settled().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["price"] == price
    assert ev["args"]["payoutPerToken"] == payout_for(s.is_call, s.strike, s.dec, price, 10**s.dec)

    paid = 0
    holders = dict.fromkeys([*writes, *holdings])
    for h in holders:
        amount = c.bal(s.token, h)
        if amount == 0:
            continue
        before = c.bal(s.collateral, h)
        expected = payout_for(s.is_call, s.strike, s.dec, price, amount)
        assert m.payoutFor(s.id, amount).call() == expected
        r = c.send(m.redeem(s.id, amount), h)
        (red,) = c.market.events.Redeemed().process_receipt(r, errors=DISCARD)
        assert dict(red["args"]) == {"seriesId": s.id, "holder": h, "amount": amount, "payout": expected}
        assert c.bal(s.collateral, h) == before + expected and c.bal(s.token, h) == 0
        paid += expected
    assert s.token.functions.totalSupply().call() == 0

    returned = kept = 0
    for w, amount in writes.items():
        before = c.bal(s.collateral, w)
        owed = owed_for(s.is_call, s.strike, s.dec, price, amount)
        back = collateral_for(s.is_call, s.strike, s.dec, amount) - owed
        assert m.owedFor(s.id, amount).call() == owed
        r = c.send(m.releaseCollateral(s.id), w)
        (rel,) = c.market.events.CollateralReleased().process_receipt(r, errors=DISCARD)
        assert dict(rel["args"]) == {"seriesId": s.id, "writer": w, "returned": back, "kept": owed}
        assert c.bal(s.collateral, w) == before + back
        returned, kept = returned + back, kept + owed
    dust = c.bal(s.collateral, c.market.address)
    # every unit of collateral is accounted for: paid to holders, returned to writers, or rounding dust
    assert paid + returned + dust == total_collateral
    assert dust == kept - paid and 0 <= dust < len(writes) + len(holders)
    assert c.market.functions.getSeries(s.id).call()[11] == dust  # collateralHeld
    return {"collateral": total_collateral, "paid": paid, "returned": returned, "dust": dust}


@pytest.mark.parametrize(
    ("is_call", "price", "paid", "returned"),
    [
        # 8 options written, all 8 redeemed; K = 3000
        (True, 4_000 * E6, 2 * E18, 6 * E18),  # call ITM: (4000-3000)/4000 = 1/4 WETH per option
        (True, 3_000 * E6, 0, 8 * E18),  # call at the money: nothing to pay
        (True, 2_000 * E6, 0, 8 * E18),  # call out of the money
        (False, 2_500 * E6, 4_000 * E6, 20_000 * E6),  # put ITM: 500 USDC per option
        (False, 3_000 * E6, 0, 24_000 * E6),  # put at the money
        (False, 3_500 * E6, 0, 24_000 * E6),  # put out of the money
    ],
)
def test_settlement_pays_holders_and_returns_the_rest_exactly(c: Chain, is_call, price, paid, returned) -> None:
    s = c.new_series(is_call)
    totals = _round_trip(c, s, {c.writer: 5 * E18, c.writer2: 3 * E18}, {c.holder: 4 * E18, c.holder2: 2 * E18}, price)
    assert totals == {"collateral": paid + returned, "paid": paid, "returned": returned, "dust": 0}


def test_rounding_dust_stays_in_the_market_and_is_exactly_predicted(c: Chain) -> None:
    # call at 3600: 1/6 of an underlying per option; amounts that do not divide by 6
    s = c.new_series(True)
    writes = {c.writer: 7 * E18 + 1, c.writer2: 3_333_333_333_333_333_333}
    totals = _round_trip(c, s, writes, {c.holder: E18 + 1, c.holder2: 5}, 3_600 * E6)
    assert totals["dust"] == 3  # two writers rounded up, holders rounded down
    # a put at 2999.999999 with dust from the one-wei-holder
    p = c.new_series(False)
    totals = _round_trip(c, p, {c.writer: 10**18 // 3, c.writer2: 1}, {c.holder: 1}, 2_999_999_999)
    assert totals["collateral"] == 1_000 * E6 + 1  # 999.999999999 USDC rounded up, and 1 unit for 1 wei


def test_random_positions_always_add_up(c: Chain) -> None:
    rnd = random.Random(20261231)
    for _ in range(4):
        snap = c.node.rpc("evm_snapshot")
        is_call = rnd.random() < 0.5
        strike = rnd.randrange(1_000 * E6, 5_000 * E6)
        s = c.new_series(is_call, strike)
        writes = {w: rnd.randrange(1, 50 * E18) for w in (c.writer, c.writer2)}
        holdings = {c.holder: rnd.randrange(0, writes[c.writer]), c.holder2: rnd.randrange(0, writes[c.writer2])}
        price = rnd.randrange(1, 8_000 * E6)
        _round_trip(c, s, writes, holdings, price)
        assert c.node.rpc("evm_revert", [snap]) is True


# -- misuse --------------------------------------------------------------------------------------


def test_settlement_is_the_oracles_once_at_or_after_expiry(c: Chain) -> None:
    s = c.new_series(True)
    m = c.market.functions
    c.send(m.write(s.id, E18), c.writer)
    c.mine_at(s.expiry - 100)
    c.reverts(m.settle(s.id, 3_100 * E6), c.oracle, "not expired")
    c.reverts(m.settle(s.id, 3_100 * E6), c.owner, "caller is not the oracle")  # the owner is not the oracle
    c.next_block_at(s.expiry)
    c.reverts(m.settle(s.id, 3_100 * E6), c.writer, "caller is not the oracle")  # nor a writer, even at expiry
    c.reverts(m.settle(s.id, 0), c.oracle, "zero price")
    receipt = c.settle_at_expiry(s, 3_100 * E6)
    assert c.w3.eth.get_block(receipt["blockNumber"])["timestamp"] >= s.expiry
    c.reverts(m.settle(s.id, 3_200 * E6), c.oracle, "already settled")
    got = m.getSeries(s.id).call()
    assert got[7:9] == (True, 3_100 * E6)


def test_settling_exactly_at_expiry(c: Chain) -> None:
    s = c.new_series(False)
    c.next_block_at(s.expiry)
    receipt = c.send(c.market.functions.settle(s.id, 2_000 * E6), c.oracle, gas=200_000)
    assert c.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == s.expiry


def test_the_oracle_can_be_changed_by_the_owner(c: Chain) -> None:
    s = c.new_series(True)
    receipt = c.send(c.market.functions.setOracle(c.holder), c.owner)
    (ev,) = c.market.events.OracleChanged().process_receipt(receipt, errors=DISCARD)
    assert (ev["args"]["previousOracle"], ev["args"]["newOracle"]) == (c.oracle, c.holder)
    c.next_block_at(s.expiry)
    c.reverts(c.market.functions.settle(s.id, 1), c.oracle, "caller is not the oracle")
    c.send(c.market.functions.settle(s.id, 1), c.holder, gas=200_000)


def test_nothing_is_paid_before_settlement(c: Chain) -> None:
    s = c.new_series(False)
    m = c.market.functions
    c.send(m.write(s.id, E18), c.writer)
    c.reverts(m.redeem(s.id, E18), c.writer, "not settled")
    c.reverts(m.releaseCollateral(s.id), c.writer, "not settled")
    c.mine_at(s.expiry + 10)  # expired but not settled: still nothing
    c.reverts(m.redeem(s.id, E18), c.writer, "not settled")
    c.reverts(m.releaseCollateral(s.id), c.writer, "not settled")
    with pytest.raises(ContractLogicError, match="not settled"):
        m.payoutFor(s.id, E18).call()


def test_redeeming_twice_or_more_than_held_fails(c: Chain) -> None:
    s = c.new_series(False)
    m = c.market.functions
    c.send(m.write(s.id, 2 * E18), c.writer)
    c.send(s.token.functions.transfer(c.holder, E18), c.writer)
    c.settle_at_expiry(s, 2_000 * E6)
    c.reverts(m.redeem(s.id, E18 + 1), c.holder, "burn amount exceeds balance")
    usdc0 = c.bal(c.usdc, c.holder)
    c.send(m.redeem(s.id, E18), c.holder)
    assert c.bal(c.usdc, c.holder) == usdc0 + 1_000 * E6
    c.reverts(m.redeem(s.id, E18), c.holder, "burn amount exceeds balance")  # the tokens are burned
    c.reverts(m.redeem(s.id, 0), c.holder, "zero amount")
    assert c.bal(c.usdc, c.holder) == usdc0 + 1_000 * E6


def test_releasing_twice_or_without_writing_fails(c: Chain) -> None:
    s = c.new_series(True)
    m = c.market.functions
    c.send(m.write(s.id, 2 * E18), c.writer)
    c.settle_at_expiry(s, 4_000 * E6)
    weth0 = c.bal(c.weth, c.writer)
    c.send(m.releaseCollateral(s.id), c.writer)
    assert c.bal(c.weth, c.writer) == weth0 + 15 * 10**17  # 2 - 2 x 1/4
    assert m.released(s.id, c.writer).call() is True
    c.reverts(m.releaseCollateral(s.id), c.writer, "already released")
    c.reverts(m.releaseCollateral(s.id), c.holder, "nothing written")
    assert c.bal(c.weth, c.writer) == weth0 + 15 * 10**17
    # the writer still holds the options, and they still pay
    c.send(m.redeem(s.id, 2 * E18), c.writer)
    assert c.bal(c.weth, c.writer) == weth0 + 2 * E18
    assert c.bal(c.weth, c.market.address) == 0


def test_a_deep_put_takes_all_the_collateral(c: Chain) -> None:
    s = c.new_series(False)
    c.send(c.market.functions.write(s.id, E18), c.writer)
    c.settle_at_expiry(s, 1)  # the underlying is worth one USDC unit
    r = c.send(c.market.functions.releaseCollateral(s.id), c.writer)
    (ev,) = c.market.events.CollateralReleased().process_receipt(r, errors=DISCARD)
    assert (ev["args"]["returned"], ev["args"]["kept"]) == (1, 2_999_999_999)  # K - S = 2999.999999
    usdc0 = c.bal(c.usdc, c.writer)
    c.send(c.market.functions.redeem(s.id, E18), c.writer)
    assert c.bal(c.usdc, c.writer) == usdc0 + 2_999_999_999
    assert c.bal(c.usdc, c.market.address) == 0


def test_series_collateral_is_kept_apart(c: Chain) -> None:
    """Two put series share USDC in the market; settling one never pays from the other."""
    a, b = c.new_series(False), c.new_series(False, 3_500 * E6)
    c.send(c.market.functions.write(a.id, E18), c.writer)
    c.send(c.market.functions.write(b.id, E18), c.writer2)
    c.settle_at_expiry(a, 1_000 * E6)
    c.send(c.market.functions.redeem(a.id, E18), c.writer)
    c.send(c.market.functions.releaseCollateral(a.id), c.writer)
    assert c.bal(c.usdc, c.market.address) == 3_500 * E6  # b's collateral, untouched
    assert c.market.functions.getSeries(a.id).call()[11] == 0
    assert c.market.functions.getSeries(b.id).call()[11] == 3_500 * E6


# -- re-entrancy ---------------------------------------------------------------------------------


@pytest.fixture
def evil(c: Chain) -> Any:
    """A ReentrantToken that also writes and holds options itself (through `execute`)."""
    return c.deploy(load_own_artifact("ReentrantToken"), "Evil", "EVIL", 18)


def _evil_position(c: Chain, evil: Any, is_call: bool) -> Series:
    """evil is the collateral asset (a call's underlying / a put's strike asset); the token contract
    itself writes 4 options and keeps them; settled in the money."""
    if is_call:
        s = c.new_series(True, K3000, underlying=evil, label="EVIL")
    else:  # the strike is in strike-asset units per whole underlying: 3000 EVIL (18 decimals)
        s = c.new_series(False, 3_000 * E18, strike_asset=evil, label="ETH")
    m = c.market
    c.send(evil.functions.mint(evil.address, 100_000 * E18), c.owner)
    c.send(evil.functions.execute(evil.address, evil.encode_abi("approve", [m.address, MAX])), c.owner)
    c.send(evil.functions.execute(m.address, m.encode_abi("write", [s.id, 4 * E18])), c.owner)
    # call: price 4000 = 1/4 per option; put: price 2000 EVIL -> 1000 EVIL per option
    c.settle_at_expiry(s, 4_000 * E6 if is_call else 2_000 * E18)
    return s


def _reentry_cases():
    for is_call in (True, False):
        for outer in ("redeem", "releaseCollateral"):
            for inner in ("redeem", "releaseCollateral"):
                yield pytest.param(is_call, outer, inner, id=f"{'call' if is_call else 'put'}-{outer}-into-{inner}")


def _args(name: str, sid: int) -> list:
    return [sid, E18] if name == "redeem" else [sid]


@pytest.mark.parametrize(("is_call", "outer", "inner"), list(_reentry_cases()))
def test_reentering_during_a_payout_reverts(c: Chain, evil: Any, is_call: bool, outer: str, inner: str) -> None:
    s = _evil_position(c, evil, is_call)
    m = c.market
    outer_call = evil.functions.execute(m.address, m.encode_abi(outer, _args(outer, s.id)))
    before = c.bal(evil, evil.address), c.bal(s.token, evil.address), c.bal(evil, m.address)

    # armed, bubbling: the re-entrant call's revert fails the whole transaction
    c.send(evil.functions.arm(m.address, m.encode_abi(inner, _args(inner, s.id)), True), c.owner)
    c.reverts(outer_call, c.owner, "ReentrancyGuard: reentrant call")
    assert (c.bal(evil, evil.address), c.bal(s.token, evil.address), c.bal(evil, m.address)) == before
    assert m.functions.released(s.id, evil.address).call() is False

    # armed, swallowing: the outer call completes once, the inner one was refused by the guard
    c.send(evil.functions.arm(m.address, m.encode_abi(inner, _args(inner, s.id)), False), c.owner)
    c.send(outer_call, c.owner)
    assert evil.functions.reentries().call() == 1 and evil.functions.lastReentryOk().call() is False
    assert b"ReentrancyGuard: reentrant call" in evil.functions.lastReentryData().call()
    if outer == "redeem":
        expected = (E18 // 4) if is_call else 1_000 * E18
        assert c.bal(evil, evil.address) == before[0] + expected
        assert c.bal(s.token, evil.address) == before[1] - E18  # burned once
    else:
        expected = (3 * E18) if is_call else 4 * 2_000 * E18  # 4 - 4/4, or 4 x 3000 - 4 x 1000
        assert c.bal(evil, evil.address) == before[0] + expected
        assert m.functions.released(s.id, evil.address).call() is True
    assert c.bal(evil, m.address) == before[2] - expected


def test_the_evil_token_is_harmless_when_disarmed(c: Chain, evil: Any) -> None:
    """The same calls succeed without the re-entry: it is the guard that stops them."""
    s = _evil_position(c, evil, True)
    m = c.market
    c.send(evil.functions.execute(m.address, m.encode_abi("redeem", [s.id, 4 * E18])), c.owner)
    c.send(evil.functions.execute(m.address, m.encode_abi("releaseCollateral", [s.id])), c.owner)
    assert c.bal(evil, m.address) == 0 and c.bal(evil, evil.address) == 100_000 * E18


def test_reentering_write_from_the_collateral_pull_reverts(c: Chain, evil: Any) -> None:
    s = c.new_series(True, K3000, underlying=evil, label="EVIL")
    m = c.market
    c.send(evil.functions.mint(evil.address, 100 * E18), c.owner)
    c.send(evil.functions.execute(evil.address, evil.encode_abi("approve", [m.address, MAX])), c.owner)
    c.send(evil.functions.arm(m.address, m.encode_abi("write", [s.id, E18]), True), c.owner)
    c.reverts(evil.functions.execute(m.address, m.encode_abi("write", [s.id, E18])), c.owner, "reentrant call")
    assert s.token.functions.totalSupply().call() == 0


# -- sell to open through Uniswap V2 -------------------------------------------------------------


def _seed_pool(c: Chain, s: Series, options: int, usdc: int) -> Any:
    """writer2 writes `options` and pairs them with `usdc` in a new V2 pool; returns the pair."""
    c.send(c.market.functions.write(s.id, options), c.writer2)
    c.send(s.token.functions.approve(c.router.address, MAX), c.writer2)
    c.send(
        c.router.functions.addLiquidity(s.token.address, c.usdc.address, options, usdc, options, usdc, c.writer2,
                                        c.latest_ts() + 600),
        c.writer2,
    )  # fmt: skip
    pair = c.factory.functions.getPair(s.token.address, c.usdc.address).call()
    return c.w3.eth.contract(address=pair, abi=c.pair_abi)


@pytest.mark.parametrize("is_call", [True, False], ids=["call", "put"])
def test_write_and_sell_in_one_transaction(c: Chain, is_call: bool) -> None:
    s = c.new_series(is_call)
    pair = _seed_pool(c, s, 100 * E18, 15_000 * E6)  # premium 150 USDC
    amount = 2 * E18
    path = [s.token.address, c.usdc.address]
    quote = c.router.functions.getAmountsOut(amount, path).call()[1]
    assert quote == amount * 997 * 15_000 * E6 // (100 * E18 * 1000 + amount * 997)  # ~293 USDC
    weth0, usdc0 = c.bal(c.weth, c.writer), c.bal(c.usdc, c.writer)
    collateral = collateral_for(is_call, K3000, 18, amount)

    fn = c.market.functions.writeAndSell(s.id, amount, c.router.address, quote, c.latest_ts() + 600)
    assert fn.call({"from": c.writer}) == quote
    receipt = c.send(fn, c.writer)

    (written,) = c.market.events.Written().process_receipt(receipt, errors=DISCARD)
    assert dict(written["args"]) == {"seriesId": s.id, "writer": c.writer, "amount": amount, "collateral": collateral}
    (sold,) = c.market.events.SoldToOpen().process_receipt(receipt, errors=DISCARD)
    assert dict(sold["args"]) == {
        "seriesId": s.id, "writer": c.writer, "router": c.router.address, "amount": amount, "proceeds": quote}  # fmt: skip
    (swap,) = pair.events.Swap().process_receipt(receipt, errors=DISCARD)
    assert swap["args"]["to"] == c.writer
    # the writer: collateral out, premium in, no options (they are in the pool), a written position
    if is_call:
        assert c.bal(c.weth, c.writer) == weth0 - collateral and c.bal(c.usdc, c.writer) == usdc0 + quote
    else:
        assert c.bal(c.weth, c.writer) == weth0 and c.bal(c.usdc, c.writer) == usdc0 - collateral + quote
    assert c.bal(s.token, c.writer) == 0
    assert c.market.functions.written(s.id, c.writer).call() == amount
    assert c.market.functions.collateralOf(s.id, c.writer).call() == collateral
    # the market keeps no options and no allowance
    assert c.bal(s.token, c.market.address) == 0
    assert s.token.functions.allowance(c.market.address, c.router.address).call() == 0
    r0, r1, _ = pair.functions.getReserves().call()
    reserves = {pair.functions.token0().call(): r0, pair.functions.token1().call(): r1}
    assert reserves == {s.token.address: 102 * E18, c.usdc.address: 15_000 * E6 - quote}

    # after settlement the writer's position is an ordinary one
    c.settle_at_expiry(s, 4_000 * E6 if is_call else 2_000 * E6)
    owed = owed_for(is_call, K3000, 18, 4_000 * E6 if is_call else 2_000 * E6, amount)
    r = c.send(c.market.functions.releaseCollateral(s.id), c.writer)
    (rel,) = c.market.events.CollateralReleased().process_receipt(r, errors=DISCARD)
    assert (rel["args"]["returned"], rel["args"]["kept"]) == (collateral - owed, owed)


def test_write_and_sell_reverts_whole_when_the_swap_fails(c: Chain) -> None:
    s = c.new_series(True)
    _seed_pool(c, s, 100 * E18, 15_000 * E6)
    path = [s.token.address, c.usdc.address]
    quote = c.router.functions.getAmountsOut(E18, path).call()[1]
    m = c.market.functions
    weth0 = c.bal(c.weth, c.writer)
    deadline = c.latest_ts() + 600
    c.reverts(m.writeAndSell(s.id, E18, c.router.address, quote + 1, deadline), c.writer, "INSUFFICIENT_OUTPUT_AMOUNT")
    c.reverts(m.writeAndSell(s.id, E18, c.router.address, 0, c.latest_ts() - 1), c.writer, "UniswapV2Router: EXPIRED")
    c.reverts(m.writeAndSell(s.id, E18, c.holder, 0, deadline), c.writer, "router is not a contract")
    c.reverts(m.writeAndSell(s.id, 0, c.router.address, 0, deadline), c.writer, "zero amount")
    # no pool for this one: the router cannot price it
    other = c.new_series(True, 3_500 * E6)
    with pytest.raises(ContractLogicError):
        m.writeAndSell(other.id, E18, c.router.address, 0, deadline).call({"from": c.writer})
    assert c.bal(c.weth, c.writer) == weth0
    assert c.market.functions.written(s.id, c.writer).call() == 0
    assert s.token.functions.totalSupply().call() == 100 * E18  # only the pool's


# -- the devnet's options (fixbridge.devnet.options, through deploy_devnet) ------------------------


@pytest.fixture(scope="module")
def devnet_options() -> Iterator[tuple[Anvil, Any]]:
    """deploy_devnet on its own chain, funding two wallets (the committed spec funds one)."""
    from eth_account import Account

    from fixbridge.devnet.deploy import DEFAULT_FUNDED, deploy_devnet

    try:
        anvil_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))
    outsider = Account.from_key("0x" + "22" * 32).address
    with Anvil(port=0) as node:
        yield node, deploy_devnet(node.rpc_url, fund=[DEFAULT_FUNDED, outsider])


@pytest.fixture
def dn(devnet_options) -> Iterator[tuple[Web3, Any]]:
    node, dep = devnet_options
    snap = node.rpc("evm_snapshot")
    yield Web3(Web3.HTTPProvider(node.rpc_url)), dep
    assert node.rpc("evm_revert", [snap]) is True


def test_devnet_series_are_the_specs(dn) -> None:
    import tomllib
    from pathlib import Path

    from fixbridge.config.spec import load_spec
    from fixbridge.devnet.deploy import DEPLOYER_ADDRESS
    from fixbridge.devnet.options import OPTIONS_DEPLOYER_ADDRESS, OPTIONS_MARKET

    w3, dep = dn
    opts = dep.options
    assert opts.market == OPTIONS_MARKET and (opts.owner, opts.oracle) == (DEPLOYER_ADDRESS, DEPLOYER_ADDRESS)
    market = w3.eth.contract(address=opts.market, abi=load_own_artifact("OptionsMarket")["abi"])
    assert market.functions.owner().call() == DEPLOYER_ADDRESS and market.functions.oracle().call() == DEPLOYER_ADDRESS
    assert market.functions.seriesCount().call() == 5
    expected = {  # symbol -> (strike, expiry 08:00 UTC, call?)
        "ETH-20261231-3000-C": (3000, _unix(2026, 12, 31), True),
        "ETH-20261231-3000-P": (3000, _unix(2026, 12, 31), False),
        "ETH-20261231-3500-C": (3500, _unix(2026, 12, 31), True),
        "ETH-20270326-3000-C": (3000, _unix(2027, 3, 26), True),
        "ETH-20270326-3000-P": (3000, _unix(2027, 3, 26), False),
    }
    assert list(opts.series) == list(expected)
    written = (100 + 10 * 2) * E18  # the pool's and 10 per funded wallet
    for sym, (strike, expiry, is_call) in expected.items():
        s = opts.series[sym]
        got = market.functions.getSeries(s.series_id).call()
        assert got[:7] == (dep.weth, dep.usdc, s.token, strike * E6, expiry, is_call, 18), sym
        assert got[9:] == (written, collateral_for(is_call, strike * E6, 18, written),
                           collateral_for(is_call, strike * E6, 18, written))  # fmt: skip
        assert market.functions.written(s.series_id, OPTIONS_DEPLOYER_ADDRESS).call() == written
        token = w3.eth.contract(address=s.token, abi=load_own_artifact("OptionToken")["abi"])
        assert token.functions.symbol().call() == sym and token.functions.decimals().call() == 18
        assert (s.strike, s.expiry_timestamp, s.is_call, s.written) == (strike, expiry, is_call, written)
    # the addresses do not depend on the wallets funded: the committed spec (one wallet) has the same
    committed = tomllib.loads((Path(__file__).resolve().parents[2] / "specs" / "devnet.toml").read_text())
    assert {sym: committed["tokens"][sym]["address"] for sym in opts.series} == opts.tokens
    assert committed["options_markets"]["options"]["address"] == opts.market
    spec = load_spec(Path(__file__).resolve().parents[2] / "specs" / "devnet.toml")
    ins = spec.instruments["ETH-20261231-3000-C"]
    assert (ins.security_type, ins.base, ins.quote, ins.underlying, str(ins.strike), ins.put_or_call) == (
        "OPT", "ETH-20261231-3000-C", "USDC", "WETH", "3000", "C")  # fmt: skip
    assert ins.expiry.isoformat() == "2026-12-31" and ins.contract_multiplier == 1
    assert spec.tokens["ETH-20261231-3000-C"].decimals == 18


def test_devnet_pools_funding_and_collateral(dn) -> None:
    from fixbridge.devnet.deploy import DEPLOYER_ADDRESS
    from fixbridge.devnet.options import OPTION_SERIES, OPTIONS_DEPLOYER_ADDRESS

    w3, dep = dn
    opts = dep.options
    pair_abi = load_artifact("@uniswap/v2-core", "UniswapV2Pair")["abi"]
    router = w3.eth.contract(address=dep.router, abi=load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"])
    premium = {s.symbol: s.premium for s in OPTION_SERIES}
    assert {k: int(v) for k, v in premium.items()} == {
        "ETH-20261231-3000-C": 150, "ETH-20261231-3000-P": 150, "ETH-20261231-3500-C": 25,
        "ETH-20270326-3000-C": 275, "ETH-20270326-3000-P": 275}  # fmt: skip
    erc20 = load_own_artifact("TestToken")["abi"]

    def bal(token: str, who: str) -> int:
        return int(w3.eth.contract(address=token, abi=erc20).functions.balanceOf(who).call())

    calls_weth = puts_usdc = 0
    for sym, s in opts.series.items():
        pair = w3.eth.contract(address=s.pair, abi=pair_abi)
        r0, r1, _ = pair.functions.getReserves().call()
        reserves = {pair.functions.token0().call(): r0, pair.functions.token1().call(): r1}
        assert reserves == {s.token: 100 * E18, dep.usdc: int(premium[sym] * 100 * E6)}, sym
        # buying one option costs about the premium (plus the 0.3% fee and the pool's slippage)
        cost = router.functions.getAmountsIn(E18, [dep.usdc, s.token]).call()[0]
        assert premium[sym] * E6 < cost < premium[sym] * E6 * 103 // 100, sym
        for wallet in dep.funded:
            assert bal(s.token, wallet) == 10 * E18
            token = w3.eth.contract(address=s.token, abi=load_own_artifact("OptionToken")["abi"])
            assert token.functions.allowance(wallet, dep.router).call() == 0  # nothing approved for them
            assert token.functions.allowance(wallet, opts.market).call() == 0
        assert bal(s.token, OPTIONS_DEPLOYER_ADDRESS) == 0  # every written option is in the pool or a wallet
        if s.is_call:
            calls_weth += s.written
        else:
            puts_usdc += collateral_for(False, s.strike_units, 18, s.written)
    assert bal(dep.weth, opts.market) == calls_weth == 3 * 120 * E18
    assert bal(dep.usdc, opts.market) == puts_usdc == 2 * 120 * 3_000 * E6
    for who in (DEPLOYER_ADDRESS, OPTIONS_DEPLOYER_ADDRESS):  # the deployers keep no WETH or USDC
        assert bal(dep.weth, who) == 0 and bal(dep.usdc, who) == 0


def test_devnet_option_life_cycle(dn) -> None:
    """A funded wallet buys a call on the V2 pool, the oracle settles it at expiry, the wallet redeems;
    the options deployer releases its collateral."""
    from fixbridge.devnet.deploy import DEFAULT_FUNDED, DEPLOYER_ADDRESS, DEPLOYER_KEY
    from fixbridge.devnet.options import OPTIONS_DEPLOYER_ADDRESS, OPTIONS_DEPLOYER_KEY

    w3, dep = dn
    s = dep.options.series["ETH-20261231-3000-C"]
    router = w3.eth.contract(address=dep.router, abi=load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"])
    market = w3.eth.contract(address=dep.options.market, abi=load_own_artifact("OptionsMarket")["abi"])
    usdc = w3.eth.contract(address=dep.usdc, abi=load_own_artifact("TestToken")["abi"])
    weth = w3.eth.contract(address=dep.weth, abi=load_own_artifact("TestToken")["abi"])
    option = w3.eth.contract(address=s.token, abi=load_own_artifact("OptionToken")["abi"])

    def send(fn: Any, sender: str, gas: int | None = None) -> dict:
        tx = {"from": sender} | ({"gas": gas} if gas else {})
        r = w3.eth.wait_for_transaction_receipt(fn.transact(tx), timeout=10)
        assert r["status"] == 1
        return r

    buyer = DEFAULT_FUNDED  # anvil account #1, unlocked
    send(usdc.functions.approve(dep.router, MAX), buyer)
    cost = router.functions.getAmountsIn(2 * E18, [dep.usdc, s.token]).call()[0]
    send(router.functions.swapTokensForExactTokens(2 * E18, cost, [dep.usdc, s.token], buyer, 2**64 - 1), buyer)
    assert option.functions.balanceOf(buyer).call() == 12 * E18

    w3.provider.make_request("evm_setNextBlockTimestamp", [s.expiry_timestamp])
    send(market.functions.settle(s.series_id, 3_600 * E6), DEPLOYER_ADDRESS, gas=200_000)  # oracle: account #0
    weth0 = weth.functions.balanceOf(buyer).call()
    send(market.functions.redeem(s.series_id, 12 * E18), buyer)
    assert weth.functions.balanceOf(buyer).call() == weth0 + 2 * E18  # 12 x (3600-3000)/3600
    # the options deployer's key is in the code (devnet only): it releases its collateral
    from eth_account import Account

    acct = Account.from_key(OPTIONS_DEPLOYER_KEY)
    assert acct.address == OPTIONS_DEPLOYER_ADDRESS and Account.from_key(DEPLOYER_KEY).address == DEPLOYER_ADDRESS
    tx = market.functions.releaseCollateral(s.series_id).build_transaction(
        {"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address), "chainId": w3.eth.chain_id}
    )
    r = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction))
    (ev,) = market.events.CollateralReleased().process_receipt(r, errors=DISCARD)
    assert ev["args"]["kept"] == 20 * E18 and ev["args"]["returned"] == 100 * E18  # 120 written, 1/6 owed
