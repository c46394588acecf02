"""What the journal's reads return (frozen dataclasses, nothing ORM), its errors, and the
checks and conversions its record stores share."""
from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, Inexact
from typing import Any

import structlog
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from fixbridge.orders.model import (
    TERMINAL,
    Order,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)

from . import schema as db

_log = structlog.get_logger(__name__)
_TERMINAL_VALUES = tuple(s.value for s in TERMINAL)
_PENDING_TX = ("signed", "broadcast")
_EXACT = Context(prec=200, traps=[Inexact])  # for the journal's own sums: never rounds, or raises


# ============================================================================================
# Errors
# ============================================================================================


class JournalError(Exception):
    """Base class of the journal's own errors."""


class DuplicateClOrdID(JournalError):
    """The (session_id, cl_ord_id) pair is already journaled; ClOrdIDs are unique per session, forever."""

    def __init__(self, session_id: str, cl_ord_id: str, prior: "OrderRow | None" = None) -> None:
        super().__init__(f"duplicate ClOrdID {cl_ord_id!r} on session {session_id!r}")
        self.session_id = session_id
        self.cl_ord_id = cl_ord_id
        self.prior = prior  # the order that holds the ClOrdID


class UnknownOrder(JournalError, LookupError):
    """No order with that order_id is journaled."""


class UnknownTransaction(JournalError, LookupError):
    """No transaction with that tx_hash is journaled."""


# ============================================================================================
# Rows handed out
# ============================================================================================


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    order_id: str
    session_id: str
    cl_ord_id: str
    account: str | None
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    order_qty: Decimal | None
    cash_order_qty: Decimal | None
    price: Decimal | None
    expire_time: datetime | None
    ex_destination: str | None
    wallet: str | None
    venue: str | None
    status: OrdStatus
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_px: Decimal
    text: str | None
    rej_reason: int | None
    created_at: datetime
    updated_at: datetime
    stop_px: Decimal | None = None
    expire_at: datetime | None = None
    resting: bool = False
    triggered: bool = False

    def to_order(self) -> Order:
        """The domain ``Order`` this row describes (e.g. to resume it after a restart)."""
        return Order(
            session_id=self.session_id,
            cl_ord_id=self.cl_ord_id,
            symbol=self.symbol,
            side=self.side,
            ord_type=self.ord_type,
            time_in_force=self.time_in_force,
            order_qty=self.order_qty,
            cash_order_qty=self.cash_order_qty,
            price=self.price,
            account=self.account,
            expire_time=self.expire_time,
            ex_destination=self.ex_destination,
            order_id=self.order_id,
            status=self.status,
            cum_qty=self.cum_qty,
            avg_px=self.avg_px,
            text=self.text,
            venue=self.venue,
            wallet=self.wallet,
            created_at=self.created_at,
            stop_px=self.stop_px,
            expire_at=self.expire_at,
            resting=self.resting,
            triggered=self.triggered,
        )


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    order_id: str
    ts: datetime
    kind: str
    from_status: OrdStatus | None
    to_status: OrdStatus
    reason: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TxRow:
    id: int
    order_id: str | None
    purpose: str
    chain_id: int
    wallet: str
    nonce: int
    tx_hash: str
    raw_tx: str
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    status: str
    block_number: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    id: int
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    revert_reason: str | None
    logs: list[dict[str, Any]]
    ts: datetime


@dataclass(frozen=True, slots=True)
class FillRow:
    id: int
    order_id: str
    exec_id: str
    tx_hash: str
    log_index: int
    block_number: int
    last_qty: Decimal
    last_px: Decimal
    base_units: int
    quote_units: int
    fee_eth: Decimal | None
    ts: datetime
    busted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: int
    order_id: str | None
    chain_id: int
    wallet: str
    token: str
    spender: str
    amount_units: int
    policy: str
    tx_hash: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class FixMessageRow:
    id: int
    ts: datetime
    session_id: str
    direction: str
    msg_type: str
    seq_num: int | None
    cl_ord_id: str | None
    order_id: str | None
    exec_id: str | None
    exec_type: str | None
    ord_status: str | None
    raw: str


def _order_row(r: db.Order) -> OrderRow:
    return OrderRow(
        id=r.id,
        order_id=r.order_id,
        session_id=r.session_id,
        cl_ord_id=r.cl_ord_id,
        account=r.account,
        symbol=r.symbol,
        side=Side(r.side),
        ord_type=OrdType(r.ord_type),
        time_in_force=TimeInForce(r.time_in_force),
        order_qty=r.order_qty,
        cash_order_qty=r.cash_order_qty,
        price=r.price,
        expire_time=r.expire_time,
        ex_destination=r.ex_destination,
        wallet=r.wallet,
        venue=r.venue,
        status=OrdStatus(r.status),
        cum_qty=r.cum_qty,
        leaves_qty=r.leaves_qty,
        avg_px=r.avg_px,
        text=r.text,
        rej_reason=r.rej_reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
        stop_px=r.stop_px,
        expire_at=r.expire_at,
        resting=bool(r.resting),
        triggered=bool(r.triggered),
    )


def _event_row(r: db.OrderEvent) -> EventRow:
    return EventRow(
        id=r.id,
        order_id=r.order_id,
        ts=r.ts,
        kind=r.kind,
        from_status=None if r.from_status is None else OrdStatus(r.from_status),
        to_status=OrdStatus(r.to_status),
        reason=r.reason,
        detail=r.detail,
    )


def _tx_row(r: db.Transaction) -> TxRow:
    return TxRow(
        id=r.id,
        order_id=r.order_id,
        purpose=r.purpose,
        chain_id=r.chain_id,
        wallet=r.wallet,
        nonce=r.nonce,
        tx_hash=r.tx_hash,
        raw_tx=r.raw_tx,
        gas_limit=r.gas_limit,
        max_fee_per_gas=r.max_fee_per_gas,
        max_priority_fee_per_gas=r.max_priority_fee_per_gas,
        status=r.status,
        block_number=r.block_number,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _receipt_row(r: db.Receipt) -> ReceiptRow:
    return ReceiptRow(
        id=r.id,
        tx_hash=r.tx_hash,
        block_number=r.block_number,
        block_hash=r.block_hash,
        status=r.status,
        gas_used=r.gas_used,
        effective_gas_price=r.effective_gas_price,
        revert_reason=r.revert_reason,
        logs=r.logs,
        ts=r.ts,
    )


def _fill_row(r: db.Fill) -> FillRow:
    return FillRow(
        id=r.id,
        order_id=r.order_id,
        exec_id=r.exec_id,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        block_number=r.block_number,
        last_qty=r.last_qty,
        last_px=r.last_px,
        base_units=r.base_units,
        quote_units=r.quote_units,
        fee_eth=r.fee_eth,
        ts=r.ts,
        busted_at=r.busted_at,
    )


def _approval_row(r: db.Approval) -> ApprovalRow:
    return ApprovalRow(
        id=r.id,
        order_id=r.order_id,
        chain_id=r.chain_id,
        wallet=r.wallet,
        token=r.token,
        spender=r.spender,
        amount_units=r.amount_units,
        policy=r.policy,
        tx_hash=r.tx_hash,
        ts=r.ts,
    )


def _fix_row(r: db.FixMessage) -> FixMessageRow:
    return FixMessageRow(
        id=r.id,
        ts=r.ts,
        session_id=r.session_id,
        direction=r.direction,
        msg_type=r.msg_type,
        seq_num=r.seq_num,
        cl_ord_id=r.cl_ord_id,
        order_id=r.order_id,
        exec_id=r.exec_id,
        exec_type=r.exec_type,
        ord_status=r.ord_status,
        raw=r.raw,
    )


# ============================================================================================
# Input normalisation
# ============================================================================================

_HEX = frozenset(string.hexdigits)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _hex(value: str | bytes, what: str, nbytes: int | None = None) -> str:
    """Lower-case 0x-prefixed hex for a str or bytes (HexBytes included, whose .hex() has no 0x)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        h = bytes(value).hex()
    elif isinstance(value, str):
        h = value.lower()
        if h.startswith("0x"):
            h = h[2:]
    else:
        raise TypeError(f"{what}: expected hex str or bytes, got {type(value).__name__}")
    if len(h) % 2 or not _HEX.issuperset(h) or (nbytes is not None and len(h) != 2 * nbytes):
        size = f"{nbytes}-byte " if nbytes else ""
        raise ValueError(f"{what}: not {size}hex: {value!r}")
    return "0x" + h


def _hash32(value: str | bytes, what: str = "tx_hash") -> str:
    return _hex(value, what, 32)


def _address(value: str | bytes, what: str = "address") -> str:
    """EIP-55 checksum form, so one wallet is always one key (nonces are keyed by it)."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        value = "0x" + bytes(value).hex()
    if isinstance(value, str):
        return _checksummed(value, what)
    raise ValueError(f"{what}: not a 20-byte hex address: {value!r}")


@functools.lru_cache(maxsize=4096)  # a handful of wallets and contracts, each written per order: two keccaks saved
def _checksummed(value: str, what: str) -> str:
    if not is_hex_address(value):
        raise ValueError(f"{what}: not a 20-byte hex address: {value!r}")
    body = value[2:] if value[:2].lower() == "0x" else value
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError(f"{what}: mixed-case address with a bad EIP-55 checksum: {value!r}")
    return to_checksum_address(value)


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _leaves(status: OrdStatus, order_qty: Decimal | None, cum_qty: Decimal) -> Decimal:
    """LeavesQty by the domain model's rule (``Order.leaves_qty``), computed without rounding."""
    if status.terminal or order_qty is None:
        return Decimal(0)
    return db.canonical_decimal(_EXACT.subtract(order_qty, cum_qty))


# ============================================================================================
# Engine, migrations
# ============================================================================================


