"""FIX 4.4 <-> domain. Knows tags and enums; knows nothing about chains or ABIs.

Every value is read and written as a string so decimals never pass through a float.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

import quickfix as fix
import quickfix44 as fix44

from fixbridge.orders.model import (ExecEvent, ExecutionReport, Order, OrdStatus, OrdType, RejectReason, SecurityClaims, Side,
                                    TimeInForce)
from fixbridge.orders.resting import Amend
from fixbridge.orders.units import fmt

# User-defined tags, declared in specs/FIX44.xml.
# The wire codes of the domain's statuses and events: FIX stays at the edge.
ORD_STATUS_CODE: dict[OrdStatus, str] = {
    OrdStatus.PENDING_NEW: "A", OrdStatus.NEW: "0", OrdStatus.PARTIALLY_FILLED: "1", OrdStatus.FILLED: "2",
    OrdStatus.PENDING_CANCEL: "6", OrdStatus.CANCELED: "4", OrdStatus.EXPIRED: "C", OrdStatus.REJECTED: "8",
}
EXEC_TYPE_CODE: dict[ExecEvent, str] = {
    ExecEvent.NEW: "0", ExecEvent.PENDING_NEW: "A", ExecEvent.TRADE: "F", ExecEvent.CANCELED: "4",
    ExecEvent.PENDING_CANCEL: "6", ExecEvent.EXPIRED: "C", ExecEvent.REJECTED: "8", ExecEvent.TRADE_CANCEL: "H",
    ExecEvent.ORDER_STATUS: "I",
    # A stop's trigger: QuickFIX's FIX 4.4 dictionary has no L (Triggered), so strict engines would drop
    # it; D (Restated) with ExecRestatementReason 378=4 and Text saying so reads everywhere.
    ExecEvent.REPLACED: "5", ExecEvent.TRIGGERED: "D",
}
RESTATED_BY_BROKER = "4"  # ExecRestatementReason (378) of a trigger

TAG_CHAIN_TX_HASH = 20001
TAG_CHAIN_BLOCK = 20002
TAG_CHAIN_ID = 20003
TAG_CHAIN_VENUE = 20004

SIDES = {"1": Side.BUY, "2": Side.SELL}
SIDE_CODE = {v: k for k, v in SIDES.items()}
ORD_TYPES = {"1": OrdType.MARKET, "2": OrdType.LIMIT, "3": OrdType.STOP, "4": OrdType.STOP_LIMIT}
TIFS = {"0": TimeInForce.DAY, "1": TimeInForce.GTC, "3": TimeInForce.IOC, "4": TimeInForce.FOK, "6": TimeInForce.GTD}
TIF_CODE = {v: k for k, v in TIFS.items()}
TIF_NAMES = {"0": "Day", "1": "GTC", "2": "OPG", "5": "GTX", "6": "GTD", "7": "At the close"}
ORD_TYPE_NAMES = {"3": "Stop", "4": "Stop limit", "P": "Pegged"}
MISC_FEE_TYPE_PER_TRANSACTION = "10"

# FIX wants a repeating group's fields in the order of the message definition; a generic
# fix.Group(136, 137) writes them in tag order. An empty typed group is the prototype: a copy keeps
# its order (FIX44.xml's) and costs one SWIG call, as the generic group did (a fresh typed group
# fills its order array field by field, three times the cost, on every fill).
_MISC_FEES = fix44.ExecutionReport.NoMiscFees()


class ParseRejection(Exception):
    """The message is well-formed FIX but asks for something the bridge does not do."""

    def __init__(self, reason: RejectReason, text: str) -> None:
        super().__init__(text)
        self.reason, self.text = reason, text


def get(msg: fix.Message, tag: int) -> str | None:
    return msg.getField(tag) if msg.isSetField(tag) else None


def _decimal(msg: fix.Message, tag: int, name: str) -> Decimal | None:
    raw = get(msg, tag)
    if raw is None:
        return None
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise ParseRejection(RejectReason.OTHER, f"{name} ({tag}) is not a number: {raw!r}") from None
    if not d.is_finite():
        raise ParseRejection(RejectReason.OTHER, f"{name} ({tag}) is not a finite number: {raw!r}")
    return d


def _utc(raw: str | None, tag: int, name: str) -> datetime | None:
    if raw is None:
        return None
    for f in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(raw, f).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ParseRejection(RejectReason.OTHER, f"{name} ({tag}) is not a UTCTimestamp: {raw!r}")


def utc_timestamp(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def parse_new_order(msg: fix.Message, session_id: str) -> Order:
    """NewOrderSingle -> Order. Raises ParseRejection for what the bridge does not support."""
    side_raw = msg.getField(54)
    if side_raw not in SIDES:
        raise ParseRejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"Side {side_raw} is not supported; send 1 (Buy) or 2 (Sell)")
    ot_raw = msg.getField(40)
    if ot_raw not in ORD_TYPES:
        name = ORD_TYPE_NAMES.get(ot_raw, ot_raw)
        raise ParseRejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC, f"OrdType {ot_raw} ({name}) is not supported; "
                             "send 1 (Market), 2 (Limit), 3 (Stop) or 4 (Stop limit)")
    tif_raw = get(msg, 59) or "0"
    if tif_raw not in TIFS:
        name = TIF_NAMES.get(tif_raw, tif_raw)
        raise ParseRejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                             f"TimeInForce {tif_raw} ({name}) is not supported; send 0 (Day), 1 (GTC), 3 (IOC), "
                             "4 (FOK) or 6 (GTD)")
    claims = None
    if any(msg.isSetField(tag) for tag in (167, 200, 541, 202, 201, 231)):
        pc = get(msg, 201)
        claims = SecurityClaims(security_type=get(msg, 167), maturity_month_year=get(msg, 200),
                                maturity_date=get(msg, 541), strike=_decimal(msg, 202, "StrikePrice"),
                                put_or_call={"0": "P", "1": "C"}.get(pc, pc) if pc is not None else None,
                                contract_multiplier=_decimal(msg, 231, "ContractMultiplier"))
    return Order(
        claims=claims,
        session_id=session_id, cl_ord_id=msg.getField(11), symbol=msg.getField(55), side=SIDES[side_raw],
        ord_type=ORD_TYPES[ot_raw], time_in_force=TIFS[tif_raw],
        order_qty=_decimal(msg, 38, "OrderQty"), cash_order_qty=_decimal(msg, 152, "CashOrderQty"),
        price=_decimal(msg, 44, "Price"), account=get(msg, 1), expire_time=_utc(get(msg, 126), 126, "ExpireTime"),
        ex_destination=get(msg, 100), stop_px=_decimal(msg, 99, "StopPx"),
        expire_date=_local_date(get(msg, 432), 432, "ExpireDate"),
    )


def _local_date(raw: str | None, tag: int, name: str) -> date | None:
    if raw is None:
        return None
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise ParseRejection(RejectReason.OTHER, f"{name} ({tag}) is not a LocalMktDate (YYYYMMDD): {raw!r}") from None


def parse_amend(msg: fix.Message) -> Amend:
    """OrderCancelReplaceRequest (G) -> what it changes. Fields a replace must repeat (Side, Symbol,
    OrdType) are checked against the order by the engine's rules; here only their form."""
    tif_raw = get(msg, 59)
    if tif_raw is not None and tif_raw not in TIFS:
        raise ParseRejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                             f"TimeInForce {tif_raw} ({TIF_NAMES.get(tif_raw, tif_raw)}) is not supported")
    expire = _utc(get(msg, 126), 126, "ExpireTime")
    day = _local_date(get(msg, 432), 432, "ExpireDate")
    if expire is None and day is not None:
        expire = datetime.combine(day, datetime.min.time(), timezone.utc)
    return Amend(order_qty=_decimal(msg, 38, "OrderQty"), price=_decimal(msg, 44, "Price"),
                 time_in_force=TIFS[tif_raw] if tif_raw is not None else None, expire_time=expire,
                 stop_px=_decimal(msg, 99, "StopPx"))


def _s(m: fix.FieldMap, tag: int, value: object) -> None:
    if value is None:
        return
    # FieldMap.setField(tag, text): the same field as setField(StringField(tag, text)), without
    # a SWIG object per field (two dozen per report).
    m.setField(tag, fmt(value) if isinstance(value, Decimal) else str(value))


def execution_report(er: ExecutionReport) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
    _s(m, 37, er.order_id)
    _s(m, 11, er.cl_ord_id)
    _s(m, 41, er.orig_cl_ord_id)
    _s(m, 790, er.ord_status_req_id)
    _s(m, 584, er.mass_status_req_id)
    _s(m, 17, er.exec_id)
    _s(m, 19, er.exec_ref_id)
    _s(m, 150, EXEC_TYPE_CODE[er.event])
    _s(m, 378, RESTATED_BY_BROKER if er.event is ExecEvent.TRIGGERED else None)
    _s(m, 39, ORD_STATUS_CODE[er.ord_status])
    _s(m, 103, int(er.rej_reason) if er.rej_reason is not None else None)
    _s(m, 1, er.account)
    _s(m, 55, er.symbol)
    _s(m, 54, SIDE_CODE[er.side])
    _s(m, 38, er.order_qty)
    _s(m, 152, er.cash_order_qty)
    _s(m, 44, er.price)
    _s(m, 99, er.stop_px)
    _s(m, 59, TIF_CODE.get(er.time_in_force) if er.time_in_force is not None else None)
    _s(m, 126, utc_timestamp(er.expire_time) if er.expire_time is not None else None)
    _s(m, 32, er.last_qty)
    _s(m, 31, er.last_px)
    _s(m, 151, er.leaves_qty)
    _s(m, 14, er.cum_qty)
    _s(m, 6, er.avg_px)
    _s(m, 60, utc_timestamp(er.transact_time or datetime.now(timezone.utc)))
    _s(m, 58, _ascii(er.text))
    _s(m, 911, er.total_reports)
    _s(m, 912, "Y" if er.last_report else None)
    if er.fee_eth is not None:
        g = fix.Group(_MISC_FEES)
        _s(g, 137, er.fee_eth)
        _s(g, 138, "ETH")
        _s(g, 139, MISC_FEE_TYPE_PER_TRANSACTION)
        m.addGroup(g)
    _s(m, TAG_CHAIN_TX_HASH, er.tx_hash)
    _s(m, TAG_CHAIN_BLOCK, er.block_number)
    _s(m, TAG_CHAIN_ID, er.chain_id)
    _s(m, TAG_CHAIN_VENUE, er.venue)
    return m


def drop_copy(er: ExecutionReport, deliver_to: str) -> fix.Message:
    """The report as a drop copy session gets it: CopyMsgIndicator 797=Y, DeliverToCompID 128 =
    the session it was sent to."""
    m = execution_report(er)
    m.getHeader().setField(128, deliver_to)
    _s(m, 797, "Y")
    return m


def unparsed_reject(msg: fix.Message, reason: RejectReason, text: str) -> fix.Message:
    """39=8 for an order the bridge cannot even represent, echoing what the client sent."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
    for tag in (11, 55, 54, 38, 152, 44, 1):
        _s(m, tag, get(msg, tag))
    _s(m, 37, "NONE")
    _s(m, 17, f"REJ-{msg.getHeader().getField(34)}-{msg.getField(11)}")
    _s(m, 150, "8")
    _s(m, 39, ORD_STATUS_CODE[OrdStatus.REJECTED])
    _s(m, 103, int(reason))
    _s(m, 14, "0")
    _s(m, 151, "0")
    _s(m, 6, "0")
    _s(m, 58, _ascii(text))
    _s(m, 60, utc_timestamp(datetime.now(timezone.utc)))
    return m


def business_message_reject(msg: fix.Message, text: str, reason: str = "0") -> fix.Message:
    """35=j naming the refused message by its MsgSeqNum and MsgType."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_BusinessMessageReject))
    _s(m, 45, msg.getHeader().getField(34))
    _s(m, 372, msg.getHeader().getField(35))
    _s(m, 380, reason)  # BusinessRejectReason: 0 Other, 6 Not authorized
    _s(m, 58, _ascii(text))
    return m


def order_cancel_reject(*, order_id: str, cl_ord_id: str, orig_cl_ord_id: str, ord_status: OrdStatus,
                        too_late: bool, text: str, replace: bool = False) -> fix.Message:
    """OrderCancelReject (9) answering a cancel (434=1) or an amend (434=2). CxlRejReason: 0 too late,
    1 unknown order, 99 other (an amend's rule, said in Text)."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelReject))
    _s(m, 37, order_id)
    _s(m, 11, cl_ord_id)
    _s(m, 41, orig_cl_ord_id)
    _s(m, 39, ORD_STATUS_CODE[ord_status])
    _s(m, 434, "2" if replace else "1")    # CxlRejResponseTo: Order Cancel/Replace Request, Order Cancel Request
    _s(m, 102, "0" if too_late else "1" if order_id == "NONE" or not replace else "99")
    _s(m, 58, _ascii(text))
    return m


def _ascii(text: str | None) -> str | None:
    """Text (58) is a String field: keep it to printable ASCII so any FIX engine can read it."""
    if text is None:
        return None
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:1024]


def raw(msg: fix.Message) -> str:
    return msg.toString().replace("\x01", "|")
