"""The example specs for real chains (specs/examples/) load as the bridge loads them and carry the
canonical addresses. Unit level: no node is contacted (the RPC URLs are dummies from the
environment). The expected values are written here again, from the sources each file cites, so a
typo in a file fails."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from fixbridge.config import ConfigError, load_spec
from fixbridge.config.spec import expand_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "specs" / "examples"


def cs(address: str) -> str:
    return to_checksum_address(address.lower())


# Uniswap docs (v2 and v3 deployments pages), Circle's USDC addresses, Uniswap/sdk-core chains.ts.
SWAP_ROUTER = cs("0xe592427a0aece92de3edee1f18e0157c05861564")        # v3-periphery SwapRouter
QUOTER_V2 = cs("0x61ffe014ba17989e743c5f6cb21bf9697530b21e")
V3_FACTORY = cs("0x1f98431c8ad98523631ae4a59f267346ea31f984")
L2_V2_ROUTER = cs("0x4752ba5dbc23f44d87826276bf6fd6b1c372ad24")

EXPECTED = {
    "mainnet": dict(
        file="mainnet.toml", chain_id=1, env="FIXBRIDGE_MAINNET_RPC_URL", suffix="",
        weth=cs("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"), usdc=cs("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
        v2=(cs("0x7a250d5630b4cf539739df2c5dacb4c659f2488d"), cs("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f")),
        v3=(SWAP_ROUTER, V3_FACTORY, QUOTER_V2)),
    "arbitrum": dict(
        file="arbitrum.toml", chain_id=42161, env="FIXBRIDGE_ARBITRUM_RPC_URL", suffix=":arbitrum",
        weth=cs("0x82af49447d8a07e3bd95bd0d56f35241523fbab1"), usdc=cs("0xaf88d065e77c8cc2239327c5edb3a432268e5831"),
        v2=(L2_V2_ROUTER, cs("0xf1d7cc64fb4452f05c498126312ebe29f30fbcf9")),
        v3=(SWAP_ROUTER, V3_FACTORY, QUOTER_V2)),
    "base": dict(
        file="base.toml", chain_id=8453, env="FIXBRIDGE_BASE_RPC_URL", suffix=":base",
        weth=cs("0x4200000000000000000000000000000000000006"), usdc=cs("0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"),
        v2=(L2_V2_ROUTER, cs("0x8909dc15e40173ff4699343b6eb8132c65e18ec6")),
        v3=None),  # Base has SwapRouter02 only; the adapter speaks SwapRouter (see base.toml)
}
DUMMY = "https://node.invalid/v2/not-a-real-key"


@pytest.fixture
def rpc_env(monkeypatch):
    for e in EXPECTED.values():
        monkeypatch.setenv(e["env"], DUMMY)


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(e["file"] for e in EXPECTED.values())


@pytest.mark.parametrize("chain", EXPECTED)
def test_example_constants(chain, rpc_env):
    e = EXPECTED[chain]
    spec = load_spec(EXAMPLES / e["file"])
    c = spec.chains[chain]
    assert (c.chain_id, c.rpc_url, c.devnet) == (e["chain_id"], DUMMY, False)
    weth, usdc = spec.tokens["WETH" + e["suffix"]], spec.tokens["USDC" + e["suffix"]]
    assert (weth.address, weth.decimals, weth.chain) == (e["weth"], 18, chain)
    assert (usdc.address, usdc.decimals, usdc.chain) == (e["usdc"], 6, chain)
    v2 = spec.venues["uniswap_v2" + e["suffix"]]
    assert (v2.kind, v2.chain, v2.router, v2.factory) == ("uniswap_v2", chain, *e["v2"])
    v3_name = "uniswap_v3" + e["suffix"]
    if e["v3"] is None:
        assert v3_name not in spec.venues
    else:
        v3 = spec.venues[v3_name]
        assert (v3.kind, v3.chain, v3.router, v3.factory, v3.quoter) == ("uniswap_v3", chain, *e["v3"])
        assert set(v3.fee_tiers) <= {100, 500, 3000, 10000} and 500 in v3.fee_tiers and 3000 in v3.fee_tiers


@pytest.mark.parametrize("chain", EXPECTED)
def test_every_instrument_resolves(chain, rpc_env):
    spec = load_spec(EXAMPLES / EXPECTED[chain]["file"])
    assert spec.instruments, "an example with nothing to trade"
    for sym, ins in spec.instruments.items():
        assert spec.chain_of(ins).name == chain
        assert spec.tokens[ins.base].chain == spec.tokens[ins.quote].chain == chain
        assert all(spec.venues[v].chain == chain for v in ins.venues)
    assert "WETH/USDC" + EXPECTED[chain]["suffix"] in spec.instruments


@pytest.mark.parametrize("chain", EXPECTED)
def test_addresses_are_written_checksummed(chain):
    """The file itself carries EIP-55 forms: what an explorer shows, and a typo changes the case."""
    raw = tomllib.loads((EXAMPLES / EXPECTED[chain]["file"]).read_text())
    written = [t["address"] for t in raw["tokens"].values()]
    written += [v[k] for v in raw["venues"].values() for k in ("router", "factory", "quoter") if k in v]
    assert written and all(a == cs(a) for a in written)


@pytest.mark.parametrize("chain", EXPECTED)
def test_policy_fits_the_chain(chain, rpc_env):
    """A re-pricing ceiling under the bridge's first bid (its fixed 1 gwei tip) would leave every
    replacement stuck at the ceiling."""
    from fixbridge.chain.submitter import PRIORITY_FEE
    c = load_spec(EXAMPLES / EXPECTED[chain]["file"]).chains[chain]
    assert c.max_fee_per_gas_wei is not None and c.max_fee_per_gas_wei > 2 * PRIORITY_FEE
    assert c.fee_bump_percent >= 10


def test_all_examples_load_together(rpc_env):
    spec = load_spec([EXAMPLES / e["file"] for e in EXPECTED.values()])
    assert {c.chain_id for c in spec.chains.values()} == {1, 42161, 8453}


@pytest.mark.parametrize("chain", EXPECTED)
def test_unset_rpc_variable_is_named(chain, monkeypatch):
    e = EXPECTED[chain]
    monkeypatch.delenv(e["env"], raising=False)
    with pytest.raises(ConfigError) as err:
        load_spec(EXAMPLES / e["file"])
    assert err.value.key == f"chains.{chain}.rpc_url"
    assert f"environment variable {e['env']} is not set" in err.value.problem


def test_expand_env(monkeypatch):
    monkeypatch.setenv("FB_TEST_HOST", "node.example")
    monkeypatch.setenv("FB_TEST_KEY", "s3cret")
    assert expand_env("https://${FB_TEST_HOST}/v2/${FB_TEST_KEY}", "f.toml", "k") == "https://node.example/v2/s3cret"
    assert expand_env("http://127.0.0.1:8545", "f.toml", "k") == "http://127.0.0.1:8545"
    monkeypatch.setenv("FB_TEST_EMPTY", "")
    with pytest.raises(ConfigError, match="FB_TEST_EMPTY is not set"):
        expand_env("https://${FB_TEST_EMPTY}", "f.toml", "k")
    with pytest.raises(ConfigError, match="not an environment variable reference"):
        expand_env("https://${not-a-name}/x", "f.toml", "k")


def test_expanded_url_is_not_in_the_error(monkeypatch, tmp_path):
    """A spec that fails later (here: a bad token) must not echo the node URL and its key."""
    monkeypatch.setenv("FIXBRIDGE_MAINNET_RPC_URL", DUMMY)
    text = (EXAMPLES / "mainnet.toml").read_text().replace("decimals = 6", "decimals = -6")
    p = tmp_path / "spec.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec(p)
    assert err.value.key == "tokens.USDC.decimals" and "not-a-real-key" not in str(err.value)
