"""Deploy the devnet venues: WETH9, Uniswap V2 (factory + Router02) from the npm
build artifacts, and two TestTokens (USDC, WBTC) from contracts/artifacts/.

Deterministic: on a fresh chain, anvil account #0 deploys everything in a
fixed order with nonces 0, 1, 2, ..., so the addresses are the same on every
start (see `CANONICAL`). Transactions are signed here and sent raw, the way
the bridge itself talks to any node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import get_abi_input_types, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.utils import get_create_address

from fixbridge.devnet.anvil import node_modules_dir, project_root

if TYPE_CHECKING:  # pragma: no cover
    from fixbridge.devnet.options import OptionsDeployment
    from fixbridge.devnet.uniswap_v3 import V3Deployment

__all__ = [
    "CANONICAL",
    "DEFAULT_FUNDED",
    "DEPLOYER_ADDRESS",
    "DEPLOYER_KEY",
    "FUNDING",
    "LIQUIDITY",
    "TOKEN_DECIMALS",
    "Deployment",
    "DeployError",
    "Funding",
    "deploy_devnet",
    "load_artifact",
    "load_own_artifact",
    "render_spec",
    "write_spec",
]

#: anvil account #0 (default test mnemonic): deploys and owns everything.
DEPLOYER_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#: anvil account #1: the wallet funded for trading unless told otherwise.
DEFAULT_FUNDED = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

TOKEN_DECIMALS: dict[str, int] = {"WETH": 18, "USDC": 6, "WBTC": 8}
TOKEN_NAMES: dict[str, str] = {"USDC": "USD Coin (devnet)", "WBTC": "Wrapped BTC (devnet)"}

_E18, _E6, _E8 = 10**18, 10**6, 10**8

#: Initial pool reserves, instrument key "BASE/QUOTE" -> (base units, quote units).
#: WETH/USDC 3000, WBTC/USDC 60000, WBTC/WETH 20.
LIQUIDITY: dict[str, tuple[int, int]] = {
    "WETH/USDC": (1_000 * _E18, 3_000_000 * _E6),
    "WBTC/USDC": (50 * _E8, 3_000_000 * _E6),
    "WBTC/WETH": (50 * _E8, 1_000 * _E18),
}

#: What each funded wallet receives.
FUNDING: dict[str, int] = {"WETH": 100 * _E18, "USDC": 1_000_000 * _E6, "WBTC": 10 * _E8}
#: ETH sent for gas to a funded wallet that has none (anvil's own accounts have plenty).
GAS_FUNDING_WEI = 10 * _E18

_MAX_UINT = 2**256 - 1
_DEADLINE = 2**64 - 1  # fixed, so the transactions are the same on every run
_TIP_WEI = 10**9

# Deployment order = deployer nonce. Changing it changes every address.
_ORDER = ("weth", "factory", "router", "usdc", "wbtc")

#: The addresses a fresh chain gets (derived from the deployer and nonce).
CANONICAL: dict[str, str] = {
    name: get_create_address(DEPLOYER_ADDRESS, nonce) for nonce, name in enumerate(_ORDER)
}

_SPEC_HEADER = (
    "# Written by `fixbridge devnet` — the embedded devnet: anvil + Uniswap V2 and V3 from the npm artifacts."
)


class DeployError(RuntimeError):
    """The devnet could not be deployed (missing artifacts, used chain, revert...)."""


# ---------------------------------------------------------------------------
# artifacts
# ---------------------------------------------------------------------------


def _normalise(raw: dict[str, Any], name: str, where: Path) -> dict[str, Any]:
    art = dict(raw)
    art.setdefault("contractName", name)
    code = art.get("bytecode")
    if isinstance(code, dict):  # hardhat/solc style {"object": ...}
        code = code.get("object", "")
    code = code or ""
    if not code.startswith("0x"):
        code = "0x" + code
    if "__" in code:
        raise DeployError(f"{where}: bytecode has unlinked library placeholders")
    art["bytecode"] = code
    if "abi" not in art:
        raise DeployError(f"{where}: no 'abi' in the artifact")
    return art


@lru_cache(maxsize=64)
def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_artifact(package: str, name: str) -> dict[str, Any]:
    """A build artifact of an npm package: node_modules/<package>/build/<name>.json.

    e.g. load_artifact("@uniswap/v2-periphery", "UniswapV2Router02"). Returns the
    artifact dict with "abi", "bytecode" (0x-prefixed) and "contractName".
    """
    path = npm_artifact_path(package, f"build/{name}.json", name)
    return _normalise(_read_json(path), name, path)


def npm_artifact_path(package: str, relpath: str, name: str) -> Path:
    """node_modules/<package>/<relpath>, or a DeployError saying what to install."""
    pkg_dir = node_modules_dir() / package
    path = pkg_dir / relpath
    if not path.is_file():
        if not pkg_dir.is_dir():
            raise DeployError(
                f"npm package {package} is not installed (no {pkg_dir}); "
                "run `npm ci` (or `make setup`) in the project root"
            )
        raise DeployError(f"no artifact {name} in {package} (looked for {path})")
    return path


def own_artifacts_dir() -> Path:
    return project_root() / "contracts" / "artifacts"


def load_own_artifact(name: str) -> dict[str, Any]:
    """One of the project's own compiled contracts: contracts/artifacts/<name>.json."""
    path = own_artifacts_dir() / f"{name}.json"
    if not path.is_file():
        raise DeployError(f"no artifact {path}; run `node contracts/compile.mjs` to build it")
    return _normalise(_read_json(path), name, path)


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Funding:
    """What the deployment gave a funded wallet in one transaction (journaled as a deposit by
    `fixbridge run`): `token` is None for ETH; `units` in the token's base units."""

    symbol: str
    token: str | None
    decimals: int
    wallet: str
    units: int
    tx_hash: str = ""
    block_number: int = 0


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    rpc_url: str
    weth: str
    usdc: str
    wbtc: str
    factory: str
    router: str
    #: instrument key ("WETH/USDC", "WBTC/USDC", "WBTC/WETH") -> pair address
    pairs: dict[str, str] = field(default_factory=dict)
    #: token symbol -> decimals
    decimals: dict[str, int] = field(default_factory=lambda: dict(TOKEN_DECIMALS))
    deployer: str = DEPLOYER_ADDRESS
    funded: tuple[str, ...] = ()
    #: chain height when the deployment was done
    block_number: int = 0
    #: Uniswap V3 (factory, SwapRouter, position manager, QuoterV2, pools), None when not deployed
    v3: V3Deployment | None = None
    #: the OptionsMarket, its series and their V2 pools (fixbridge.devnet.options), None when not deployed
    options: OptionsDeployment | None = None
    #: every token and ETH transfer to a funded wallet, with its transaction
    fundings: tuple[Funding, ...] = ()

    @property
    def tokens(self) -> dict[str, str]:
        """symbol -> address"""
        return {"WETH": self.weth, "USDC": self.usdc, "WBTC": self.wbtc}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["funded"] = list(self.funded)
        d["tokens"] = self.tokens
        return d


# ---------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _venues_of(dep: Deployment, instrument: str) -> list[str]:
    """The venues that hold a pool of the instrument (V2 holds every LIQUIDITY pair)."""
    return ["uniswap_v2"] + (["uniswap_v3"] if dep.v3 is not None and instrument in dep.v3.pools else [])


# A transaction the chain has not mined (README "Execution, the chain, and crash safety").
REPLACEMENT_POLICY_LINES = (
    "replace_after_blocks = 3          # unmined this many blocks: rebroadcast, or re-priced",
    "fee_bump_percent = 20             # each re-price bids this much more (nodes refuse < 10)",
    'max_fee_per_gas_gwei = "500"      # re-pricing never bids more than this',
)


def render_spec(dep: Deployment) -> str:
    """The venue/instrument spec (specs/devnet.toml) for a deployment."""
    lines = [
        _SPEC_HEADER,
        "[chains.devnet]",
        f"chain_id = {dep.chain_id}",
        f"rpc_url = {_toml_str(dep.rpc_url)}",
        "devnet = true",
        *REPLACEMENT_POLICY_LINES,
        "",
    ]
    for symbol, address in dep.tokens.items():
        lines += [
            f"[tokens.{symbol}]",
            'chain = "devnet"',
            f"address = {_toml_str(to_checksum_address(address))}",
            f"decimals = {dep.decimals[symbol]}",
            "",
        ]
    if dep.options is not None:
        from fixbridge.devnet.options import spec_token_lines

        lines += spec_token_lines(dep)  # the option tokens
    lines += [
        "[venues.uniswap_v2]",
        'kind = "uniswap_v2"',
        'chain = "devnet"',
        f"router = {_toml_str(to_checksum_address(dep.router))}",
        f"factory = {_toml_str(to_checksum_address(dep.factory))}",
        "",
    ]
    if dep.v3 is not None:
        lines += [
            "[venues.uniswap_v3]",
            'kind = "uniswap_v3"',
            'chain = "devnet"',
            f"router = {_toml_str(to_checksum_address(dep.v3.router))}",
            f"factory = {_toml_str(to_checksum_address(dep.v3.factory))}",
            f"quoter = {_toml_str(to_checksum_address(dep.v3.quoter))}",
            f"fee_tiers = [{', '.join(str(f) for f in dep.v3.fee_tiers)}]",
            "",
        ]
    for key in LIQUIDITY:
        base, quote = key.split("/")
        lines += [
            f"[instruments.{_toml_str(key)}]",
            f"base = {_toml_str(base)}",
            f"quote = {_toml_str(quote)}",
            "venues = [" + ", ".join(_toml_str(v) for v in _venues_of(dep, key)) + "]",
            "",
        ]
    if dep.options is not None:
        from fixbridge.devnet.options import spec_instrument_lines

        lines += spec_instrument_lines(dep)  # the market (as a comment) and the option series
    return "\n".join(lines[:-1]) + "\n"


def write_spec(dep: Deployment, path: Path) -> None:
    """Write `render_spec(dep)` to path (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_spec(dep), encoding="utf-8")


# ---------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------


@dataclass
class _Tx:
    label: str
    to: str | None
    data: str
    value: int = 0
    funds: Funding | None = None  # a funded wallet's transfer: kept, with its hash, in _Sender.fundings


class _Sender:
    """Signs and sends the deployer's transactions with nonces it counts itself.

    A batch is estimated against the current state, sent back to back with
    consecutive nonces, then awaited; every receipt must have status 1.
    Batching means a chain with a block time takes a few blocks, not one per
    transaction.
    """

    def __init__(self, w3: Web3, key: str, chain_id: int, timeout: float) -> None:
        self.w3 = w3
        self.account = Account.from_key(key)
        self.address = self.account.address
        self.chain_id = chain_id
        self.timeout = timeout
        self.nonce = w3.eth.get_transaction_count(self.address, "pending")
        self.sent = 0
        self.fundings: list[Funding] = []

    def batch(self, txs: Sequence[_Tx]) -> list[dict[str, Any]]:
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        max_fee = 2 * base_fee + _TIP_WEI
        hashes = []
        for tx in txs:
            call: dict[str, Any] = {"from": self.address, "data": tx.data, "value": tx.value}
            if tx.to is not None:
                call["to"] = tx.to
            try:
                gas = self.w3.eth.estimate_gas(call)
            except (Web3Exception, ValueError) as exc:
                raise DeployError(f"{tx.label}: would revert ({exc})") from exc
            signed = self.account.sign_transaction(
                {
                    **call,
                    "gas": gas + gas // 5,
                    "nonce": self.nonce,
                    "chainId": self.chain_id,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": _TIP_WEI,
                    "type": 2,
                }
            )
            hashes.append(self.w3.eth.send_raw_transaction(signed.raw_transaction))
            self.nonce += 1
        receipts = []
        for tx, h in zip(txs, hashes, strict=True):
            receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=self.timeout, poll_latency=0.05)
            if receipt["status"] != 1:
                raise DeployError(f"{tx.label}: transaction {h.to_0x_hex()} reverted")
            receipts.append(receipt)
            if tx.funds is not None:
                self.fundings.append(replace(tx.funds, tx_hash=h.to_0x_hex(), block_number=receipt["blockNumber"]))
        self.sent += len(txs)
        return receipts


def _constructor_data(artifact: dict[str, Any], *args: Any) -> str:
    ctor = next((e for e in artifact["abi"] if e.get("type") == "constructor"), None)
    types = get_abi_input_types(ctor) if ctor else []
    if len(types) != len(args):
        raise DeployError(f"{artifact['contractName']}: constructor takes {len(types)} arguments, got {len(args)}")
    return artifact["bytecode"] + (abi_encode(types, list(args)).hex() if types else "")


def deploy_devnet(
    rpc_url: str,
    *,
    fund: Iterable[str] | None = None,
    timeout: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> Deployment:
    """Deploy WETH9, Uniswap V2 (factory, Router02), USDC and WBTC TestTokens,
    three pools with liquidity, and fund the wallets in `fund` (default: anvil
    account #1) with 100 WETH, 1,000,000 USDC and 10 WBTC each.

    The chain must be fresh (deployer nonce 0) — that is what makes the
    addresses fixed. Raises DeployError on anything unexpected.
    """
    say = log or (lambda _msg: None)
    started = time.monotonic()
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # connection refused, not JSON-RPC, ...
        raise DeployError(f"cannot reach an Ethereum node at {rpc_url}: {exc}") from exc

    wallets = [DEFAULT_FUNDED] if fund is None else list(fund)
    funded = tuple(dict.fromkeys(to_checksum_address(a) for a in wallets))  # dedupe, keep order

    sender = _Sender(w3, DEPLOYER_KEY, chain_id, timeout)
    if sender.nonce != 0:
        raise DeployError(
            f"deployer {DEPLOYER_ADDRESS} already has nonce {sender.nonce} on {rpc_url}: "
            "deploy_devnet needs a fresh chain (the fixed addresses come from nonces 0..4); "
            "restart anvil"
        )

    # What the deployer puts into the pools, per token (+ the wallets' WETH).
    pool_total = dict.fromkeys(TOKEN_DECIMALS, 0)
    for key, (amount_base, amount_quote) in LIQUIDITY.items():
        base, quote = key.split("/")
        pool_total[base] += amount_base
        pool_total[quote] += amount_quote
    weth_needed = pool_total["WETH"] + FUNDING["WETH"] * len(funded)
    usdc_needed = pool_total["USDC"]
    wbtc_needed = pool_total["WBTC"]
    gas_wallets = [a for a in funded if w3.eth.get_balance(a) == 0]
    eth_needed = weth_needed + GAS_FUNDING_WEI * len(gas_wallets)
    have = w3.eth.get_balance(DEPLOYER_ADDRESS)
    if have < eth_needed + _E18:  # 1 ETH headroom for gas
        raise DeployError(
            f"deployer {DEPLOYER_ADDRESS} has {have} wei, needs about {eth_needed + _E18} "
            f"to fund {len(funded)} wallet(s); start anvil with a larger --balance"
        )

    weth_art = load_artifact("@uniswap/v2-periphery", "WETH9")
    factory_art = load_artifact("@uniswap/v2-core", "UniswapV2Factory")
    router_art = load_artifact("@uniswap/v2-periphery", "UniswapV2Router02")
    token_art = load_own_artifact("TestToken")

    addr = dict(CANONICAL)
    weth = w3.eth.contract(address=addr["weth"], abi=weth_art["abi"])
    factory = w3.eth.contract(address=addr["factory"], abi=factory_art["abi"])
    router = w3.eth.contract(address=addr["router"], abi=router_art["abi"])
    usdc = w3.eth.contract(address=addr["usdc"], abi=token_art["abi"])
    wbtc = w3.eth.contract(address=addr["wbtc"], abi=token_art["abi"])
    token = {"WETH": weth, "USDC": usdc, "WBTC": wbtc}

    # 1. contracts, in _ORDER (nonces 0..4)
    receipts = sender.batch(
        [
            _Tx("deploy WETH9", None, weth_art["bytecode"]),
            _Tx("deploy UniswapV2Factory", None, _constructor_data(factory_art, DEPLOYER_ADDRESS)),
            _Tx("deploy UniswapV2Router02", None, _constructor_data(router_art, addr["factory"], addr["weth"])),
            _Tx("deploy USDC", None, _constructor_data(token_art, TOKEN_NAMES["USDC"], "USDC", 6)),
            _Tx("deploy WBTC", None, _constructor_data(token_art, TOKEN_NAMES["WBTC"], "WBTC", 8)),
        ]
    )
    for name, receipt in zip(_ORDER, receipts, strict=True):
        if receipt["contractAddress"] != addr[name]:
            raise DeployError(f"{name} landed at {receipt['contractAddress']}, expected {addr[name]}")
    say(f"deployed WETH9, UniswapV2Factory, UniswapV2Router02, USDC, WBTC (block {receipts[-1]['blockNumber']})")

    # 2. the deployer's tokens (WETH by depositing ETH, for the pools and the
    #    funded wallets) and the router's allowances
    sender.batch(
        [
            _Tx("WETH.deposit", addr["weth"], weth.encode_abi("deposit"), weth_needed),
            _Tx("USDC.mint", addr["usdc"], usdc.encode_abi("mint", [DEPLOYER_ADDRESS, usdc_needed])),
            _Tx("WBTC.mint", addr["wbtc"], wbtc.encode_abi("mint", [DEPLOYER_ADDRESS, wbtc_needed])),
        ]
        + [
            _Tx(f"{sym}.approve(router)", addr[sym.lower()], token[sym].encode_abi("approve", [addr["router"], _MAX_UINT]))
            for sym in ("WETH", "USDC", "WBTC")
        ]
    )

    # 3. the pools, through the router (which creates each pair)
    sender.batch(
        [
            _Tx(
                f"addLiquidity {key}",
                addr["router"],
                router.encode_abi(
                    "addLiquidity",
                    [
                        addr[key.split("/")[0].lower()],
                        addr[key.split("/")[1].lower()],
                        amount_base,
                        amount_quote,
                        amount_base,
                        amount_quote,
                        DEPLOYER_ADDRESS,
                        _DEADLINE,
                    ],
                ),
            )
            for key, (amount_base, amount_quote) in LIQUIDITY.items()
        ]
    )
    pairs: dict[str, str] = {}
    for key in LIQUIDITY:
        base, quote = key.split("/")
        pair = factory.functions.getPair(addr[base.lower()], addr[quote.lower()]).call()
        if int(pair, 16) == 0:
            raise DeployError(f"factory has no {key} pair after addLiquidity")
        pairs[key] = to_checksum_address(pair)
    say("pools: " + ", ".join(f"{k} {v}" for k, v in pairs.items()))

    # The router computes pair addresses from a hard-coded init code hash; a
    # quote through it proves that hash matches the factory's pair bytecode.
    try:
        amounts = router.functions.getAmountsOut(_E18, [addr["weth"], addr["usdc"]]).call()
    except Exception as exc:
        raise DeployError(f"router.getAmountsOut(1 WETH -> USDC) failed: {exc} (init code hash mismatch?)") from exc
    if not (2_900 * _E6 <= amounts[-1] <= 3_000 * _E6):
        raise DeployError(f"router quotes 1 WETH = {amounts[-1]} USDC units, expected about 2988 USDC")

    # 4. the funded wallets
    fund_txs: list[_Tx] = []
    def funds(sym: str, wallet: str) -> Funding:
        units = GAS_FUNDING_WEI if sym == "ETH" else FUNDING[sym]
        return Funding(sym, None if sym == "ETH" else addr[sym.lower()], 18 if sym == "ETH" else TOKEN_DECIMALS[sym],
                       wallet, units)

    for wallet in funded:
        if wallet in gas_wallets:
            fund_txs.append(_Tx(f"ETH -> {wallet}", wallet, "0x", GAS_FUNDING_WEI, funds("ETH", wallet)))
        fund_txs += [
            _Tx(f"WETH -> {wallet}", addr["weth"], weth.encode_abi("transfer", [wallet, FUNDING["WETH"]]),
                funds=funds("WETH", wallet)),
            _Tx(f"USDC.mint {wallet}", addr["usdc"], usdc.encode_abi("mint", [wallet, FUNDING["USDC"]]),
                funds=funds("USDC", wallet)),
            _Tx(f"WBTC.mint {wallet}", addr["wbtc"], wbtc.encode_abi("mint", [wallet, FUNDING["WBTC"]]),
                funds=funds("WBTC", wallet)),
        ]
    if fund_txs:
        sender.batch(fund_txs)
        say(f"funded {', '.join(funded)} with 100 WETH, 1,000,000 USDC, 10 WBTC each")

    # 5. Uniswap V3, from its own deployer (fixed addresses whatever was funded above)
    from fixbridge.devnet.uniswap_v3 import deploy_uniswap_v3

    v3 = deploy_uniswap_v3(w3, sender, {"WETH": addr["weth"], "USDC": addr["usdc"], "WBTC": addr["wbtc"]}, log=say)

    # 6. options: the OptionsMarket from its own deployer, series on WETH/USDC, a V2 pool of each
    from fixbridge.devnet.options import deploy_options

    options = deploy_options(
        w3, sender, {"WETH": addr["weth"], "USDC": addr["usdc"]},
        router=addr["router"], factory=addr["factory"], funded=funded, log=say,
    )  # fmt: skip

    block = int(w3.eth.block_number)
    say(f"devnet deployed: {sender.sent} transactions in {time.monotonic() - started:.2f}s")
    return Deployment(
        chain_id=chain_id,
        rpc_url=rpc_url,
        weth=addr["weth"],
        usdc=addr["usdc"],
        wbtc=addr["wbtc"],
        factory=addr["factory"],
        router=addr["router"],
        pairs=pairs,
        decimals=dict(TOKEN_DECIMALS),
        deployer=DEPLOYER_ADDRESS,
        funded=funded,
        block_number=block,
        v3=v3,
        options=options,
        fundings=tuple(sender.fundings),
    )
