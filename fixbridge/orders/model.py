"""The order domain: what an order is, its fills and its reports, in the trade's language.

Nothing here knows FIX tags or ABIs; the FIX edge and the venues translate to and from these.
Quantities and prices are Decimal; on-chain amounts are int base units.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


class Side(str, enum.Enum):
    BUY = "BUY"    # receive base, pay quote
    SELL = "SELL"  # give base, receive quote


class OrdType(str, enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"              # a market order once the touch reaches its StopPx (99)
    STOP_LIMIT = "STOP_LIMIT"  # a limit order once the touch reaches its StopPx


class TimeInForce(str, enum.Enum):
    IOC = "IOC"
    FOK = "FOK"
    # Resting: the order waits in the bridge until the market meets it (orders/resting.py).
    DAY = "DAY"
    GTC = "GTC"
    GTD = "GTD"


class OrdStatus(str, enum.Enum):
    PENDING_NEW = "PendingNew"
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    PENDING_CANCEL = "PendingCancel"
    CANCELED = "Canceled"
    EXPIRED = "Expired"
    REJECTED = "Rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.EXPIRED, OrdStatus.REJECTED})


class RejectReason(int, enum.Enum):
    """FIX OrdRejReason (103) values used by the bridge."""
    BROKER_OPTION = 0
    UNKNOWN_SYMBOL = 1
    EXCHANGE_CLOSED = 2
    ORDER_EXCEEDS_LIMIT = 3
    TOO_LATE_TO_ENTER = 4
    UNKNOWN_ORDER = 5
    DUPLICATE_ORDER = 6
    UNSUPPORTED_ORDER_CHARACTERISTIC = 11
    INCORRECT_QUANTITY = 13
    UNKNOWN_ACCOUNT = 15
    OTHER = 99


@dataclass(frozen=True)
class SecurityClaims:
    """Instrument fields a client may send with an order (167/200/541/202/201/231); when sent they
    must agree with the instrument the Symbol names."""
    security_type: str | None = None
    maturity_month_year: str | None = None   # YYYYMM or YYYYMMDD
    maturity_date: str | None = None         # YYYYMMDD
    strike: Decimal | None = None
    put_or_call: str | None = None           # "P" or "C"
    contract_multiplier: Decimal | None = None


@dataclass
class Order:
    """A NewOrderSingle once parsed: the client's intent, before any venue is chosen."""
    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    order_qty: Decimal | None = None        # base quantity
    cash_order_qty: Decimal | None = None   # quote quantity (alternative to order_qty)
    price: Decimal | None = None            # limit, quote per base
    account: str | None = None
    expire_time: datetime | None = None     # transaction deadline
    ex_destination: str | None = None
    order_id: str = ""
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: Decimal = Decimal(0)
    avg_px: Decimal = Decimal(0)
    text: str | None = None
    venue: str | None = None
    wallet: str | None = None
    created_at: datetime | None = None
    claims: SecurityClaims | None = None
    # Resting orders (orders/resting.py): a stop's trigger price (99), a GTD's ExpireDate (432), when
    # the order's life ends (Day's close, GTD), whether it waits in the bridge, whether a stop triggered.
    stop_px: Decimal | None = None
    expire_date: date | None = None
    expire_at: datetime | None = None
    resting: bool = False
    triggered: bool = False

    @property
    def leaves_qty(self) -> Decimal:
        if self.status.terminal or self.order_qty is None:
            return Decimal(0) if self.status.terminal else (self.order_qty or Decimal(0))
        return self.order_qty - self.cum_qty


@dataclass(frozen=True)
class Fill:
    """One execution on chain, decoded from a receipt log."""
    order_id: str
    exec_id: str            # "<txhash>:<logIndex>"
    tx_hash: str
    log_index: int
    block_number: int
    last_qty: Decimal       # base
    last_px: Decimal        # quote per base
    base_units: int
    quote_units: int


class ExecEvent(str, enum.Enum):
    """What a report tells the client happened to its order, in the trade's language; the FIX edge
    maps it to ExecType (150) (fixbridge/fix/translate.py)."""
    NEW = "new"
    PENDING_NEW = "pending_new"      # received and journaled; New or Rejected follows
    TRADE = "trade"
    CANCELED = "canceled"
    PENDING_CANCEL = "pending_cancel"
    EXPIRED = "expired"
    REJECTED = "rejected"
    TRADE_CANCEL = "trade_cancel"    # a reported fill taken back (a reorg removed its block)
    ORDER_STATUS = "order_status"    # the answer to a status request: nothing happened
    REPLACED = "replaced"            # an amend (OrderCancelReplaceRequest) took effect
    TRIGGERED = "triggered"          # a stop's price was reached: it now works as a market or limit order


@dataclass(frozen=True)
class ExecutionReport:
    """What the bridge tells the client about an order; the FIX edge renders it as 35=8."""
    order_id: str
    cl_ord_id: str
    exec_id: str
    event: ExecEvent        # what happened (the FIX edge renders it as ExecType 150)
    ord_status: OrdStatus
    side: Side
    symbol: str
    order_qty: Decimal | None
    cash_order_qty: Decimal | None
    price: Decimal | None
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_px: Decimal
    last_qty: Decimal | None = None
    last_px: Decimal | None = None
    text: str | None = None
    rej_reason: RejectReason | None = None
    fee_eth: Decimal | None = None           # gas paid, in ETH
    tx_hash: str | None = None
    block_number: int | None = None
    chain_id: int | None = None
    venue: str | None = None
    ord_status_req_id: str | None = None
    account: str | None = None
    orig_cl_ord_id: str | None = None        # set on reports answering a cancel request
    exec_ref_id: str | None = None           # on a Trade Cancel (150=H): the ExecID it busts
    # An answer to a mass status request: its id, how many reports answer it, and whether this is the last.
    mass_status_req_id: str | None = None
    total_reports: int | None = None
    last_report: bool = False
    # A resting order's terms, echoed on its reports (TimeInForce 59, StopPx 99, ExpireTime 126).
    time_in_force: TimeInForce | None = None
    stop_px: Decimal | None = None
    expire_time: datetime | None = None
    transact_time: datetime | None = field(default=None)
