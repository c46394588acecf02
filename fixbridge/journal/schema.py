"""The journal's SQL schema: SQLAlchemy 2 declarative models and the column types they need.

The same models run on SQLite (the default, zero setup) and PostgreSQL (production). Nothing here
stores a float: decimals, big integers and timestamps go through the TypeDecorators below, which
pick an exact column type per backend and hand back Python ``Decimal`` / ``int`` / aware UTC
``datetime`` on both.

This module is the source of truth for ``alembic revision --autogenerate``; the migration that
creates it is ``migrations/versions/0001_initial.py`` (tests assert the two agree).
"""
from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

# --------------------------------------------------------------------------------------------
# Exact value helpers
# --------------------------------------------------------------------------------------------


def canonical_decimal(value: Decimal | int | str) -> Decimal:
    """``value`` as a finite Decimal without trailing fractional zeros (``0.50`` -> ``0.5``).

    Never does arithmetic, so the context precision cannot round anything away.
    Floats (and bools) are refused: they are not exact.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"journal refuses {type(value).__name__} {value!r}: use Decimal")
    if isinstance(value, (int, str)):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"journal refuses non-finite decimal {value!r}")
    sign, digits, exp = value.as_tuple()
    if not any(digits):
        return Decimal(0)
    if isinstance(exp, int) and exp < 0:
        ds = list(digits)
        while exp < 0 and len(ds) > 1 and ds[-1] == 0:
            ds.pop()
            exp += 1
        value = Decimal((sign, tuple(ds), exp))
    return value


def decimal_text(value: Decimal) -> str:
    """Plain positional text for a canonical Decimal (no exponent): ``1E+2`` -> ``100``."""
    return format(canonical_decimal(value), "f")


def utc_text(value: datetime) -> str:
    """Fixed-width UTC text, sorts chronologically: ``2025-01-31 14:05:09.123456+00:00``."""
    # isoformat renders exactly this for a UTC datetime, several times faster than strftime
    return to_utc(value).isoformat(" ", "microseconds")


def to_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"journal refuses naive datetime {value!r}: pass a timezone-aware (UTC) datetime")
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


def _jsonable(obj: Any) -> Any:
    """Make ``obj`` JSON-serialisable without losing exactness (Decimal -> str, bytes -> 0x hex)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj.value if isinstance(obj, enum.Enum) else obj
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        raise TypeError(f"journal refuses float {obj!r} in JSON detail: use Decimal or str")
    if isinstance(obj, Decimal):
        return decimal_text(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "0x" + bytes(obj).hex()
    if isinstance(obj, datetime):
        return to_utc(obj).isoformat() if obj.tzinfo else obj.isoformat()
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    raise TypeError(f"cannot store {type(obj).__name__} {obj!r} as JSON")


def dump_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Column types
# --------------------------------------------------------------------------------------------


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC (unconstrained) on PostgreSQL, TEXT on SQLite; returns Decimal."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.NUMERIC())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        d = canonical_decimal(value)
        return d if dialect.name == "postgresql" else decimal_text(d)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):  # never expected; fail loudly rather than round silently
            raise TypeError(f"decimal column came back as float {value!r}")
        return canonical_decimal(value if isinstance(value, Decimal) else Decimal(str(value)))


class UnitsInt(TypeDecorator[int]):
    """An integer that may exceed 64 bits (uint256 base units, wei): NUMERIC(78,0) / TEXT; returns int."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.NUMERIC(78, 0))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected int base units, got {type(value).__name__} {value!r}")
        return Decimal(int(value)) if dialect.name == "postgresql" else str(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"integer column holds non-integer {value!r}")
            return int(value)
        return int(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC with microseconds: TIMESTAMPTZ on PostgreSQL, fixed-width ISO TEXT on SQLite.

    Binds refuse naive datetimes; results are always aware and in UTC.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return to_utc(value) if dialect.name == "postgresql" else utc_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class JSONText(TypeDecorator[Any]):
    """JSON stored as TEXT on both backends (cast to ``jsonb`` in PostgreSQL queries if needed).

    Decimals are written as strings and bytes as 0x-hex; floats are refused.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


# Surrogate keys: BIGINT (BIGSERIAL) on PostgreSQL; INTEGER on SQLite so the column is the rowid.
IdType = BigInteger().with_variant(Integer(), "sqlite")

# --------------------------------------------------------------------------------------------
# Closed vocabularies (enforced with CHECK constraints)
# --------------------------------------------------------------------------------------------

DIRECTIONS = ("in", "out")
EVENT_KINDS = ("transition", "quote", "risk", "approval", "tx", "note", "reorg")
TX_PURPOSES = ("swap", "approve", "cancel", "gap_fill", "redeem", "release")
TX_STATUSES = ("signed", "broadcast", "mined", "reverted", "dropped", "failed", "replaced")
APPROVAL_POLICIES = ("exact", "standing")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


class FixMessage(Base):
    """Every FIX message in and out, as it went over the wire (SOH shown as '|')."""

    __tablename__ = "fix_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    session_id: Mapped[str] = mapped_column(String, nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)
    msg_type: Mapped[str] = mapped_column(String, nullable=False)
    seq_num: Mapped[int | None] = mapped_column(BigInteger)
    cl_ord_id: Mapped[str | None] = mapped_column(String)
    order_id: Mapped[str | None] = mapped_column(String)
    exec_id: Mapped[str | None] = mapped_column(String)
    exec_type: Mapped[str | None] = mapped_column(String)
    ord_status: Mapped[str | None] = mapped_column(String)
    raw: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        Index("ix_fix_messages_ts", "ts"),
        Index("ix_fix_messages_session_id_ts", "session_id", "ts"),
        Index("ix_fix_messages_cl_ord_id", "cl_ord_id"),
        Index("ix_fix_messages_order_id", "order_id"),
    )


class Order(Base):
    """One row per accepted-or-rejected NewOrderSingle; the current state of the order."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String, nullable=False)
    session_id: Mapped[str] = mapped_column(String, nullable=False)
    cl_ord_id: Mapped[str] = mapped_column(String, nullable=False)
    account: Mapped[str | None] = mapped_column(String)
    symbol: Mapped[str] = mapped_column(String, nullable=False)
    side: Mapped[str] = mapped_column(String, nullable=False)
    ord_type: Mapped[str] = mapped_column(String, nullable=False)
    time_in_force: Mapped[str] = mapped_column(String, nullable=False)
    order_qty: Mapped[Decimal | None] = mapped_column(DecimalText)
    cash_order_qty: Mapped[Decimal | None] = mapped_column(DecimalText)
    price: Mapped[Decimal | None] = mapped_column(DecimalText)
    expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ex_destination: Mapped[str | None] = mapped_column(String)
    wallet: Mapped[str | None] = mapped_column(String)
    venue: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, nullable=False)
    cum_qty: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)
    leaves_qty: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)
    avg_px: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)
    text: Mapped[str | None] = mapped_column(Text)
    rej_reason: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Resting orders (migration 0007, orders/resting.py): waits in the bridge for the market; when its
    # life ends (NULL: GTC or not resting); a stop's trigger price and whether it has triggered.
    stop_px: Mapped[Decimal | None] = mapped_column(DecimalText)
    expire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resting: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    triggered: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("order_id", name="uq_orders_order_id"),
        UniqueConstraint("session_id", "cl_ord_id", name="uq_orders_session_id_cl_ord_id"),
        Index("ix_orders_status", "status"),
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_cl_ord_id", "cl_ord_id"),  # trail by ClOrdID alone (migration 0002)
        Index("ix_orders_resting", "resting"),
    )


class RetiredClOrdID(Base):
    """A ClOrdID an order was known by before an amend (G) gave it a new one (migration 0007): a
    NewOrderSingle reusing it is a duplicate, and a status request by it still finds the order."""

    __tablename__ = "order_cl_ord_ids"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String, nullable=False)
    cl_ord_id: Mapped[str] = mapped_column(String, nullable=False)
    order_id: Mapped[str] = mapped_column(
        String, ForeignKey("orders.order_id", name="fk_order_cl_ord_ids_order_id_orders"), nullable=False
    )
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("session_id", "cl_ord_id", name="uq_order_cl_ord_ids_session_id_cl_ord_id"),
        Index("ix_order_cl_ord_ids_order_id", "order_id"),
    )


class OrderEvent(Base):
    """Append-only trail of an order: each state transition, and each quote/risk/approval/tx/note."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String, ForeignKey("orders.order_id", name="fk_order_events_order_id_orders"), nullable=False
    )
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String)
    to_status: Mapped[str] = mapped_column(String, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[Any | None] = mapped_column(JSONText)

    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index("ix_order_events_order_id_id", "order_id", "id"),
        Index("ix_order_events_ts", "ts"),
    )


class Transaction(Base):
    """Every signed transaction, written BEFORE it is broadcast (write-ahead)."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    order_id: Mapped[str | None] = mapped_column(
        String, ForeignKey("orders.order_id", name="fk_transactions_order_id_orders")
    )
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wallet: Mapped[str] = mapped_column(String(42), nullable=False)
    nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    raw_tx: Mapped[str] = mapped_column(Text, nullable=False)
    gas_limit: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    max_fee_per_gas: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("purpose", TX_PURPOSES), name="purpose"),
        CheckConstraint(_in("status", TX_STATUSES), name="status"),
        UniqueConstraint("tx_hash", name="uq_transactions_tx_hash"),
        Index("ix_transactions_chain_id_wallet_nonce", "chain_id", "wallet", "nonce"),
        Index("ix_transactions_order_id", "order_id"),
        Index("ix_transactions_status", "status"),
    )


class Receipt(Base):
    """The receipt of a mined transaction (the latest one seen, if a reorg re-mined it)."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(
        String(66), ForeignKey("transactions.tx_hash", name="fk_receipts_tx_hash_transactions"), nullable=False
    )
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    gas_used: Mapped[int] = mapped_column(BigInteger, nullable=False)
    effective_gas_price: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    revert_reason: Mapped[str | None] = mapped_column(Text)
    logs: Mapped[Any] = mapped_column(JSONText, nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint("status IN (0, 1)", name="status"),
        UniqueConstraint("tx_hash", name="uq_receipts_tx_hash"),
        Index("ix_receipts_block_number", "block_number"),
    )


class Fill(Base):
    """One execution decoded from a receipt log; exec_id is ``<txhash>:<logIndex>``."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String, ForeignKey("orders.order_id", name="fk_fills_order_id_orders"), nullable=False
    )
    exec_id: Mapped[str] = mapped_column(String, nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    log_index: Mapped[int] = mapped_column(Integer, nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_qty: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)
    last_px: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)
    base_units: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    quote_units: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    fee_eth: Mapped[Decimal | None] = mapped_column(DecimalText)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Set when a reorg removed the fill's transaction and a Trade Cancel (150=H) was sent for it.
    busted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("exec_id", name="uq_fills_exec_id"),
        Index("ix_fills_order_id", "order_id"),
        Index("ix_fills_tx_hash", "tx_hash"),
        Index("ix_fills_ts", "ts"),
    )


class Approval(Base):
    """An ERC-20 allowance the bridge granted (exact per order, or standing)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    order_id: Mapped[str | None] = mapped_column(
        String, ForeignKey("orders.order_id", name="fk_approvals_order_id_orders")
    )
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wallet: Mapped[str] = mapped_column(String(42), nullable=False)
    token: Mapped[str] = mapped_column(String(42), nullable=False)
    spender: Mapped[str] = mapped_column(String(42), nullable=False)
    amount_units: Mapped[int] = mapped_column(UnitsInt, nullable=False)
    policy: Mapped[str] = mapped_column(String(16), nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("policy", APPROVAL_POLICIES), name="policy"),
        Index("ix_approvals_order_id", "order_id"),
        Index("ix_approvals_chain_id_wallet_token_spender", "chain_id", "wallet", "token", "spender"),
    )


class WalletNonce(Base):
    """The next nonce the bridge will use per (chain, wallet); only ever moves forward."""

    __tablename__ = "wallet_nonces"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    wallet: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


RECONCILIATION_STATUSES = ("clean", "breaks", "error")


class ReconciliationRun(Base):
    """One ``fixbridge reconcile`` run: the block range checked and every break found (migration 0002)."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    from_block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    to_block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    breaks: Mapped[int] = mapped_column(Integer, nullable=False)
    results: Mapped[Any] = mapped_column(JSONText, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("status", RECONCILIATION_STATUSES), name="status"),
        Index("ix_reconciliation_runs_started_at", "started_at"),
    )


# --------------------------------------------------------------------------------------------
# Security (migration 0003): kill switch, Logon attempts, throttling and lockouts
# --------------------------------------------------------------------------------------------

HALT_ALL = "*"  # TradingHalt.scope for a halt of every session
LOGON_OUTCOMES = ("accepted", "bad_password", "no_password", "bad_username", "locked_out", "error")
SECURITY_EVENT_KINDS = ("throttle", "lockout")


class TradingHalt(Base):
    """One kill-switch halt: of one counterparty (scope = its CompID) or of all ('*'); open until resumed."""

    __tablename__ = "trading_halts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    halted_by: Mapped[str] = mapped_column(String, nullable=False)
    halted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resumed_by: Mapped[str | None] = mapped_column(String)
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_trading_halts_scope_resumed_at", "scope", "resumed_at"),)


class LogonAttempt(Base):
    """Every Logon (35=A) the acceptor received and what it decided. Never the password."""

    __tablename__ = "logon_attempts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    session_id: Mapped[str] = mapped_column(String, nullable=False)
    comp_id: Mapped[str] = mapped_column(String, nullable=False)
    username: Mapped[str | None] = mapped_column(String)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_in("outcome", LOGON_OUTCOMES), name="outcome"),
        Index("ix_logon_attempts_comp_id_id", "comp_id", "id"),
        Index("ix_logon_attempts_ts", "ts"),
    )


class SecurityEvent(Base):
    """What the FIX edge did to protect itself: a session throttled, a CompID locked out."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    session_id: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[Any | None] = mapped_column(JSONText)

    __table_args__ = (
        CheckConstraint(_in("kind", SECURITY_EVENT_KINDS), name="kind"),
        Index("ix_security_events_session_id_ts", "session_id", "ts"),
    )


class Lease(Base):
    """Which bridge instance owns a session or a wallet. Several instances share one journal; the
    database decides who may use what (a row per thing, taken over only once its lease expired)."""

    __tablename__ = "leases"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)   # 'session' | 'wallet'
    name: Mapped[str] = mapped_column(String, primary_key=True)       # CompID, or '<chain_id>:<address>'
    owner: Mapped[str] = mapped_column(String, nullable=False)        # instance id: host:pid:random
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (CheckConstraint("kind IN ('session', 'wallet')", name="kind"),)


class ChainIdentity(Base):
    """The chain a journal was written against: recorded on first use, checked at every start, so
    a journal never signs at its nonces on another chain (a restarted devnet, a wrong RPC URL)."""

    __tablename__ = "chain_identities"

    name: Mapped[str] = mapped_column(String, primary_key=True)          # the spec's chain name
    chain_id: Mapped[int] = mapped_column(Integer, nullable=False)
    genesis_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    contracts: Mapped[Any] = mapped_column(JSONText, nullable=False)     # {role: address} from the spec
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


# --------------------------------------------------------------------------------------------
# External movements (migration 0006): deposits and withdrawals the bridge did not trade
# --------------------------------------------------------------------------------------------

ETH = "ETH"  # Movement.token_symbol of native ether (token_address NULL)


class Movement(Base):
    """A deposit into or a withdrawal from a bridge wallet that no order explains: the devnet's
    funding, an operator's top-up, a sweep. Reconciliation counts these as journaled flows."""

    __tablename__ = "movements"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wallet: Mapped[str] = mapped_column(String(42), nullable=False)
    token_symbol: Mapped[str] = mapped_column(String, nullable=False)        # the spec's symbol, or 'ETH'
    token_address: Mapped[str | None] = mapped_column(String(42))            # NULL for ETH
    amount: Mapped[Decimal] = mapped_column(DecimalText, nullable=False)     # exact, in token units
    amount_units: Mapped[int] = mapped_column(UnitsInt, nullable=False)      # the same in base units
    direction: Mapped[str] = mapped_column(String(3), nullable=False)        # 'in' | 'out'
    tx_hash: Mapped[str | None] = mapped_column(String(66))                  # the transfer it explains
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    who: Mapped[str] = mapped_column(String, nullable=False)
    why: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        # one row per (transaction, wallet, token, direction): recording a funding twice is a no-op
        UniqueConstraint("chain_id", "tx_hash", "wallet", "token_symbol", "direction",
                         name="uq_movements_chain_id_tx_hash_wallet_token_symbol_direction"),
        Index("ix_movements_chain_id_block_number", "chain_id", "block_number"),
    )
