"""The QuickFIX Application of the acceptor: FIX in, domain out, and back.

QuickFIX calls these methods on its own native thread. They must be short and must never let
a plain Python exception escape (that ends the process): each callback journals, translates,
hands the order to the engine, and turns anything unexpected into a reject.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timezone

import quickfix as fix
import structlog

from fixbridge.config.sessions import drop_copy_targets
from fixbridge.engine.execution import ExecutionEngine, session_counterparty
from fixbridge.engine.positions import positions
from fixbridge.fix import dialects, mass, refdata
from fixbridge.fix import translate as t
from fixbridge.fix.cancel_on_disconnect import CancelOnDisconnect
from fixbridge.fix.guard import LogonGuard, LogonRejected, Throttle
from fixbridge.fix.market_data import MarketDataDesk
from fixbridge.fix.redact import scrub_dirs
from fixbridge.journal import Journal
from fixbridge.orders.model import ExecutionReport, OrdStatus, RejectReason

log = structlog.get_logger(__name__)
# Answered from refdata.py in FIX 4.4's shape: SecurityList, SecurityDefinition, RequestForPositions.
REFERENCE_DATA = (fix.MsgType_SecurityListRequest, fix.MsgType_SecurityDefinitionRequest, fix.MsgType_RequestForPositions)

MARKET_DATA_UPDATES = ("W", "X")  # snapshots and increments: many, and not orders


class BridgeApplication(fix.Application):
    def __init__(self, engine: ExecutionEngine, journal: Journal, market_data: MarketDataDesk | None = None) -> None:
        super().__init__()
        self.engine, self.journal = engine, journal
        self.market_data = market_data  # MarketDataRequest (V); None: unsupported
        self.metrics = engine.metrics
        self.sessions: dict[str, fix.SessionID] = {}
        self.throttle = Throttle(engine.sessions)             # max_messages_per_second
        self.logon_guard = LogonGuard(engine.sessions, journal)  # password_hash, lockout
        self.secret_dirs: list = []  # QuickFIX log dirs to mask Password (554) in (set by FixAcceptor)
        self.closing = False  # set by FixAcceptor.stop: the bridge is stopping, no session may log on
        self.cancel_on_disconnect = CancelOnDisconnect(engine.sessions, engine.mass_cancel)

    # ---- session events ----------------------------------------------------------------------
    def onCreate(self, sessionID: fix.SessionID) -> None:
        self.sessions[sessionID.toString()] = sessionID

    def onLogon(self, sessionID: fix.SessionID) -> None:
        log.info("logon", session=sessionID.toString())
        self.cancel_on_disconnect.logged_on(sessionID.toString())

    def onLogout(self, sessionID: fix.SessionID) -> None:
        log.info("logout", session=sessionID.toString())
        if self.market_data is not None:
            self.market_data.logged_out(sessionID.toString())
        self._scrub()
        self.cancel_on_disconnect.logged_out(sessionID.toString())

    def _scrub(self) -> None:
        try:
            scrub_dirs(self.secret_dirs)
        except Exception:
            log.exception("masking passwords in the QuickFIX log failed")

    def toAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        if self.closing:  # the journal is closing: a refused Logon's Logout is not journaled
            return
        try:  # session-level Rejects and Logouts say why a message or a session was refused: journal them
            msg_type = message.getHeader().getField(35)
            self.metrics.message("out", msg_type)
            if msg_type in ("3", "5"):
                self._journal(message, sessionID, "out", defer=True)
        except Exception:
            log.exception("journaling an outbound admin message failed")

    def fromAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        self.metrics.message("in", message.getHeader().getField(35))
        if message.getHeader().getField(35) != fix.MsgType_Logon:
            return
        self._scrub()  # QuickFIX logged the Logon as it arrived: mask its Password (554) first
        if self.closing:
            raise fix.RejectLogon("the bridge is stopping")
        try:
            self.logon_guard.check(sessionID.toString(), t.get(message, 553), t.get(message, 554))
        except LogonRejected as e:
            raise fix.RejectLogon(str(e))
        except Exception as e:  # fail closed: no check, no logon
            log.exception("logon check failed", session=sessionID.toString())
            raise fix.RejectLogon(f"internal error ({type(e).__name__})")

    # ---- application messages ----------------------------------------------------------------
    def toApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        h = message.getHeader()
        try:
            resent_quote = h.getField(35) in MARKET_DATA_UPDATES and h.isSetField(43) and h.getField(43) == "Y"
        except Exception:
            resent_quote = False
        if resent_quote:
            raise fix.DoNotSend()  # a resent quote is stale: QuickFIX gap-fills it instead
        try:  # the reason is journaled already; the copy of the wire message follows (batch.py)
            msg_type = h.getField(35)
            self.metrics.message("out", msg_type)
            if msg_type not in MARKET_DATA_UPDATES:  # quotes are not journaled (docs/design.md)
                self._journal(message, sessionID, "out", defer=True)
        except Exception:
            log.exception("journaling an outbound message failed")

    def fromApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        sid = sessionID.toString()
        msg_type = message.getHeader().getField(35)
        self.metrics.message("in", msg_type)
        allowed, state = self.throttle.allow(sid)  # a cheap token bucket, before anything else
        if not allowed:
            return self._throttled(message, sessionID, msg_type, state)
        refusal = None
        try:
            # The message and what it starts (the order row) go to the journal's group commit;
            # reports and the hand-off to the engine wait for it, this thread does not. QuickFIX
            # counts the message as received when we return, perhaps before the commit: after a
            # crash, the acceptor asks again for what the journal lacks (rewind_inbound below).
            with self.journal.batch():
                self._journal(message, sessionID, "in")
                refusal = self._dispatch(message, sessionID, sid, msg_type)
        except Exception as e:  # never let a plain exception reach QuickFIX's thread
            log.exception("fromApp failed", session=sid, msg_type=msg_type)
            self._business_reject(message, sessionID, f"Internal error handling {msg_type}: {type(e).__name__}")
        if refusal is not None:
            raise refusal  # QuickFIX answers these with the right reject

    def _dispatch(self, message: fix.Message, sessionID: fix.SessionID, sid: str, msg_type: str) -> Exception | None:
        """Handle one application message; a QuickFIX refusal is returned, to be raised once the
        inbound message is journaled."""
        try:
            if self._is_drop_copy(sid):  # it listens only: 380=6 Not authorized
                self._business_reject(message, sessionID, "This is a drop copy session: it receives copies "
                                      "of ExecutionReports and cannot send orders or requests", "6")
            elif msg_type == fix.MsgType_NewOrderSingle:
                self.engine.wait_for_room()
                self._new_order(message, sid)
            elif msg_type == fix.MsgType_OrderCancelRequest:
                self.journal.flush()  # the order it names may still be in the group commit
                self.engine.cancel(sid, message.getField(11), message.getField(41))
            elif msg_type == fix.MsgType_OrderCancelReplaceRequest:
                self.journal.flush()
                try:
                    amend = t.parse_amend(message)
                except t.ParseRejection as e:
                    self.engine.refuse_amend(sid, message.getField(11), message.getField(41), e.text)
                else:
                    self.engine.amend(sid, message.getField(11), message.getField(41), amend)
            elif msg_type == fix.MsgType_OrderStatusRequest:
                self.journal.flush()
                self.engine.status(sid, message.getField(11), t.get(message, 37), t.get(message, 790))
            elif msg_type in (fix.MsgType_OrderMassStatusRequest, fix.MsgType_OrderMassCancelRequest):
                if not dialects.for_session(sid).has_mass_messages:
                    return fix.UnsupportedMessageType()
                self.journal.flush()  # the orders it names may still be in the group commit
                if msg_type == fix.MsgType_OrderMassStatusRequest:
                    self._mass_status(message, sessionID, sid)
                else:
                    self._mass_cancel(message, sessionID, sid)
            elif msg_type in REFERENCE_DATA and not dialects.for_session(sid).has_reference_data:
                return fix.UnsupportedMessageType()  # 4.2: refdata.py writes FIX 4.4's fields and groups
            elif msg_type == fix.MsgType_SecurityListRequest:
                fix.Session.sendToTarget(refdata.security_list(message, self.engine.spec), sessionID)
            elif msg_type == fix.MsgType_SecurityDefinitionRequest:
                fix.Session.sendToTarget(refdata.security_definition(message, self.engine.spec), sessionID)
            elif msg_type == fix.MsgType_MarketDataRequest and self.market_data is not None:
                self.market_data.request(message, sessionID)
            elif msg_type == fix.MsgType_RequestForPositions:
                # Balances and prices are chain reads: answer from a thread, not QuickFIX's.
                threading.Thread(target=self._positions, args=(fix.Message(message), sessionID), daemon=True).start()
            else:
                return fix.UnsupportedMessageType()
        except (fix.UnsupportedMessageType, fix.FieldNotFound, fix.IncorrectTagValue, fix.IncorrectDataFormat,
                fix.RequiredTagMissing) as e:
            return e
        return None

    def _mass_status(self, message: fix.Message, sessionID: fix.SessionID, sid: str) -> None:
        """AF: one 150=I per working order of the session in scope, 912=Y on the last (or one
        report saying there is none)."""
        req_id, scope = mass.mass_status_scope(message)
        orders = self.engine.working_orders(sid, scope.symbol, scope.side)
        empty = self.engine.status_report(mass.no_working_orders(sid, scope))
        empty = replace(empty, text="No working orders" + (f" for {scope.symbol}" if scope.symbol else ""))
        for er in mass.status_reports(req_id, [self.engine.status_report(o) for o in orders], scope, empty):
            fix.Session.sendToTarget(t.execution_report(er), sessionID)

    def _mass_cancel(self, message: fix.Message, sessionID: fix.SessionID, sid: str) -> None:
        """q: the OrderMassCancelReport (r) naming the orders it tries, then each order's own outcome
        through the engine's cancel path (11 = the mass cancel's ClOrdID, 41 = the order's)."""
        cl_ord_id, scope = mass.mass_cancel_scope(message)
        if scope.symbol and scope.symbol not in self.engine.spec.instruments:
            fix.Session.sendToTarget(mass.mass_cancel_report(cl_ord_id, scope, [], rejected=f"Unknown symbol {scope.symbol!r}"),
                                     sessionID)
            return
        orders = self.engine.working_orders(sid, scope.symbol, scope.side)
        fix.Session.sendToTarget(mass.mass_cancel_report(cl_ord_id, scope, orders), sessionID)
        with self.journal.batch():
            for o in orders:
                self.engine.cancel(sid, cl_ord_id, o.cl_ord_id)

    def _positions(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        """RequestForPositions: one PositionReport per token a bound wallet holds on chain.
        Account (1) names a wallet bound to the session, or '*' for all of them."""
        cp = self.engine.counterparty(sessionID.toString())
        account = message.getField(1)
        wallets = cp.wallets if account == "*" else [account] if account in cp.wallets else []
        if not wallets:
            fix.Session.sendToTarget(refdata.positions_ack(message, account, 0, "99",
                                                           f"Account {account!r} is not bound to this session"), sessionID)
            return
        try:
            found = positions(self.engine.markets, wallets)
        except Exception as e:
            log.exception("positions failed")
            fix.Session.sendToTarget(refdata.positions_ack(message, account, 0, "99", f"Cannot read the chain: {type(e).__name__}"),
                                     sessionID)
            return
        fix.Session.sendToTarget(refdata.positions_ack(message, account, len(found), "0" if found else "2"), sessionID)
        day = datetime.now(timezone.utc).date()
        for p in found:
            fix.Session.sendToTarget(refdata.position_report(message, p, len(found), day), sessionID)

    def _new_order(self, message: fix.Message, sid: str) -> None:
        try:
            order = dialects.for_session(sid).parse_new_order(message, sid)
        except t.ParseRejection as r:
            self._reject_unparsed(message, sid, r.reason, r.text)
            return
        h = message.getHeader()
        resent = any(h.isSetField(tag) and h.getField(tag) == "Y" for tag in (43, 97))  # PossDupFlag, PossResend
        self.engine.submit(order, possible_resend=resent)

    def _reject_unparsed(self, message: fix.Message, sid: str, reason: RejectReason, text: str) -> None:
        """An order the bridge cannot even represent: rejected here, echoing what the client sent."""
        fix.Session.sendToTarget(dialects.for_session(sid).unparsed_reject(message, reason, text), self.sessions[sid])

    def _business_reject(self, message: fix.Message, sessionID: fix.SessionID, text: str, reason: str = "0") -> None:
        try:
            dialect = dialects.for_session(sessionID.toString())
            fix.Session.sendToTarget(dialect.business_message_reject(message, text, reason), sessionID)
        except Exception:
            log.exception("could not send BusinessMessageReject")

    def _throttled(self, message: fix.Message, sessionID: fix.SessionID, msg_type: str, state) -> None:
        """Over the session's message rate: journal the message, reject it, process nothing."""
        sid = sessionID.toString()
        text = self.throttle.limit_text(sid)
        try:
            self._journal(message, sessionID, "in")
            if not state.throttled:  # one security event per spell, not one per message of a flood
                state.throttled = True
                self.journal.record_security_event("throttle", sid, text, detail={
                    "msg_type": msg_type, "seq_num": message.getHeader().getField(34), "dropped_so_far": state.dropped})
                log.warning("session throttled", session=sid)
        except Exception:
            log.exception("journaling a throttled message failed", session=sid)
        try:
            if msg_type == fix.MsgType_NewOrderSingle and message.isSetField(11):
                self._reject_unparsed(message, sid, RejectReason.OTHER, text)
            else:
                self._business_reject(message, sessionID, text)
        except Exception:
            log.exception("rejecting a throttled message failed", session=sid)

    def rewind_inbound(self, sessionID: fix.SessionID) -> None:
        """After a crash: make QuickFIX expect again every inbound message after the newest one the
        journal holds. QuickFIX counted them, but their rows may have died in the group commit; the
        counterparty resends them (PossDupFlag=Y) on the ResendRequest this gap causes, and what
        the journal already has is answered by its status (see ExecutionEngine._not_journaled).
        Nothing un-journaled was acted on: reports and transactions wait for the commit."""
        session = fix.Session.lookupSession(sessionID)
        sid = sessionID.toString()
        last = self.journal.last_inbound_seq_num(sid)
        if session is None or last is None:
            return  # nothing journaled for it: a new journal must not replay a store's history
        expected = session.getExpectedTargetNum()
        if last + 1 < expected:
            log.warning("inbound sequence rewound to what the journal holds", session=sid,
                        expected=expected, next=last + 1)
            session.setNextTargetMsgSeqNum(last + 1)

    # ---- what the engine calls (Reporter) ----------------------------------------------------
    def execution_report(self, session_id: str, er: ExecutionReport) -> None:
        fix.Session.sendToTarget(dialects.for_session(session_id).execution_report(er), self.sessions[session_id])
        self._drop_copies(session_id, er)

    # ---- drop copy (sessions with drop_copy_for in counterparties.toml) ----------------------
    def _is_drop_copy(self, sid: str) -> bool:
        cp = self.engine.sessions.sessions.get(session_counterparty(sid))
        return cp is not None and bool(cp.drop_copy_for)

    def _drop_copies(self, session_id: str, er: ExecutionReport) -> None:
        """The same report, CopyMsgIndicator 797=Y and DeliverToCompID 128 = the original recipient, to
        every drop copy session of ``session_id`` (stored and resent by QuickFIX if it is away)."""
        comp = session_counterparty(session_id)
        for target in drop_copy_targets(self.engine.sessions, comp):
            try:
                dest = next((s for k, s in self.sessions.items() if session_counterparty(k) == target), None)
                if dest is None:
                    continue
                fix.Session.sendToTarget(dialects.for_session(dest.toString()).drop_copy(er, comp), dest)
            except Exception:  # a copy must never cost the client its report
                log.exception("drop copy failed", session=session_id, drop_copy=target)

    def session_ids(self) -> list[str]:
        return list(self.sessions)

    def settlement_report(self, session_id: str, report) -> None:
        if not dialects.for_session(session_id).has_reference_data:  # FIX 4.2 has no PositionReport
            log.info("settlement not reported to a FIX 4.2 session (no PositionReport in 4.2)", session=session_id,
                     symbol=report.symbol)
            return
        fix.Session.sendToTarget(refdata.settlement_report(report), self.sessions[session_id])

    def cancel_reject(self, session_id: str, *, cl_ord_id: str, orig_cl_ord_id: str, order_id: str,
                      ord_status: OrdStatus, too_late: bool, text: str, replace: bool = False) -> None:
        msg = dialects.for_session(session_id).order_cancel_reject(order_id=order_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
                                    ord_status=ord_status, too_late=too_late, text=text, replace=replace)
        fix.Session.sendToTarget(msg, self.sessions[session_id])

    def _journal(self, message: fix.Message, sessionID: fix.SessionID, direction: str, defer: bool = False) -> None:
        h = message.getHeader()
        self.journal.record_fix_message(
            defer=defer,
            session_id=sessionID.toString(), direction=direction, msg_type=h.getField(35),
            seq_num=int(h.getField(34)) if h.isSetField(34) else None, raw=t.raw(message),
            cl_ord_id=t.get(message, 11), order_id=t.get(message, 37), exec_id=t.get(message, 17),
            exec_type=t.get(message, 150), ord_status=t.get(message, 39))
