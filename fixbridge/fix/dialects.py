"""One translation layer, per FIX version: what a session's BeginString changes on the wire.

The engine speaks the domain (fixbridge/orders/model.py); the FIX edge picks the dialect of the
session a message comes from or goes to (`for_session`) and lets it read and write. FIX 4.4 is
`translate.py` as it was; FIX 4.2 differs where the version does:

| | FIX 4.4 | FIX 4.2 |
|---|---|---|
| ExecTransType (20) | absent | 0 New; 1 Cancel on a Trade Cancel; 3 Status on a status answer |
| ExecType (150) of a fill | F Trade | 1 Partial fill / 2 Fill (by OrdStatus) |
| ExecType of a status answer / Trade Cancel | I / H | the order's OrdStatus (4.2 has no I or H) |
| ExecType of a stop's trigger | D Restated, 378=4 (QuickFIX's 4.4 dictionary has no L) | the same |
| gas paid | MiscFees group (136) | ChainFee (20006, ETH): 4.2's ExecutionReport has no MiscFees |
| OrdStatusReqID (790), CopyMsgIndicator (797) | sent | absent in 4.2 (not sent) |
| OrdRejReason (103) 11, 13, 15, 99 | sent | 0 (4.2 has 0-8); Text (58) says why |
| BusinessRejectReason (380) 6 Not authorized | sent | 0 Other (4.2 has 0-5); Text says why |
| option maturity | MaturityMonthYear 200, MaturityDate 541 | MaturityMonthYear 200 + MaturityDay 205 |
| OrderMassStatusRequest (AF), OrderMassCancelRequest (q), SecurityListRequest (x), RequestForPositions (AN) | answered | not in 4.2: QuickFIX's session Reject 373=11 (Invalid MsgType) |
| SecurityDefinitionRequest (c) | SecurityDefinition | BusinessMessageReject 380=3 (not answered in 4.2) |
| option settlement | PositionReport (AP) | not reported (4.2 has no PositionReport); journaled as for any session |

Outbound 4.2 messages are QuickFIX's typed `quickfix42` classes; 4.4's are translate.py's.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import quickfix as fix
import quickfix42 as fix42

from fixbridge.fix import translate as t
from fixbridge.orders.model import ExecEvent, ExecutionReport, Order, OrdStatus, RejectReason

BEGIN_STRING_44 = "FIX.4.4"
BEGIN_STRING_42 = "FIX.4.2"


class Fix44:
    """FIX 4.4: translate.py."""
    begin_string = BEGIN_STRING_44
    has_mass_messages = True  # OrderMassStatusRequest (AF), OrderMassCancelRequest (q)
    has_reference_data = True  # SecurityList/Definition, positions (refdata.py, FIX 4.4's groups)

    @staticmethod
    def parse_new_order(msg: fix.Message, session_id: str) -> Order:
        return t.parse_new_order(msg, session_id)

    @staticmethod
    def execution_report(er: ExecutionReport) -> fix.Message:
        return t.execution_report(er)

    @staticmethod
    def drop_copy(er: ExecutionReport, deliver_to: str) -> fix.Message:
        return t.drop_copy(er, deliver_to)

    @staticmethod
    def unparsed_reject(msg: fix.Message, reason: RejectReason, text: str) -> fix.Message:
        return t.unparsed_reject(msg, reason, text)

    @staticmethod
    def order_cancel_reject(**kw) -> fix.Message:
        return t.order_cancel_reject(**kw)

    @staticmethod
    def business_message_reject(msg: fix.Message, text: str, reason: str = "0") -> fix.Message:
        return t.business_message_reject(msg, text, reason)


# FIX 4.2 ExecType: no Trade (F), Order Status (I) or Trade Cancel (H).
EXEC_TYPE_42: dict[ExecEvent, str] = {
    ExecEvent.NEW: "0", ExecEvent.CANCELED: "4", ExecEvent.PENDING_CANCEL: "6", ExecEvent.EXPIRED: "C",
    ExecEvent.REJECTED: "8", ExecEvent.REPLACED: "5", ExecEvent.PENDING_NEW: "A",
    ExecEvent.TRIGGERED: "D",  # a stop's trigger: D (Restated), 378=4, Text says so (as in 4.4)
}
EXEC_TRANS_NEW, EXEC_TRANS_CANCEL, EXEC_TRANS_STATUS = "0", "1", "3"
TAG_CHAIN_FEE = 20006  # specs/FIX42.xml: the gas paid, in ETH
MAX_ORD_REJ_REASON_42 = 8          # 4.2's OrdRejReason ends at 8 (Stale order)
MAX_BUSINESS_REJECT_REASON_42 = 5  # and BusinessRejectReason at 5


def ord_rej_reason_42(reason: RejectReason | None) -> int | None:
    """4.2 has no codes past 8: those reasons (unsupported characteristic, quantity, account, other)
    go as 0 (broker option), their Text naming the reason."""
    if reason is None:
        return None
    return int(reason) if int(reason) <= MAX_ORD_REJ_REASON_42 else int(RejectReason.BROKER_OPTION)


def exec_type_42(event: ExecEvent, ord_status: OrdStatus) -> str:
    """4.2's ExecType: a fill is 1 (partial) or 2 (fill) by the order's status after it; a status
    answer and a Trade Cancel (sent with ExecTransType 3 / 1) carry the order's current OrdStatus."""
    if event is ExecEvent.TRADE:
        return "1" if ord_status is OrdStatus.PARTIALLY_FILLED else "2"
    if event in (ExecEvent.ORDER_STATUS, ExecEvent.TRADE_CANCEL):
        return t.ORD_STATUS_CODE[ord_status]
    return EXEC_TYPE_42[event]


def exec_trans_type_42(event: ExecEvent) -> str:
    return {ExecEvent.ORDER_STATUS: EXEC_TRANS_STATUS, ExecEvent.TRADE_CANCEL: EXEC_TRANS_CANCEL}.get(event, EXEC_TRANS_NEW)


class Fix42:
    """FIX 4.2: the same reports in 4.2's fields, built on quickfix42's typed messages."""
    begin_string = BEGIN_STRING_42
    has_mass_messages = False
    has_reference_data = False  # SecurityDefinitionRequest (c) gets BusinessMessageReject 380=3; no PositionReport

    @staticmethod
    def parse_new_order(msg: fix.Message, session_id: str) -> Order:
        order = t.parse_new_order(msg, session_id)
        # 4.2 has no MaturityDate (541): MaturityMonthYear (YYYYMM) + MaturityDay (205, DD) name the day.
        day, month = t.get(msg, 205), t.get(msg, 200)
        if order.claims is not None and day is not None and month is not None and len(month) == 6:
            order.claims = replace(order.claims, maturity_date=f"{month}{int(day):02d}" if day.isdigit() else month + day)
        return order

    @staticmethod
    def execution_report(er: ExecutionReport) -> fix.Message:
        m = fix42.ExecutionReport()
        s = t._s
        s(m, 37, er.order_id)
        s(m, 11, er.cl_ord_id)
        s(m, 41, er.orig_cl_ord_id)
        s(m, 17, er.exec_id)
        s(m, 20, exec_trans_type_42(er.event))
        s(m, 19, er.exec_ref_id)
        s(m, 150, exec_type_42(er.event, er.ord_status))
        s(m, 378, t.RESTATED_BY_BROKER if er.event is ExecEvent.TRIGGERED else None)
        s(m, 39, t.ORD_STATUS_CODE[er.ord_status])
        s(m, 103, ord_rej_reason_42(er.rej_reason))
        s(m, 1, er.account)
        s(m, 55, er.symbol)
        s(m, 54, t.SIDE_CODE[er.side])
        s(m, 38, er.order_qty)
        s(m, 152, er.cash_order_qty)
        s(m, 44, er.price)
        s(m, 99, er.stop_px)
        s(m, 59, t.TIF_CODE.get(er.time_in_force) if er.time_in_force is not None else None)
        s(m, 126, t.utc_timestamp(er.expire_time) if er.expire_time is not None else None)
        s(m, 32, er.last_qty)   # LastShares in 4.2
        s(m, 31, er.last_px)
        s(m, 151, er.leaves_qty)
        s(m, 14, er.cum_qty)
        s(m, 6, er.avg_px)
        s(m, 60, t.utc_timestamp(er.transact_time or datetime.now(timezone.utc)))
        s(m, 58, t._ascii(er.text))
        s(m, TAG_CHAIN_FEE, er.fee_eth)
        s(m, t.TAG_CHAIN_TX_HASH, er.tx_hash)
        s(m, t.TAG_CHAIN_BLOCK, er.block_number)
        s(m, t.TAG_CHAIN_ID, er.chain_id)
        s(m, t.TAG_CHAIN_VENUE, er.venue)
        return m

    @classmethod
    def drop_copy(cls, er: ExecutionReport, deliver_to: str) -> fix.Message:
        """4.2 has no CopyMsgIndicator (797): DeliverToCompID (128) alone says whose report it is."""
        m = cls.execution_report(er)
        m.getHeader().setField(128, deliver_to)
        return m

    @staticmethod
    def unparsed_reject(msg: fix.Message, reason: RejectReason, text: str) -> fix.Message:
        m = fix42.ExecutionReport()
        s = t._s
        for tag in (11, 55, 54, 38, 152, 44, 1):
            s(m, tag, t.get(msg, tag))
        s(m, 37, "NONE")
        s(m, 17, f"REJ-{msg.getHeader().getField(34)}-{msg.getField(11)}")
        s(m, 20, EXEC_TRANS_NEW)
        s(m, 150, "8")
        s(m, 39, t.ORD_STATUS_CODE[OrdStatus.REJECTED])
        s(m, 103, ord_rej_reason_42(reason))
        s(m, 14, "0")
        s(m, 151, "0")
        s(m, 6, "0")
        s(m, 58, t._ascii(text))
        s(m, 60, t.utc_timestamp(datetime.now(timezone.utc)))
        return m

    @staticmethod
    def order_cancel_reject(*, order_id: str, cl_ord_id: str, orig_cl_ord_id: str, ord_status: OrdStatus,
                            too_late: bool, text: str, replace: bool = False) -> fix.Message:
        m = fix42.OrderCancelReject()
        s = t._s
        s(m, 37, order_id)
        s(m, 11, cl_ord_id)
        s(m, 41, orig_cl_ord_id)
        s(m, 39, t.ORD_STATUS_CODE[ord_status])
        s(m, 434, "2" if replace else "1")
        s(m, 102, "0" if too_late else "1" if order_id == "NONE" or not replace else "2")  # 4.2 ends at 3: 2 Broker option
        s(m, 58, t._ascii(text))
        return m

    @staticmethod
    def business_message_reject(msg: fix.Message, text: str, reason: str = "0") -> fix.Message:
        m = fix42.BusinessMessageReject()
        s = t._s
        s(m, 45, msg.getHeader().getField(34))
        s(m, 372, msg.getHeader().getField(35))
        s(m, 380, reason if int(reason) <= MAX_BUSINESS_REJECT_REASON_42 else "0")
        s(m, 58, t._ascii(text))
        return m


Dialect = type[Fix44] | type[Fix42]
DIALECTS: dict[str, Dialect] = {BEGIN_STRING_44: Fix44, BEGIN_STRING_42: Fix42}


def for_begin_string(begin_string: str) -> Dialect:
    try:
        return DIALECTS[begin_string]
    except KeyError:
        raise ValueError(f"BeginString {begin_string!r} is not supported; expected one of {sorted(DIALECTS)}") from None


def for_session(session_id: str) -> Dialect:
    """QuickFIX SessionID string 'FIX.4.2:FIXBRIDGE->CLIENT42' -> Fix42."""
    return for_begin_string(session_id.split(":", 1)[0])
