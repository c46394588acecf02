"""sessions/counterparties.toml: who may connect, which wallets each session trades from,
and the per-session execution policy. The QuickFIX settings live beside it in acceptor.cfg."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from fixbridge.config.errors import ConfigError, read_toml, validate
from fixbridge.config.spec import Spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WalletConfig(_Strict):
    name: str = ""
    chain: str
    # Exactly one of these. A raw key is accepted only on a chain marked devnet.
    private_key: str | None = Field(default=None, repr=False)
    private_key_env: str | None = None


class Counterparty(_Strict):
    comp_id: str = ""
    wallets: list[str] = Field(min_length=1)  # Account (1) chooses among them; the first is the default
    max_slippage_bps: int = Field(default=50, ge=0, le=5000)
    approval_policy: Literal["exact", "standing"] = "standing"
    deadline_seconds: int = Field(default=120, gt=0, le=86_400)


class SessionsConfig(_Strict):
    wallets: dict[str, WalletConfig]
    sessions: dict[str, Counterparty]
    path: str = ""
    acceptor_cfg: str = ""


def load_sessions(path: Path | str, spec: Spec) -> SessionsConfig:
    """Load counterparties.toml (and check acceptor.cfg exists beside it)."""
    path = Path(path)
    raw = read_toml(path)
    for section, key in (("wallets", "name"), ("sessions", "comp_id")):
        entries = raw.get(section)
        if not isinstance(entries, dict) or not entries:
            raise ConfigError(path, section, "expected a non-empty table")
        for name, body in entries.items():
            if not isinstance(body, dict):
                raise ConfigError(path, f"{section}.{name}", "expected a table")
            body.setdefault(key, name)
    cfg: SessionsConfig = validate(SessionsConfig, raw, path)
    for name, w in cfg.wallets.items():
        where = f"wallets.{name}"
        if w.chain not in spec.chains:
            raise ConfigError(path, f"{where}.chain", f"unknown chain {w.chain!r}; expected one of {sorted(spec.chains)}")
        if (w.private_key is None) == (w.private_key_env is None):
            raise ConfigError(path, where, "set exactly one of private_key (devnet only) or private_key_env")
        if w.private_key is not None and not spec.chains[w.chain].devnet:
            raise ConfigError(path, f"{where}.private_key", "a raw key is accepted only on a devnet chain; use private_key_env")
    for comp_id, cp in cfg.sessions.items():
        for w in cp.wallets:
            if w not in cfg.wallets:
                raise ConfigError(path, f"sessions.{comp_id}.wallets", f"unknown wallet {w!r}; expected one of {sorted(cfg.wallets)}")
    acceptor = path.parent / "acceptor.cfg"
    return cfg.model_copy(update={"path": str(path), "acceptor_cfg": str(acceptor)})


def wallet_key(cfg: SessionsConfig, name: str) -> str:
    """The wallet's private key, resolved at start; never logged or journaled."""
    w = cfg.wallets[name]
    key = w.private_key if w.private_key is not None else os.environ.get(w.private_key_env or "")
    where = f"wallets.{name}." + ("private_key" if w.private_key is not None else "private_key_env")
    if not key:
        raise ConfigError(cfg.path, where, f"environment variable {w.private_key_env} is not set")
    try:
        Account.from_key(key)
    except Exception:
        raise ConfigError(cfg.path, where, "not a valid secp256k1 private key (64 hex digits)") from None
    return key
