"""The embedded devnet as a user sees it: a real anvil, the real Uniswap V2
contracts from the npm artifacts, funded wallets, a real swap, the spec."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from fixbridge.devnet.anvil import Anvil, AnvilError, anvil_binary
from fixbridge.devnet import uniswap_v3 as v3mod
from fixbridge.devnet.deploy import (
    CANONICAL,
    DEFAULT_FUNDED,
    DEPLOYER_ADDRESS,
    FUNDING,
    GAS_FUNDING_WEI,
    LIQUIDITY,
    Deployment,
    DeployError,
    deploy_devnet,
    load_artifact,
    load_own_artifact,
    render_spec,
    write_spec,
)
from fixbridge.devnet.uniswap_v3 import (
    V3_CANONICAL,
    V3_DEPLOYER_ADDRESS,
    V3_POSITIONS,
    check_init_code_hash,
    encode_sqrt_price_x96,
    load_hardhat_artifact,
)

ROOT = Path(__file__).resolve().parents[2]
# anvil account #1 (the default funded wallet) — the well-known test key
TRADER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
# A wallet that is not an anvil account: deploy_devnet must also give it gas.
OUTSIDER = Account.from_key("0x" + "11" * 32).address

ERC20_ABI = load_own_artifact("TestToken")["abi"] if (ROOT / "contracts/artifacts/TestToken.json").is_file() else []


def _anvil_or_skip() -> None:
    try:
        anvil_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Anvil, Deployment]]:
    _anvil_or_skip()
    with Anvil(port=0) as node:
        yield node, deploy_devnet(node.rpc_url)


@pytest.fixture(scope="module")
def second_chain() -> Iterator[tuple[Anvil, Deployment]]:
    _anvil_or_skip()
    with Anvil(port=0) as node:
        yield node, deploy_devnet(node.rpc_url, fund=[DEFAULT_FUNDED, OUTSIDER])


@pytest.fixture
def w3(chain: tuple[Anvil, Deployment]) -> Iterator[Web3]:
    """web3 on the module chain; whatever a test does is rolled back after it."""
    node, _ = chain
    snap = node.rpc("evm_snapshot")
    yield Web3(Web3.HTTPProvider(node.rpc_url))
    assert node.rpc("evm_revert", [snap]) is True


def _erc20(w3: Web3, address: str):
    return w3.eth.contract(address=address, abi=ERC20_ABI)


def _send(w3: Web3, key: str, fn) -> dict:
    """Sign a contract call with `key` and send it raw, as the bridge does."""
    acct = Account.from_key(key)
    tx = fn.build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction), timeout=10
    )
    assert receipt["status"] == 1
    return receipt


# -- addresses -----------------------------------------------------------------


def test_same_addresses_on_every_fresh_chain(chain, second_chain) -> None:
    (node1, a), (node2, b) = chain, second_chain
    assert node1.rpc_url != node2.rpc_url
    assert a.chain_id == b.chain_id == 31337
    for name in ("weth", "usdc", "wbtc", "factory", "router"):
        assert getattr(a, name) == getattr(b, name) == CANONICAL[name]
    assert a.pairs == b.pairs and set(a.pairs) == {"WETH/USDC", "WBTC/USDC", "WBTC/WETH"}
    assert a.weth == "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # deployer nonce 0, as everyone knows it
    assert a.decimals == {"WETH": 18, "USDC": 6, "WBTC": 8}
    assert a.funded == (DEFAULT_FUNDED,)
    # Uniswap V3 comes from its own deployer: the same addresses although the chains funded
    # different wallets (so the main deployer's nonce differs between them)
    assert a.v3 is not None and a.v3 == b.v3
    assert {k: getattr(a.v3, k) for k in V3_CANONICAL} == V3_CANONICAL
    assert a.v3.deployer == V3_DEPLOYER_ADDRESS and a.v3.fee_tiers == (500, 3000)
    assert {k: set(v) for k, v in a.v3.pools.items()} == {"WETH/USDC": {500, 3000}, "WBTC/USDC": {3000}}
    assert a.v3.router == "0x9bB30C52D59Fea7380712643ad2A4012376A0a42"  # what specs/devnet.toml says


def test_contracts_are_what_they_claim(chain, w3: Web3) -> None:
    _, dep = chain
    factory = w3.eth.contract(address=dep.factory, abi=load_artifact("@uniswap/v2-core", "UniswapV2Factory")["abi"])
    router = w3.eth.contract(address=dep.router, abi=load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"])
    assert router.functions.factory().call() == dep.factory
    assert router.functions.WETH().call() == dep.weth
    assert factory.functions.feeToSetter().call() == DEPLOYER_ADDRESS
    assert factory.functions.allPairsLength().call() == 3 + len(dep.options.series)  # spot pairs + one per option
    for symbol, name, decimals in [
        ("USDC", "USD Coin (devnet)", 6),
        ("WBTC", "Wrapped BTC (devnet)", 8),
        ("WETH", "Wrapped Ether", 18),
    ]:
        token = _erc20(w3, dep.tokens[symbol])
        assert (token.functions.symbol().call(), token.functions.name().call()) == (symbol, name)
        assert token.functions.decimals().call() == decimals


def test_pool_reserves_match_the_prices(chain, w3: Web3) -> None:
    _, dep = chain
    pair_abi = load_artifact("@uniswap/v2-core", "UniswapV2Pair")["abi"]
    for key, (base_amount, quote_amount) in LIQUIDITY.items():
        base, quote = key.split("/")
        pair = w3.eth.contract(address=dep.pairs[key], abi=pair_abi)
        r0, r1, _ = pair.functions.getReserves().call()
        token0 = pair.functions.token0().call()
        reserves = {token0: r0, pair.functions.token1().call(): r1}
        assert reserves == {dep.tokens[base]: base_amount, dep.tokens[quote]: quote_amount}, key
    # the prices, in whole units: 3000 USDC/WETH, 60000 USDC/WBTC, 20 WETH/WBTC
    assert LIQUIDITY["WETH/USDC"] == (1_000 * 10**18, 3_000_000 * 10**6)
    assert LIQUIDITY["WBTC/USDC"] == (50 * 10**8, 3_000_000 * 10**6)
    assert LIQUIDITY["WBTC/WETH"] == (50 * 10**8, 1_000 * 10**18)


def test_funded_wallet_balances(chain, w3: Web3) -> None:
    _, dep = chain
    for symbol, amount in FUNDING.items():
        assert _erc20(w3, dep.tokens[symbol]).functions.balanceOf(DEFAULT_FUNDED).call() == amount, symbol
    assert FUNDING == {"WETH": 100 * 10**18, "USDC": 1_000_000 * 10**6, "WBTC": 10 * 10**8}
    assert w3.eth.get_balance(DEFAULT_FUNDED) == 10_000 * 10**18  # anvil's own, untouched
    # the deployer keeps nothing but LP tokens: every token went into pools or wallets
    for symbol in ("WETH", "USDC", "WBTC"):
        assert _erc20(w3, dep.tokens[symbol]).functions.balanceOf(DEPLOYER_ADDRESS).call() == 0
        assert _erc20(w3, dep.tokens[symbol]).functions.balanceOf(V3_DEPLOYER_ADDRESS).call() == 0


def test_an_outside_wallet_gets_tokens_and_gas(second_chain) -> None:
    node, dep = second_chain
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    assert dep.funded == (DEFAULT_FUNDED, OUTSIDER)
    assert w3.eth.get_balance(OUTSIDER) == GAS_FUNDING_WEI
    for symbol, amount in FUNDING.items():
        assert _erc20(w3, dep.tokens[symbol]).functions.balanceOf(OUTSIDER).call() == amount


def test_the_deployment_says_what_it_funded(second_chain) -> None:
    """`fixbridge run` journals these as deposits: each must be a real transfer, with its hash."""
    from fixbridge.devnet.options import OPTION_FUNDING

    node, dep = second_chain
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    plain = {(f.wallet, f.symbol): f.units for f in dep.fundings if f.symbol in FUNDING or f.token is None}
    assert plain == {**{(w, s): a for w in (DEFAULT_FUNDED, OUTSIDER) for s, a in FUNDING.items()},
                     (OUTSIDER, "ETH"): GAS_FUNDING_WEI}  # DEFAULT_FUNDED had ETH: none sent
    options = [f for f in dep.fundings if f.symbol not in FUNDING and f.token is not None]
    assert len(options) == 2 * len(dep.options.series)
    assert {f.units for f in options} == {OPTION_FUNDING * 10**18}
    for f in dep.fundings:
        rc = w3.eth.get_transaction_receipt(f.tx_hash)
        assert rc.status == 1 and rc.blockNumber == f.block_number
        if f.token is None:
            tx = w3.eth.get_transaction(f.tx_hash)
            assert tx["to"] == f.wallet and tx["value"] == f.units
        else:
            assert _erc20(w3, f.token).events.Transfer().process_receipt(rc, errors=DISCARD)[0]["args"]["value"] == f.units


# -- Uniswap V3 ------------------------------------------------------------------


def _v3(w3: Web3, address: str, package: str, path: str):
    return w3.eth.contract(address=address, abi=load_hardhat_artifact(package, path)["abi"])


def test_v3_contracts_are_what_they_claim(chain, w3: Web3) -> None:
    _, dep = chain
    v3 = dep.v3
    periphery = "@uniswap/v3-periphery"
    router = _v3(w3, v3.router, periphery, "contracts/SwapRouter.sol/SwapRouter")
    npm = _v3(w3, v3.position_manager, periphery, "contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager")
    quoter = _v3(w3, v3.quoter, periphery, "contracts/lens/QuoterV2.sol/QuoterV2")
    factory = _v3(w3, v3.factory, "@uniswap/v3-core", "contracts/UniswapV3Factory.sol/UniswapV3Factory")
    for c in (router, npm, quoter):
        assert c.functions.factory().call() == v3.factory
        assert c.functions.WETH9().call() == dep.weth
    assert factory.functions.owner().call() == V3_DEPLOYER_ADDRESS
    assert {fee: factory.functions.feeAmountTickSpacing(fee).call() for fee in (500, 3000)} == {500: 10, 3000: 60}
    assert npm.functions.balanceOf(V3_DEPLOYER_ADDRESS).call() == len(V3_POSITIONS)  # one NFT per position


def test_v3_pools_start_at_the_prices_with_the_liquidity(chain, w3: Web3) -> None:
    _, dep = chain
    pool_abi = load_hardhat_artifact("@uniswap/v3-core", "contracts/UniswapV3Pool.sol/UniswapV3Pool")["abi"]
    liquidity = {}
    for pos in V3_POSITIONS:
        base, quote = pos.instrument.split("/")
        pool = w3.eth.contract(address=dep.v3.pools[pos.instrument][pos.fee], abi=pool_abi)
        token0, token1 = pool.functions.token0().call(), pool.functions.token1().call()
        assert int(token0, 16) < int(token1, 16) and {token0, token1} == {dep.tokens[base], dep.tokens[quote]}
        assert pool.functions.fee().call() == pos.fee
        sqrt_price, tick = pool.functions.slot0().call()[:2]
        base_units, quote_units = pos.price
        if token0 == dep.tokens[base]:  # price token1/token0 = quote per base
            assert sqrt_price == encode_sqrt_price_x96(quote_units, base_units)
        else:
            assert sqrt_price == encode_sqrt_price_x96(base_units, quote_units)
        liquidity[pos.instrument, pos.fee] = pool.functions.liquidity().call()
        # what the pool holds: every token the deployer was given (it kept none)
        held = {t: _erc20(w3, t).functions.balanceOf(pool.address).call() for t in (token0, token1)}
        assert 0.95 * pos.base <= held[dep.tokens[base]] <= pos.base
        assert 0.95 * pos.quote <= held[dep.tokens[quote]] <= pos.quote
    # the 0.05% pool is narrow (deeper at the price), the 0.3% pool wide
    assert liquidity["WETH/USDC", 500] > 2 * liquidity["WETH/USDC", 3000] > 0


def test_init_code_hash_mismatch_fails_loudly(monkeypatch) -> None:
    arts = v3mod._v3_artifacts()
    check_init_code_hash(arts)  # the pinned packages agree
    monkeypatch.setattr(v3mod, "POOL_INIT_CODE_HASH", "0x" + "00" * 32)
    with pytest.raises(DeployError, match="POOL_INIT_CODE_HASH"):
        check_init_code_hash(arts)


# -- a real swap -----------------------------------------------------------------


def test_swap_through_router02_moves_balances_as_quoted(chain, w3: Web3) -> None:
    _, dep = chain
    router = w3.eth.contract(address=dep.router, abi=load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"])
    usdc, weth = _erc20(w3, dep.usdc), _erc20(w3, dep.weth)
    trader = DEFAULT_FUNDED
    amount_in = 3_000 * 10**6  # 3000 USDC
    path = [dep.usdc, dep.weth]

    quoted = router.functions.getAmountsOut(amount_in, path).call()
    assert quoted[0] == amount_in
    # x*y=k with the 0.3% fee: 1000 WETH * 3000*0.997 / (3_000_000 + 3000*0.997)
    expected = amount_in * 997 * 1_000 * 10**18 // (3_000_000 * 10**6 * 1000 + amount_in * 997)
    assert quoted[1] == expected
    assert 0.99 * 10**18 < quoted[1] < 10**18  # a bit under 1 WETH

    usdc_before, weth_before = usdc.functions.balanceOf(trader).call(), weth.functions.balanceOf(trader).call()
    _send(w3, TRADER_KEY, usdc.functions.approve(dep.router, amount_in))
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    receipt = _send(
        w3,
        TRADER_KEY,
        router.functions.swapExactTokensForTokens(amount_in, quoted[1], path, trader, deadline),
    )
    assert usdc.functions.balanceOf(trader).call() == usdc_before - amount_in
    assert weth.functions.balanceOf(trader).call() == weth_before + quoted[1]

    pair = w3.eth.contract(address=dep.pairs["WETH/USDC"], abi=load_artifact("@uniswap/v2-core", "UniswapV2Pair")["abi"])
    swaps = pair.events.Swap().process_receipt(receipt, errors=DISCARD)  # skip the tokens' Transfer logs
    assert len(swaps) == 1 and swaps[0]["args"]["to"] == trader
    r0, r1, _ = pair.functions.getReserves().call()
    got = {pair.functions.token0().call(): r0, pair.functions.token1().call(): r1}
    assert got == {dep.weth: 1_000 * 10**18 - quoted[1], dep.usdc: 3_000_000 * 10**6 + amount_in}


def test_the_snapshot_rolled_the_swap_back(chain, w3: Web3) -> None:
    _, dep = chain
    assert _erc20(w3, dep.usdc).functions.balanceOf(DEFAULT_FUNDED).call() == FUNDING["USDC"]


# -- the spec --------------------------------------------------------------------


def test_written_spec_parses_and_names_the_contracts(chain, tmp_path: Path) -> None:
    _, dep = chain
    path = tmp_path / "specs" / "devnet.toml"
    write_spec(dep, path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Written by `fixbridge devnet` — the embedded devnet")
    spec = tomllib.loads(text)
    assert spec["chains"]["devnet"] == {"chain_id": 31337, "rpc_url": dep.rpc_url, "devnet": True, "replace_after_blocks": 3,
                                        "fee_bump_percent": 20, "max_fee_per_gas_gwei": "500"}
    assert spec["tokens"] == {
        "WETH": {"chain": "devnet", "address": dep.weth, "decimals": 18},
        "USDC": {"chain": "devnet", "address": dep.usdc, "decimals": 6},
        "WBTC": {"chain": "devnet", "address": dep.wbtc, "decimals": 8},
        **{sym: {"chain": "devnet", "address": s.token, "decimals": 18} for sym, s in dep.options.series.items()},
    }
    assert spec["venues"] == {
        "uniswap_v2": {"kind": "uniswap_v2", "chain": "devnet", "router": dep.router, "factory": dep.factory},
        "uniswap_v3": {"kind": "uniswap_v3", "chain": "devnet", "router": dep.v3.router, "factory": dep.v3.factory,
                       "quoter": dep.v3.quoter, "fee_tiers": [500, 3000]},
    }
    assert spec["instruments"] == {
        "WETH/USDC": {"base": "WETH", "quote": "USDC", "venues": ["uniswap_v2", "uniswap_v3"]},
        "WBTC/USDC": {"base": "WBTC", "quote": "USDC", "venues": ["uniswap_v2", "uniswap_v3"]},
        "WBTC/WETH": {"base": "WBTC", "quote": "WETH", "venues": ["uniswap_v2"]},
        **{  # the options, on their V2 pools against USDC
            sym: {"base": sym, "quote": "USDC", "venues": ["uniswap_v2"], "security_type": "OPT", "underlying": "WETH",
                  "strike": str(s.strike), "expiry": s.expiry, "put_or_call": s.put_or_call,
                  "contract_multiplier": "1", "market": "options", "series_id": s.series_id}
            for sym, s in dep.options.series.items()
        },
    }
    assert spec["options_markets"] == {"options": {"chain": "devnet", "address": dep.options.market}}
    assert list(dep.options.series) == [
        "ETH-20261231-3000-C", "ETH-20261231-3000-P", "ETH-20261231-3500-C", "ETH-20270326-3000-C", "ETH-20270326-3000-P"]
    # without V3 (a Deployment made before it existed) the spec is the V2 one
    v2_only = tomllib.loads(render_spec(dataclasses.replace(dep, v3=None)))
    assert set(v2_only["venues"]) == {"uniswap_v2"}
    assert all(ins["venues"] == ["uniswap_v2"] for ins in v2_only["instruments"].values())
    write_spec(dep, tmp_path / "again.toml")
    assert (tmp_path / "again.toml").read_bytes() == path.read_bytes()


def test_committed_spec_matches_a_fresh_deployment(chain) -> None:
    committed = ROOT / "specs" / "devnet.toml"
    if not committed.is_file():
        pytest.skip("specs/devnet.toml not written yet (python -m fixbridge.devnet --port 8545 --spec specs/devnet.toml)")
    _, dep = chain
    on_8545 = dataclasses.replace(dep, rpc_url="http://127.0.0.1:8545")
    assert committed.read_text(encoding="utf-8") == render_spec(on_8545), (
        "specs/devnet.toml differs from what the devnet deploys; regenerate it"
    )


# -- failure modes ---------------------------------------------------------------


def test_deploying_twice_on_one_chain_is_refused(chain) -> None:
    node, _ = chain
    with pytest.raises(DeployError, match="fresh chain"):
        deploy_devnet(node.rpc_url)


def test_unreachable_node_is_a_clear_error() -> None:
    with pytest.raises(DeployError, match="cannot reach"):
        deploy_devnet("http://127.0.0.1:9")


def test_busy_port_is_refused(chain) -> None:
    node, _ = chain
    with pytest.raises(AnvilError, match="already in use"):
        Anvil(port=node.port).start()


def test_stop_ends_the_process() -> None:
    _anvil_or_skip()
    node = Anvil(port=0).start()
    proc = node._proc
    assert node.running and proc is not None
    node.stop()
    assert proc.poll() is not None and not node.running
    node.stop()  # idempotent


def test_missing_npm_install_says_what_to_run(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FIXBRIDGE_NODE_MODULES", str(tmp_path / "node_modules"))
    with pytest.raises(AnvilError, match="npm ci"):
        anvil_binary()
    with pytest.raises(DeployError, match="npm ci"):
        load_artifact("@uniswap/v2-core", "UniswapV2Factory")
    with pytest.raises(DeployError, match="npm ci"):
        load_hardhat_artifact("@uniswap/v3-core", "contracts/UniswapV3Factory.sol/UniswapV3Factory")
    assert os.environ["FIXBRIDGE_NODE_MODULES"].endswith("node_modules")
