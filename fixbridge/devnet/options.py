"""On-chain options on the devnet: the project's OptionsMarket (contracts/OptionsMarket.sol),
option series on WETH with USDC as the strike asset, and a Uniswap V2 pool of each option token
against USDC, so options trade like any other token through Router02.

The market comes from its own deployer (`OPTIONS_DEPLOYER_KEY`, not an anvil account), whose nonce
is 0 on every fresh chain: the market's address is fixed, and so are the option tokens (the market's
CREATEs, nonces 1, 2, ...) and their V2 pairs (CREATE2 from the V2 factory), whatever the rest of
the devnet did before. The main deployer (anvil account #0, owner of USDC) gives it ETH and USDC.
At the end anvil account #0 owns the market and is its oracle (`settle`), as it owns everything else.

| series              | premium (USDC) | pool                            |
|---------------------|----------------|---------------------------------|
| ETH-20261231-3000-C | 150            | 100 options + 15,000 USDC       |
| ETH-20261231-3000-P | 150            | 100 options + 15,000 USDC       |
| ETH-20261231-3500-C | 25             | 100 options + 2,500 USDC        |
| ETH-20270326-3000-C | 275            | 100 options + 27,500 USDC       |
| ETH-20270326-3000-P | 275            | 100 options + 27,500 USDC       |

(premiums: Black-Scholes at 3000, 40% volatility, no rates, from late November 2026). Expiry is
08:00 UTC on the date. The options deployer writes each series (pool + 10 options per funded
wallet), fully collateralised (calls: 1 WETH per option, puts: the strike in USDC), and hands each
funded wallet 10 options of each series; it approves nothing for them. A series whose expiry the
chain has already passed cannot be written and is skipped (said in the log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD
from web3.utils import get_create_address

from fixbridge.devnet.deploy import (
    DEPLOYER_ADDRESS,
    DeployError,
    Funding,
    _constructor_data,
    _Sender,
    _toml_str,
    _Tx,
    load_artifact,
    load_own_artifact,
)

if TYPE_CHECKING:  # pragma: no cover
    from fixbridge.devnet.deploy import Deployment

__all__ = [
    "OPTIONS_DEPLOYER_ADDRESS",
    "OPTIONS_DEPLOYER_KEY",
    "OPTIONS_MARKET",
    "OPTION_FUNDING",
    "OPTION_SERIES",
    "POOL_OPTIONS",
    "OptionSeries",
    "OptionSeriesSpec",
    "OptionsDeployment",
    "deploy_options",
    "expiry_timestamp",
    "option_symbol",
    "spec_instrument_lines",
    "spec_token_lines",
]

#: The options deployer: a devnet-only key derived from a fixed phrase (not an anvil account, so
#: no test or other deployment ever moves its nonce).
OPTIONS_DEPLOYER_KEY = "0x" + keccak(text="fixbridge devnet: options deployer").hex()
OPTIONS_DEPLOYER_ADDRESS = Account.from_key(OPTIONS_DEPLOYER_KEY).address
#: Where the OptionsMarket lands on a fresh chain (options deployer, nonce 0).
OPTIONS_MARKET = get_create_address(OPTIONS_DEPLOYER_ADDRESS, 0)

_E18, _E6 = 10**18, 10**6
_MAX_UINT = 2**256 - 1
_DEADLINE = 2**64 - 1
_GAS_ETH = 10 * _E18  # the options deployer's gas money
#: Expiry time of day (Deribit's convention): 08:00 UTC.
EXPIRY_HOUR_UTC = 8
#: Whole options in each V2 pool, and given to each funded wallet per series.
POOL_OPTIONS = 100
OPTION_FUNDING = 10

UNDERLYING, UNDERLYING_LABEL, STRIKE_ASSET = "WETH", "ETH", "USDC"
UNDERLYING_DECIMALS, STRIKE_DECIMALS = 18, 6


@dataclass(frozen=True)
class OptionSeriesSpec:
    """A series to deploy: on WETH, strike in whole USDC per WETH, premium in USDC per option."""

    expiry: date
    strike: int
    put_or_call: str  # "C" or "P"
    premium: Decimal

    @property
    def symbol(self) -> str:
        return option_symbol(UNDERLYING_LABEL, self.expiry, Decimal(self.strike), self.put_or_call)


OPTION_SERIES: tuple[OptionSeriesSpec, ...] = (
    OptionSeriesSpec(date(2026, 12, 31), 3000, "C", Decimal(150)),
    OptionSeriesSpec(date(2026, 12, 31), 3000, "P", Decimal(150)),
    OptionSeriesSpec(date(2026, 12, 31), 3500, "C", Decimal(25)),
    OptionSeriesSpec(date(2027, 3, 26), 3000, "C", Decimal(275)),
    OptionSeriesSpec(date(2027, 3, 26), 3000, "P", Decimal(275)),
)


def option_symbol(label: str, expiry: date, strike: Decimal, put_or_call: str) -> str:
    """What OptionsMarket.createSeries names a series: ETH-20261231-3000-C, ETH-20960229-3000.5-P."""
    strike_text = format(strike.normalize(), "f")
    return f"{label}-{expiry:%Y%m%d}-{strike_text}-{put_or_call}"


def expiry_timestamp(expiry: date) -> int:
    """Unix seconds of 08:00 UTC on the expiry date."""
    return int(datetime(expiry.year, expiry.month, expiry.day, EXPIRY_HOUR_UTC, tzinfo=UTC).timestamp())


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSeries:
    symbol: str  # also the option token's symbol and name, and the instrument key
    series_id: int
    token: str  # the OptionToken (decimals = the underlying's)
    pair: str  # its Uniswap V2 pair against USDC
    underlying: str  # token symbols
    strike_asset: str
    strike: Decimal  # USDC per WETH
    strike_units: int  # the same in USDC base units (what the contract holds)
    expiry: date
    expiry_timestamp: int  # unix seconds, 08:00 UTC on `expiry`
    put_or_call: str
    decimals: int
    written: int  # option base units the options deployer wrote

    @property
    def is_call(self) -> bool:
        return self.put_or_call == "C"


@dataclass(frozen=True)
class OptionsDeployment:
    market: str
    owner: str  # createSeries, setOracle
    oracle: str  # settle
    deployer: str = OPTIONS_DEPLOYER_ADDRESS
    #: symbol ("ETH-20261231-3000-C") -> series
    series: dict[str, OptionSeries] = field(default_factory=dict)

    @property
    def tokens(self) -> dict[str, str]:
        """option symbol -> OptionToken address"""
        return {sym: s.token for sym, s in self.series.items()}


# ---------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------


def spec_token_lines(dep: Deployment) -> list[str]:
    """`[tokens."ETH-20261231-3000-C"]` for each option token (none without options)."""
    opts = getattr(dep, "options", None)
    if opts is None:
        return []
    lines: list[str] = []
    for sym, s in opts.series.items():
        lines += [
            f"[tokens.{_toml_str(sym)}]",
            'chain = "devnet"',
            f"address = {_toml_str(to_checksum_address(s.token))}",
            f"decimals = {s.decimals}",
            "",
        ]
    return lines


def spec_instrument_lines(dep: Deployment) -> list[str]:
    """The options market (as comments: the spec has no key for it yet) and one OPT instrument per
    series, traded against USDC on its V2 pool."""
    opts = getattr(dep, "options", None)
    if opts is None:
        return []
    lines = [
        f"# The options market; its owner and oracle is {to_checksum_address(opts.oracle)}.",
        "# Series expire at 08:00 UTC on their expiry date:",
    ]
    lines += [f"#   {sym}: series {s.series_id}, expiry {s.expiry_timestamp}" for sym, s in opts.series.items()]
    lines += ["[options_markets.options]", 'chain = "devnet"', f"address = {_toml_str(to_checksum_address(opts.market))}", ""]
    for sym, s in opts.series.items():
        lines += [
            f"[instruments.{_toml_str(sym)}]",
            f"base = {_toml_str(sym)}",
            f"quote = {_toml_str(s.strike_asset)}",
            'venues = ["uniswap_v2"]',
            'security_type = "OPT"',
            f"underlying = {_toml_str(s.underlying)}",
            f"strike = {_toml_str(format(s.strike, 'f'))}",
            f"expiry = {s.expiry.isoformat()}",
            f"put_or_call = {_toml_str(s.put_or_call)}",
            'contract_multiplier = "1"',
            'market = "options"',
            f"series_id = {s.series_id}",
            "",
        ]
    return lines


# ---------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------


def deploy_options(
    w3: Web3,
    sender: _Sender,
    tokens: dict[str, str],
    *,
    router: str,
    factory: str,
    funded: Iterable[str] = (),
    series: tuple[OptionSeriesSpec, ...] = OPTION_SERIES,
    log: Callable[[str], None] | None = None,
) -> OptionsDeployment:
    """Deploy the OptionsMarket, `series` on WETH/USDC, write them, seed a V2 pool of each option
    against USDC, and give each `funded` wallet OPTION_FUNDING options of each series.

    `sender` is the main deployer's (anvil account #0, owner of USDC): it gives the options
    deployer ETH (gas + WETH for the calls' collateral) and mints it exactly the USDC the puts'
    collateral and the pools take, so neither deployer keeps any WETH or USDC. `tokens` is symbol
    -> address (WETH and USDC needed). Raises DeployError on anything unexpected.
    """
    say = log or (lambda _msg: None)
    if sender.address != DEPLOYER_ADDRESS:
        raise DeployError(f"USDC's owner {DEPLOYER_ADDRESS} must fund the options deployer, got {sender.address}")
    opt = _Sender(w3, OPTIONS_DEPLOYER_KEY, sender.chain_id, sender.timeout)
    opt.fundings = sender.fundings  # the wallets' options are the deployment's funding too
    if opt.nonce != 0:
        raise DeployError(
            f"options deployer {OPTIONS_DEPLOYER_ADDRESS} already has nonce {opt.nonce}: "
            "deploy_options needs a fresh chain (the fixed OptionsMarket address comes from its nonce 0)"
        )
    funded = tuple(to_checksum_address(a) for a in funded)
    weth_addr, usdc_addr = to_checksum_address(tokens[UNDERLYING]), to_checksum_address(tokens[STRIKE_ASSET])

    # A series the chain has passed the expiry of cannot be written any more.
    now = int(w3.eth.get_block("latest")["timestamp"])
    live = [s for s in series if expiry_timestamp(s.expiry) > now + 60]
    for s in series:
        if s not in live:
            say(f"options: {s.symbol} expired before this chain's time ({now}); not deployed")

    unit = 10**UNDERLYING_DECIMALS
    written = (POOL_OPTIONS + OPTION_FUNDING * len(funded)) * unit
    pool_options = POOL_OPTIONS * unit

    def put_collateral(s: OptionSeriesSpec) -> int:
        return -(-written * s.strike * 10**STRIKE_DECIMALS // unit)  # rounded up, as the market does

    def pool_usdc(s: OptionSeriesSpec) -> int:
        units = s.premium * POOL_OPTIONS * 10**STRIKE_DECIMALS
        if units != units.to_integral_value():
            raise DeployError(f"{s.symbol}: premium {s.premium} is finer than USDC's decimals")
        return int(units)

    weth_needed = sum(written for s in live if s.put_or_call == "C")
    usdc_needed = sum(put_collateral(s) for s in live if s.put_or_call == "P") + sum(pool_usdc(s) for s in live)
    eth = weth_needed + _GAS_ETH
    if w3.eth.get_balance(sender.address) < eth + _E18:
        raise DeployError(f"deployer {sender.address} cannot give the options deployer {eth} wei; start anvil with a larger --balance")

    market_art = load_own_artifact("OptionsMarket")
    option_abi = load_own_artifact("OptionToken")["abi"]
    usdc = w3.eth.contract(address=usdc_addr, abi=load_own_artifact("TestToken")["abi"])
    weth = w3.eth.contract(address=weth_addr, abi=load_artifact("@uniswap/v2-periphery", "WETH9")["abi"])
    router_c = w3.eth.contract(address=router, abi=load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"])
    factory_c = w3.eth.contract(address=factory, abi=load_artifact("@uniswap/v2-core", "UniswapV2Factory")["abi"])
    market_addr = OPTIONS_MARKET
    market = w3.eth.contract(address=market_addr, abi=market_art["abi"])

    # 1. the options deployer's ETH and USDC (from USDC's owner)
    sender.batch(
        [_Tx("ETH -> options deployer", OPTIONS_DEPLOYER_ADDRESS, "0x", eth)]
        + ([_Tx("USDC.mint(options deployer)", usdc_addr, usdc.encode_abi("mint", [OPTIONS_DEPLOYER_ADDRESS, usdc_needed]))]
           if usdc_needed else [])
    )  # fmt: skip

    # 2. the market (oracle: anvil account #0), the calls' WETH, the market's and the router's allowances
    receipts = opt.batch(
        [
            _Tx("deploy OptionsMarket", None, _constructor_data(market_art, DEPLOYER_ADDRESS)),
            _Tx("WETH.deposit", weth_addr, weth.encode_abi("deposit"), weth_needed),
            _Tx("WETH.approve(OptionsMarket)", weth_addr, weth.encode_abi("approve", [market_addr, _MAX_UINT])),
            _Tx("USDC.approve(OptionsMarket)", usdc_addr, usdc.encode_abi("approve", [market_addr, _MAX_UINT])),
            _Tx("USDC.approve(router)", usdc_addr, usdc.encode_abi("approve", [router, _MAX_UINT])),
        ]
    )
    if receipts[0]["contractAddress"] != market_addr:
        raise DeployError(f"OptionsMarket landed at {receipts[0]['contractAddress']}, expected {market_addr}")

    # 3. the series: each deploys its OptionToken (the market's nonces 1, 2, ...)
    receipts = opt.batch(
        [
            _Tx(
                f"createSeries {s.symbol}",
                market_addr,
                market.encode_abi(
                    "createSeries",
                    [weth_addr, usdc_addr, s.strike * 10**STRIKE_DECIMALS, expiry_timestamp(s.expiry),
                     s.put_or_call == "C", UNDERLYING_LABEL],
                ),
            )  # fmt: skip
            for s in live
        ]
    )
    created: list[tuple[OptionSeriesSpec, int, str]] = []
    for s, receipt in zip(live, receipts, strict=True):
        (ev,) = market.events.SeriesCreated().process_receipt(receipt, errors=DISCARD)
        if ev["args"]["symbol"] != s.symbol:
            raise DeployError(f"createSeries named the series {ev['args']['symbol']!r}, expected {s.symbol!r}")
        created.append((s, int(ev["args"]["seriesId"]), to_checksum_address(ev["args"]["token"])))
    option = {s.symbol: w3.eth.contract(address=tok, abi=option_abi) for s, _, tok in created}

    # 4. write every series; the router may take the options into the pools
    opt.batch(
        [_Tx(f"write {s.symbol}", market_addr, market.encode_abi("write", [sid, written])) for s, sid, _ in created]
        + [
            _Tx(f"{s.symbol}.approve(router)", tok, option[s.symbol].encode_abi("approve", [router, _MAX_UINT]))
            for s, _, tok in created
        ]
    )

    # 5. the pools (the router creates each pair) and the funded wallets' options; then anvil
    #    account #0 owns the market
    opt.batch(
        [
            _Tx(
                f"addLiquidity {s.symbol}/USDC",
                router,
                router_c.encode_abi(
                    "addLiquidity",
                    [tok, usdc_addr, pool_options, pool_usdc(s), pool_options, pool_usdc(s), OPTIONS_DEPLOYER_ADDRESS,
                     _DEADLINE],
                ),
            )  # fmt: skip
            for s, _, tok in created
        ]
        + [
            _Tx(f"{s.symbol} -> {wallet}", tok, option[s.symbol].encode_abi("transfer", [wallet, OPTION_FUNDING * unit]),
                funds=Funding(s.symbol, tok, UNDERLYING_DECIMALS, wallet, OPTION_FUNDING * unit))
            for wallet in funded
            for s, _, tok in created
        ]
        + [_Tx("OptionsMarket.transferOwnership", market_addr, market.encode_abi("transferOwnership", [DEPLOYER_ADDRESS]))]
    )

    result: dict[str, OptionSeries] = {}
    for s, sid, tok in created:
        pair = factory_c.functions.getPair(tok, usdc_addr).call()
        if int(pair, 16) == 0:
            raise DeployError(f"factory has no {s.symbol}/USDC pair after addLiquidity")
        result[s.symbol] = OptionSeries(
            symbol=s.symbol,
            series_id=sid,
            token=tok,
            pair=to_checksum_address(pair),
            underlying=UNDERLYING,
            strike_asset=STRIKE_ASSET,
            strike=Decimal(s.strike),
            strike_units=s.strike * 10**STRIKE_DECIMALS,
            expiry=s.expiry,
            expiry_timestamp=expiry_timestamp(s.expiry),
            put_or_call=s.put_or_call,
            decimals=UNDERLYING_DECIMALS,
            written=written,
        )
    say(
        f"options: OptionsMarket {market_addr}, "
        + ", ".join(f"{sym} {s.token} (pair {s.pair})" for sym, s in result.items())
    )
    return OptionsDeployment(market=market_addr, owner=DEPLOYER_ADDRESS, oracle=DEPLOYER_ADDRESS, series=result)
