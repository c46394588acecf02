"""OrderMassStatusRequest (AF) and OrderMassCancelRequest (q) of FIX 4.4: what they ask for, and
the OrderMassCancelReport (r) that answers a mass cancel. (FIX 4.2 has neither message.)

Scopes the bridge answers: all the session's orders (MassStatusReqType / MassCancelRequestType 7)
or those of one security (1, Symbol required); Side (54) narrows either. Any other scope is an
IncorrectTagValue: QuickFIX answers it with a session Reject naming the tag, and nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

import quickfix as fix
import quickfix44 as fix44

from fixbridge.fix import translate as t
from fixbridge.orders.model import ExecutionReport, Order, OrdStatus, OrdType, Side, TimeInForce

SCOPE_SECURITY, SCOPE_ALL = "1", "7"
TAG_MASS_STATUS_REQ_TYPE, TAG_MASS_CANCEL_REQUEST_TYPE = 585, 530
MASS_CANCEL_REJECTED = "0"  # MassCancelResponse 531


@dataclass(frozen=True)
class MassScope:
    """Which of a session's orders a mass request names."""
    kind: str                 # SCOPE_ALL or SCOPE_SECURITY, as sent
    symbol: str | None = None
    side: Side | None = None


def _scope(msg: fix.Message, type_tag: int) -> MassScope:
    kind = msg.getField(type_tag)
    if kind not in (SCOPE_ALL, SCOPE_SECURITY):
        raise fix.IncorrectTagValue(type_tag)  # QuickFIX: session Reject 373=5, the tag named
    symbol = t.get(msg, 55) if kind == SCOPE_SECURITY else None
    if kind == SCOPE_SECURITY and not symbol:
        raise fix.RequiredTagMissing(55)
    side_raw = t.get(msg, 54)
    if side_raw is not None and side_raw not in t.SIDES:
        raise fix.IncorrectTagValue(54)
    return MassScope(kind, symbol, t.SIDES[side_raw] if side_raw else None)


def mass_status_scope(msg: fix.Message) -> tuple[str, MassScope]:
    """AF -> (MassStatusReqID, scope)."""
    return msg.getField(584), _scope(msg, TAG_MASS_STATUS_REQ_TYPE)


def mass_cancel_scope(msg: fix.Message) -> tuple[str, MassScope]:
    """q -> (ClOrdID, scope)."""
    return msg.getField(11), _scope(msg, TAG_MASS_CANCEL_REQUEST_TYPE)


def status_reports(req_id: str, reports: list[ExecutionReport], scope: MassScope,
                   empty: ExecutionReport) -> list[ExecutionReport]:
    """The answer to a mass status request: each working order's status (150=I) with
    MassStatusReqID and TotNumReports, LastRptRequested=Y on the last. No working order: the one
    report `empty` (39=8, Text saying so, TotNumReports 0) — the same shape as the bridge's answer
    to a status request for an unknown order, so the client needs no new case, and 911=0 makes
    'nothing matched' unambiguous."""
    if not reports:
        return [replace(empty, mass_status_req_id=req_id, total_reports=0, last_report=True)]
    n = len(reports)
    return [replace(er, mass_status_req_id=req_id, total_reports=n, last_report=i == n - 1)
            for i, er in enumerate(reports)]


def no_working_orders(session_id: str, scope: MassScope) -> Order:
    """The order an empty mass status answer describes: none (OrderID NONE, symbol as asked)."""
    return Order(session_id=session_id, cl_ord_id="NONE", symbol=scope.symbol or "[N/A]",
                 side=scope.side or Side.BUY, ord_type=OrdType.MARKET, time_in_force=TimeInForce.IOC,
                 order_id="NONE", status=OrdStatus.REJECTED)


def mass_cancel_report(cl_ord_id: str, scope: MassScope, affected: list[Order], *,
                       rejected: str | None = None) -> fix.Message:
    """35=r: MassCancelResponse 531 = the scope (or 0 with MassCancelRejectReason 99 and Text),
    TotalAffectedOrders 533 and each order tried in AffectedOrdGrp (OrigClOrdID, AffectedOrderID)."""
    m = fix44.OrderMassCancelReport()
    s = t._s
    s(m, 11, cl_ord_id)
    s(m, 37, f"MC-{cl_ord_id}")
    s(m, 530, scope.kind)
    s(m, 531, MASS_CANCEL_REJECTED if rejected else scope.kind)
    if rejected:
        s(m, 532, "99")
    s(m, 533, len(affected))
    for o in affected:
        g = fix44.OrderMassCancelReport.NoAffectedOrders()
        s(g, 41, o.cl_ord_id)
        s(g, 535, o.order_id)
        m.addGroup(g)
    s(m, 55, scope.symbol)
    s(m, 54, t.SIDE_CODE[scope.side] if scope.side else None)
    s(m, 60, t.utc_timestamp(datetime.now(timezone.utc)))
    s(m, 58, t._ascii(rejected))
    return m

