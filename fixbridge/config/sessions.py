"""sessions/counterparties.toml: who may connect, which wallets each session trades from,
and the per-session execution policy. The QuickFIX settings live beside it in acceptor.cfg."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eth_account import Account
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from fixbridge.config.errors import ConfigError, read_toml, validate
from fixbridge.config.spec import Spec
from fixbridge.orders.resting import DayClose


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _exact(v: object) -> object:
    """Money and limits are exact: read_toml parses TOML numbers as Decimal; a float from code is refused."""
    if isinstance(v, float):
        raise ValueError(f"write {v!r} as a string (\"{v!r}\") or an integer: floats are not exact")
    return v


ExactDecimal = Annotated[Decimal, BeforeValidator(_exact), Field(gt=0, allow_inf_nan=False)]


class WalletConfig(_Strict):
    name: str = ""
    chain: str
    # Exactly one of these. A raw key is accepted only on a chain marked devnet.
    private_key: str | None = Field(default=None, repr=False)
    private_key_env: str | None = None
    # An encrypted Ethereum keystore (path relative to counterparties.toml) and where its password is.
    keystore: str | None = None
    password_env: str | None = None
    password_file: str | None = None


class Counterparty(_Strict):
    comp_id: str = ""
    wallets: list[str] = Field(default_factory=list)  # Account (1) chooses among them; the first is the default
    # A drop copy session: gets a copy (797=Y) of every ExecutionReport of these sessions (CompIDs)
    # and may send nothing (BusinessMessageReject). It has no wallets.
    drop_copy_for: list[str] = Field(default_factory=list)
    max_slippage_bps: int = Field(default=50, ge=0, le=5000)
    approval_policy: Literal["exact", "standing"] = "standing"
    deadline_seconds: int = Field(default=120, gt=0, le=86_400)
    confirmations: int = Field(default=0, ge=0, le=64)  # 0: report fills at inclusion; N: after N blocks
    may_write_options: bool = False  # a Sell of more option tokens than held writes (mints) the rest
    # On a Logout or a lost connection, cancel the session's working orders unless it logs on again
    # within the grace period (fixbridge/fix/cancel_on_disconnect.py); the reports wait in the FIX store.
    cancel_on_disconnect: bool = False
    cancel_on_disconnect_grace_seconds: Annotated[Decimal, BeforeValidator(_exact), Field(ge=0, le=3600)] = Decimal(5)
    # First report PendingNew (150=A/39=A) as soon as the order is journaled, before routing and the
    # funds check; New or Rejected follow. Off: the first report is New or Rejected.
    ack_pending_new: bool = False
    # Pre-trade risk (fixbridge/orders/risk.py); unset = no limit. Notionals are per quote token,
    # e.g. max_order_notional = { USDC = "50000", WETH = "20" }; a quote token not listed is refused.
    max_order_notional: dict[str, ExactDecimal] | None = None
    max_daily_notional: dict[str, ExactDecimal] | None = None  # since 00:00 UTC, from the journal
    max_open_orders: int | None = Field(default=None, ge=0)
    allowed_instruments: list[str] | None = None
    allowed_venues: list[str] | None = None
    price_band_bps: int | None = Field(default=None, ge=0, le=1_000_000)  # limit price vs pool price
    max_gas_price_gwei: ExactDecimal | None = None
    # FIX edge: message throttle and Logon authentication (fixbridge/fix/guard.py).
    max_messages_per_second: ExactDecimal | None = None
    max_messages_burst: int | None = Field(default=None, ge=1)  # default: the per-second rate, at least 1
    username: str | None = None                                 # Username (553) the Logon must carry, if set
    password_hash: str | None = Field(default=None, repr=False)  # scrypt$...; `fixbridge hash-password`
    max_logon_failures: int = Field(default=5, ge=1)
    logon_failure_window_seconds: int = Field(default=300, gt=0)
    lockout_seconds: int = Field(default=900, ge=0)
    # The session's trading day (orders/resting.py): a Day order expires at `day_close` (HH:MM) in
    # `time_zone` (an IANA name), as does a GTD order given only an ExpireDate (432).
    time_zone: str = "UTC"
    day_close: str = "00:00"

    def trading_day(self) -> DayClose:
        return DayClose(self.time_zone, time.fromisoformat(self.day_close))


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
        if sum(x is not None for x in (w.private_key, w.private_key_env, w.keystore)) != 1:
            raise ConfigError(path, where, "set exactly one of private_key (devnet only), private_key_env or keystore")
        if w.private_key is not None and not spec.chains[w.chain].devnet:
            raise ConfigError(path, f"{where}.private_key", "a raw key is accepted only on a devnet chain; use private_key_env or keystore")
        if w.keystore is None and (w.password_env is not None or w.password_file is not None):
            raise ConfigError(path, where, "password_env / password_file go with keystore")
        if w.keystore is not None:
            if (w.password_env is None) == (w.password_file is None):
                raise ConfigError(path, where, "a keystore needs exactly one of password_env or password_file")
            ks = (path.parent / w.keystore).resolve()
            if not ks.is_file():
                raise ConfigError(path, f"{where}.keystore", f"file {ks} not found")
            pw = None if w.password_file is None else str((path.parent / w.password_file).resolve())
            cfg.wallets[name] = w.model_copy(update={"keystore": str(ks), "password_file": pw})
    for comp_id, cp in cfg.sessions.items():
        _check_drop_copy(path, comp_id, cp, cfg)
        for w in cp.wallets:
            if w not in cfg.wallets:
                raise ConfigError(path, f"sessions.{comp_id}.wallets", f"unknown wallet {w!r}; expected one of {sorted(cfg.wallets)}")
        _check_limits(path, f"sessions.{comp_id}", cp, spec)
    acceptor = path.parent / "acceptor.cfg"
    return cfg.model_copy(update={"path": str(path), "acceptor_cfg": str(acceptor)})


def _check_drop_copy(path: Path, comp_id: str, cp: Counterparty, cfg: SessionsConfig) -> None:
    """A trading session needs a wallet; a drop copy session has none and copies trading sessions."""
    where = f"sessions.{comp_id}"
    if not cp.drop_copy_for:
        if not cp.wallets:
            raise ConfigError(path, f"{where}.wallets", "expected at least one wallet (or drop_copy_for, for a "
                              "drop copy session)")
        return
    if cp.wallets:
        raise ConfigError(path, f"{where}.wallets", "a drop copy session trades nothing: leave wallets out")
    trading = sorted(c for c, other in cfg.sessions.items() if not other.drop_copy_for)
    for src in cp.drop_copy_for:
        if src not in trading:
            raise ConfigError(path, f"{where}.drop_copy_for", f"unknown trading session {src!r}; expected one of {trading}")


def drop_copy_targets(cfg: SessionsConfig, comp_id: str) -> list[str]:
    """CompIDs of the drop copy sessions that get a copy of ``comp_id``'s ExecutionReports."""
    return [c for c, cp in cfg.sessions.items() if comp_id in cp.drop_copy_for]


def _check_limits(path: Path, where: str, cp: Counterparty, spec: Spec) -> None:
    """Risk limits and credentials must name things that exist; a typo must not disable a limit."""
    from fixbridge.security.passwords import BadHashFormat, parse_hash
    for key in ("max_order_notional", "max_daily_notional"):
        for token in getattr(cp, key) or {}:
            if token not in spec.tokens:
                raise ConfigError(path, f"{where}.{key}.{token}", f"unknown token; expected one of {sorted(spec.tokens)}")
    for key, known in (("allowed_instruments", spec.instruments), ("allowed_venues", spec.venues)):
        for name in getattr(cp, key) or []:
            if name not in known:
                raise ConfigError(path, f"{where}.{key}", f"unknown {key.split('_')[1][:-1]} {name!r}; expected one of {sorted(known)}")
    try:
        ZoneInfo(cp.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(path, f"{where}.time_zone", f"unknown time zone {cp.time_zone!r}; use an IANA name such as "
                          "\"UTC\" or \"America/New_York\"") from None
    parts = cp.day_close.split(":")
    if not (len(parts) in (2, 3) and all(p.isdigit() and len(p) == 2 for p in parts) and int(parts[0]) < 24
            and all(int(p) < 60 for p in parts[1:])):
        raise ConfigError(path, f"{where}.day_close", f"expected HH:MM or HH:MM:SS (24-hour), e.g. \"17:00\"; "
                          f"got {cp.day_close!r}")
    if cp.password_hash is not None:
        try:
            parse_hash(cp.password_hash)
        except BadHashFormat as e:
            raise ConfigError(path, f"{where}.password_hash", str(e)) from None


def wallet_key(cfg: SessionsConfig, name: str) -> str:
    """The wallet's private key, resolved at start; never logged or journaled."""
    w = cfg.wallets[name]
    if w.keystore is not None:
        from fixbridge.security.keystore import KeystoreError, decrypt_keystore, read_password
        try:
            password = read_password(env=w.password_env,
                                     file=Path(w.password_file) if w.password_file is not None else None)
            return decrypt_keystore(Path(w.keystore), password)
        except KeystoreError as e:
            raise ConfigError(cfg.path, f"wallets.{name}.keystore", str(e)) from None
    key = w.private_key if w.private_key is not None else os.environ.get(w.private_key_env or "")
    where = f"wallets.{name}." + ("private_key" if w.private_key is not None else "private_key_env")
    if not key:
        raise ConfigError(cfg.path, where, f"environment variable {w.private_key_env} is not set")
    try:
        Account.from_key(key)
    except Exception:
        raise ConfigError(cfg.path, where, "not a valid secp256k1 private key (64 hex digits)") from None
    return key
