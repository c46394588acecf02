"""The QuickFIX Application of the acceptor: FIX in, domain out, and back.

QuickFIX calls these methods on its own native thread. They must be short and must never let
a plain Python exception escape (that ends the process): each callback journals, translates,
hands the order to the engine, and turns anything unexpected into a reject.
"""
from __future__ import annotations

from datetime import datetime, timezone

import quickfix as fix
import structlog

from fixbridge.engine.execution import ExecutionEngine
from fixbridge.fix import translate as t
from fixbridge.journal import Journal
from fixbridge.orders.lifecycle import ORD_STATUS_CODE
from fixbridge.orders.model import ExecutionReport, OrdStatus, RejectReason

log = structlog.get_logger(__name__)


class BridgeApplication(fix.Application):
    def __init__(self, engine: ExecutionEngine, journal: Journal) -> None:
        super().__init__()
        self.engine, self.journal = engine, journal
        self.sessions: dict[str, fix.SessionID] = {}

    # ---- session events ----------------------------------------------------------------------
    def onCreate(self, sessionID: fix.SessionID) -> None:
        self.sessions[sessionID.toString()] = sessionID

    def onLogon(self, sessionID: fix.SessionID) -> None:
        log.info("logon", session=sessionID.toString())

    def onLogout(self, sessionID: fix.SessionID) -> None:
        log.info("logout", session=sessionID.toString())

    def toAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        pass

    def fromAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        pass

    # ---- application messages ----------------------------------------------------------------
    def toApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            self._journal(message, sessionID, "out")
        except Exception:
            log.exception("journaling an outbound message failed")

    def fromApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        sid = sessionID.toString()
        msg_type = message.getHeader().getField(35)
        try:
            self._journal(message, sessionID, "in")
            if msg_type == fix.MsgType_NewOrderSingle:
                self._new_order(message, sid)
            elif msg_type == fix.MsgType_OrderCancelRequest:
                self.engine.cancel(sid, message.getField(11), message.getField(41))
            elif msg_type == fix.MsgType_OrderStatusRequest:
                self.engine.status(sid, message.getField(11), t.get(message, 37), t.get(message, 790))
            else:
                raise fix.UnsupportedMessageType()
        except (fix.UnsupportedMessageType, fix.FieldNotFound, fix.IncorrectTagValue, fix.IncorrectDataFormat):
            raise  # QuickFIX answers these with the right reject
        except Exception as e:  # never let a plain exception reach QuickFIX's thread
            log.exception("fromApp failed", session=sid, msg_type=msg_type)
            self._business_reject(message, sessionID, f"Internal error handling {msg_type}: {type(e).__name__}")

    def _new_order(self, message: fix.Message, sid: str) -> None:
        try:
            order = t.parse_new_order(message, sid)
        except t.ParseRejection as r:
            self._reject_unparsed(message, sid, r.reason, r.text)
            return
        self.engine.submit(order)

    def _reject_unparsed(self, message: fix.Message, sid: str, reason: RejectReason, text: str) -> None:
        """An order the bridge cannot even represent: rejected here, echoing what the client sent."""
        er = fix.Message()
        er.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
        for tag in (11, 55, 54, 38, 152, 44, 1):
            if message.isSetField(tag):
                er.setField(fix.StringField(tag, message.getField(tag)))
        for tag, value in ((37, "NONE"), (17, f"REJ-{message.getHeader().getField(34)}-{message.getField(11)}"),
                           (150, "8"), (39, ORD_STATUS_CODE[OrdStatus.REJECTED]), (103, str(int(reason))),
                           (14, "0"), (151, "0"), (6, "0"), (58, text),
                           (60, t.utc_timestamp(datetime.now(timezone.utc)))):
            er.setField(fix.StringField(tag, value))
        fix.Session.sendToTarget(er, self.sessions[sid])

    def _business_reject(self, message: fix.Message, sessionID: fix.SessionID, text: str) -> None:
        try:
            r = fix.Message()
            r.getHeader().setField(fix.MsgType(fix.MsgType_BusinessMessageReject))
            r.setField(fix.StringField(45, message.getHeader().getField(34)))
            r.setField(fix.StringField(372, message.getHeader().getField(35)))
            r.setField(fix.StringField(380, "0"))  # Other
            r.setField(fix.StringField(58, text))
            fix.Session.sendToTarget(r, sessionID)
        except Exception:
            log.exception("could not send BusinessMessageReject")

    # ---- what the engine calls (Reporter) ----------------------------------------------------
    def execution_report(self, session_id: str, er: ExecutionReport) -> None:
        fix.Session.sendToTarget(t.execution_report(er), self.sessions[session_id])

    def cancel_reject(self, session_id: str, *, cl_ord_id: str, orig_cl_ord_id: str, order_id: str,
                      ord_status: OrdStatus, too_late: bool, text: str) -> None:
        msg = t.order_cancel_reject(order_id=order_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
                                    ord_status=ord_status, too_late=too_late, text=text)
        fix.Session.sendToTarget(msg, self.sessions[session_id])

    def _journal(self, message: fix.Message, sessionID: fix.SessionID, direction: str) -> None:
        h = message.getHeader()
        self.journal.record_fix_message(
            session_id=sessionID.toString(), direction=direction, msg_type=h.getField(35),
            seq_num=int(h.getField(34)) if h.isSetField(34) else None, raw=t.raw(message),
            cl_ord_id=t.get(message, 11), order_id=t.get(message, 37), exec_id=t.get(message, 17),
            exec_type=t.get(message, 150), ord_status=t.get(message, 39))
