"""specs/<chain>.toml: chains, tokens, venues and instruments the bridge trades."""
from __future__ import annotations

import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fixbridge.config.errors import ConfigError, read_toml, validate
from fixbridge.orders.units import PrecisionError, to_units_exact

VENUE_KINDS = ("uniswap_v2", "uniswap_v3")
# `${NAME}` in a chain's rpc_url is replaced by that environment variable: a node URL often
# carries an API key, which belongs in the environment, not in a committed file.
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _address(v: str) -> str:
    if not isinstance(v, str) or not is_address(v):
        raise ValueError("expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(v)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Chain(_Strict):
    name: str = ""
    chain_id: int = Field(gt=0)
    rpc_url: str
    devnet: bool = False  # raw private keys are accepted only on a devnet
    # What the bridge does with a transaction the chain has not mined (README "Execution"): after
    # `replace_after_blocks` blocks it is rebroadcast if the node lost it, else re-priced (same
    # nonce, same call) with fees `fee_bump_percent` higher; nodes refuse a replacement under 10 %.
    # A re-priced bid never exceeds `max_fee_per_gas_gwei` (none: no ceiling); at the ceiling the
    # transaction waits for the base fee to come back down.
    replace_after_blocks: int = Field(default=3, ge=1, le=1000)
    fee_bump_percent: int = Field(default=20, ge=10, le=1000)
    max_fee_per_gas_gwei: Decimal | None = Field(default=None, gt=0)
    # How often the chain makes a block: /readyz calls it stale once its latest block is 5 block
    # times old (30 s at least). None (the devnet's automine makes blocks on demand): no such check.
    block_time_seconds: Decimal | None = Field(default=None, gt=0)

    @field_validator("max_fee_per_gas_gwei")
    @classmethod
    def _whole_wei(cls, v: Decimal | None) -> Decimal | None:
        if v is not None:
            try:
                to_units_exact(v, 9)
            except PrecisionError:
                raise ValueError("at most 9 decimal places (a whole number of wei)") from None
        return v

    @property
    def max_fee_per_gas_wei(self) -> int | None:
        """The ceiling in wei (exact: the validator allows no fraction of a wei)."""
        return None if self.max_fee_per_gas_gwei is None else to_units_exact(self.max_fee_per_gas_gwei, 9)


class Token(_Strict):
    symbol: str = ""
    chain: str
    address: str
    decimals: int = Field(ge=0, le=77)
    _v = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class Venue(_Strict):
    name: str = ""
    kind: Literal["uniswap_v2", "uniswap_v3"]
    chain: str
    router: str                      # V2: Router02; V3: SwapRouter
    factory: str
    quoter: str | None = None        # V3: QuoterV2
    fee_tiers: list[int] = []        # V3: the pools' fees in hundredths of a bip (500 = 0.05%)
    _v = field_validator("router", "factory")(classmethod(lambda cls, v: _address(v)))
    _q = field_validator("quoter")(classmethod(lambda cls, v: None if v is None else _address(v)))


class Instrument(_Strict):
    symbol: str = ""
    base: str
    quote: str
    venues: list[str] = Field(min_length=1)
    # Listed options (security_type "OPT"): the series the base token is an option on.
    security_type: Literal["SPOT", "OPT"] = "SPOT"
    underlying: str | None = None              # token symbol, e.g. "WETH"
    strike: Decimal | None = None              # in quote per underlying
    expiry: date | None = None                 # MaturityDate (541)
    put_or_call: Literal["P", "C"] | None = None
    contract_multiplier: Decimal = Decimal(1)  # underlying per option token
    market: str | None = None                  # the options market (options_markets key) that writes it
    series_id: int | None = None               # the series in that market
    # Market data's depth ladder: the sizes, in base tokens, each level quotes (none: 0.1, 1, 10).
    depth_sizes: list[Decimal] = []


class OptionsMarket(_Strict):
    """The project's options market contract: writes (mints against collateral) and settles series."""
    name: str = ""
    chain: str
    address: str
    _v = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class Spec(_Strict):
    chains: dict[str, Chain]
    tokens: dict[str, Token]
    venues: dict[str, Venue]
    instruments: dict[str, Instrument]
    options_markets: dict[str, OptionsMarket] = {}
    path: str = ""

    def chain_of(self, instrument: Instrument) -> Chain:
        return self.chains[self.tokens[instrument.base].chain]

    def contracts_on(self, chain: str) -> dict[str, str]:
        """Every contract the spec names on `chain`, by its config key ('venues.uniswap_v2.router')."""
        out = {f"tokens.{s}": t.address for s, t in self.tokens.items() if t.chain == chain}
        for n, v in self.venues.items():
            if v.chain == chain:
                out |= {f"venues.{n}.router": v.router, f"venues.{n}.factory": v.factory}
                if v.quoter:
                    out[f"venues.{n}.quoter"] = v.quoter
        return out | {f"options_markets.{n}": m.address for n, m in self.options_markets.items() if m.chain == chain}


def load_spec(path: Path | str | list[Path] | list[str]) -> Spec:
    """One spec file, or several (one per chain) merged: a name defined twice is an error."""
    if isinstance(path, (list, tuple)):
        paths = [Path(p) for p in path]
        if len(paths) > 1:
            return _load_merged(paths)
        path = paths[0]
    path = Path(path)
    raw = read_toml(path)
    # Give each entry its own name so the rest of the bridge never needs the dict key.
    for section in ("chains", "tokens", "venues", "instruments"):
        entries = raw.get(section)
        if not isinstance(entries, dict) or not entries:
            raise ConfigError(path, section, "expected a non-empty table")
        for name, body in entries.items():
            if not isinstance(body, dict):
                raise ConfigError(path, f"{section}.{name}", "expected a table")
            body.setdefault({"chains": "name", "venues": "name", "tokens": "symbol",
                             "instruments": "symbol"}[section], name)
    for name, body in (raw.get("options_markets") or {}).items():
        if isinstance(body, dict):
            body.setdefault("name", name)
    for name, body in raw["chains"].items():
        if isinstance(body.get("rpc_url"), str):
            body["rpc_url"] = expand_env(body["rpc_url"], path, f"chains.{name}.rpc_url")
    spec: Spec = validate(Spec, raw, path)
    for name, tok in spec.tokens.items():
        if tok.chain not in spec.chains:
            raise ConfigError(path, f"tokens.{name}.chain", f"unknown chain {tok.chain!r}; expected one of {sorted(spec.chains)}")
    for name, v in spec.venues.items():
        if v.chain not in spec.chains:
            raise ConfigError(path, f"venues.{name}.chain", f"unknown chain {v.chain!r}; expected one of {sorted(spec.chains)}")
        if v.kind == "uniswap_v3" and (v.quoter is None or not v.fee_tiers):
            raise ConfigError(path, f"venues.{name}", "a uniswap_v3 venue needs quoter and fee_tiers")
    for sym, ins in spec.instruments.items():
        for leg in ("base", "quote"):
            tok = getattr(ins, leg)
            if tok not in spec.tokens:
                raise ConfigError(path, f"instruments.{sym}.{leg}", f"unknown token {tok!r}; expected one of {sorted(spec.tokens)}")
        if spec.tokens[ins.base].chain != spec.tokens[ins.quote].chain:
            raise ConfigError(path, f"instruments.{sym}", "base and quote tokens are on different chains")
        for v in ins.venues:
            if v not in spec.venues:
                raise ConfigError(path, f"instruments.{sym}.venues", f"unknown venue {v!r}; expected one of {sorted(spec.venues)}")
            if spec.venues[v].chain != spec.tokens[ins.base].chain:
                raise ConfigError(path, f"instruments.{sym}.venues", f"venue {v!r} is on another chain than the instrument")
        for size in ins.depth_sizes:
            try:
                if size <= 0 or to_units_exact(size, spec.tokens[ins.base].decimals) <= 0:
                    raise PrecisionError
            except PrecisionError:
                raise ConfigError(path, f"instruments.{sym}.depth_sizes", f"{size}: each size must be positive and a "
                                  f"whole number of {ins.base} base units ({spec.tokens[ins.base].decimals} decimals)") from None
        if ins.security_type == "OPT":
            for key in ("underlying", "strike", "expiry", "put_or_call"):
                if getattr(ins, key) is None:
                    raise ConfigError(path, f"instruments.{sym}.{key}", "required for an option (security_type = \"OPT\")")
            if ins.underlying not in spec.tokens:
                raise ConfigError(path, f"instruments.{sym}.underlying", f"unknown token {ins.underlying!r}")
            if ins.market is not None and ins.market not in spec.options_markets:
                raise ConfigError(path, f"instruments.{sym}.market", f"unknown options market {ins.market!r}; "
                                  f"expected one of {sorted(spec.options_markets)}")
    return spec.model_copy(update={"path": str(path)})


def expand_env(value: str, path: Path | str, key: str) -> str:
    """`value` with every `${NAME}` replaced by the environment variable NAME; an unset or empty
    variable is a ConfigError naming it (the value itself is never echoed: it may hold a key)."""
    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if not _ENV_NAME.fullmatch(var):
            raise ConfigError(path, key, f"${{{var}}} is not an environment variable reference; "
                              "expected ${NAME} with NAME letters, digits and _")
        got = os.environ.get(var)
        if not got:
            raise ConfigError(path, key, f"environment variable {var} is not set (export {var}=<node URL>)")
        return got
    return _ENV_REF.sub(sub, value)


def _load_merged(paths: list[Path]) -> Spec:
    merged: dict = {"chains": {}, "tokens": {}, "venues": {}, "instruments": {}, "options_markets": {}}
    for p in paths:
        raw = read_toml(p)
        for section in merged:
            for name, body in (raw.get(section) or {}).items():
                if name in merged[section]:
                    raise ConfigError(p, f"{section}.{name}", "already defined in another spec file; names must be unique")
                merged[section][name] = body
        for key in raw:
            if key not in merged:
                raise ConfigError(p, key, "unknown section (expected chains, tokens, venues, instruments)")
    import tempfile

    # Validate the union exactly as one file, naming the files it came from on error.
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(_to_toml(merged))
    try:
        spec = load_spec(f.name)
    except ConfigError as e:
        raise ConfigError(" + ".join(str(p) for p in paths), e.key, e.problem) from None
    finally:
        Path(f.name).unlink(missing_ok=True)
    return spec.model_copy(update={"path": " + ".join(str(p) for p in paths)})


def _to_toml(d: dict) -> str:
    """The merged spec back as TOML (our sections hold only strings, numbers, bools, dates, lists)."""
    import json

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if hasattr(v, "isoformat"):
            return v.isoformat()
        return json.dumps(str(v))
    out = []
    for section, entries in d.items():
        for name, body in entries.items():
            out.append(f"[{section}.{json.dumps(name)}]")
            out += [f"{k} = {val(v)}" for k, v in body.items() if k not in ("name", "symbol")]
            out.append("")
    return "\n".join(out)
