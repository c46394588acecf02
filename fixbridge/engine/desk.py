"""The order desk: the one way the engine moves an order from one state to the next and tells
the client. Every component that ends, fills or acknowledges an order does it here: the
transition is journaled (with its reason) and its report leaves after that commit. Also the
answers read from the journal (OrderStatusRequest, a report a crash swallowed)."""
from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import structlog

from fixbridge.chain.rpc import describe
from fixbridge.config import Counterparty, SessionsConfig, Spec
from fixbridge.engine.faults import crash_point
from fixbridge.journal import Journal
from fixbridge.ops.metrics import BridgeMetrics
from fixbridge.orders import lifecycle
from fixbridge.orders.model import ExecEvent, ExecutionReport, Order, OrdStatus, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.resting import RESTS
from fixbridge.orders.validation import Rejection

if TYPE_CHECKING:
    from fixbridge.engine.flights import InFlightBook
    from fixbridge.engine.planning import Plan
    from fixbridge.engine.resting import RestingShelf
    from fixbridge.engine.settlement import SettlementReport

log = structlog.get_logger(__name__)

KEEP_FINISHED = 10_000  # recent outcomes kept in memory (see OrderDesk.finished)


class Reporter(Protocol):
    """The FIX edge, as the engine sees it."""

    def execution_report(self, session_id: str, er: ExecutionReport) -> None: ...

    def cancel_reject(self, session_id: str, *, cl_ord_id: str, orig_cl_ord_id: str, order_id: str,
                      ord_status: OrdStatus, too_late: bool, text: str, replace: bool = False) -> None: ...

    def settlement_report(self, session_id: str, report: "SettlementReport") -> None: ...

    def session_ids(self) -> list[str]: ...


def session_counterparty(session_id: str) -> str:
    """QuickFIX SessionID string 'FIX.4.4:FIXBRIDGE->CLIENT1' -> 'CLIENT1'."""
    return session_id.rsplit("->", 1)[-1]


def order_from_row(row) -> Order:
    return Order(session_id=row.session_id, cl_ord_id=row.cl_ord_id, symbol=row.symbol, side=Side(row.side),
                 ord_type=OrdType(row.ord_type), time_in_force=TimeInForce(row.time_in_force),
                 order_qty=row.order_qty, cash_order_qty=row.cash_order_qty, price=row.price, account=row.account,
                 expire_time=row.expire_time, ex_destination=row.ex_destination, order_id=row.order_id,
                 status=row.status, cum_qty=row.cum_qty or Decimal(0), avg_px=row.avg_px or Decimal(0),
                 text=row.text, venue=row.venue, wallet=row.wallet, created_at=row.created_at,
                 stop_px=row.stop_px, expire_at=row.expire_at, resting=row.resting, triggered=row.triggered)


def _rej(code: int | None) -> RejectReason | None:
    return RejectReason(code) if code is not None else None


class OrderDesk:
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, metrics: BridgeMetrics,
                 book: "InFlightBook", shelf: "RestingShelf | None" = None) -> None:
        self.spec, self.sessions, self.journal, self.metrics, self.book = spec, sessions, journal, metrics, book
        self.shelf = shelf  # resting orders: a slice that ends unfilled puts its order back here
        self.reporter: Reporter | None = None  # set at start
        self._exec_seq = itertools.count(1)
        self._cancel_requests: dict[str, tuple[str, str]] = {}  # order_id -> (session_id, cancel ClOrdID)
        # Orders an intake worker has taken up: the journal may not show their progress yet (its
        # writes are committed by the writer thread), so a second "new" for one is ignored.
        self.taken: set[str] = set()
        # Outcomes of the last orders to finish, for the moments before the journal shows them.
        self.finished: OrderedDict[str, OrdStatus] = OrderedDict()

    # ---- sessions ----------------------------------------------------------------------------
    def counterparty(self, session_id: str) -> Counterparty:
        return self.sessions.sessions[session_counterparty(session_id)]

    def session_ids_of(self, comp_id: str) -> list[str]:
        return [sid for sid in (self.reporter.session_ids() if self.reporter else []) if session_counterparty(sid) == comp_id]

    # ---- cancels asked before anything was sent ------------------------------------------------
    def hold_cancel(self, order_id: str, session_id: str, cancel_cl_ord_id: str) -> None:
        """The order's turn cancels it, and answers this request."""
        self._cancel_requests[order_id] = (session_id, cancel_cl_ord_id)

    def take_cancel(self, order: Order, plan: "Plan | None" = None) -> bool:
        """A held cancel ends the order now. An order still PendingNew (it waits for its approval)
        is acknowledged first: a cancel answers an accepted order."""
        req = self._cancel_requests.pop(order.order_id, None)
        if req is None:
            return False
        if order.status is OrdStatus.PENDING_NEW and plan is not None:
            self.accept(order, plan)
        self.transition(order, OrdStatus.CANCELED, f"canceled by request {req[1] or 'of the bridge'} before any transaction",
                        event=ExecEvent.CANCELED, cancel_cl_ord_id=req[1], leaves=Decimal(0))
        return True

    # ---- transitions ---------------------------------------------------------------------------
    def accept(self, order: Order, plan: "Plan", why: str = "") -> None:
        """The New: checked, funded, approved (or its approval mined)."""
        self.transition(order, OrdStatus.NEW, f"accepted: {plan.venue.name} {plan.intent.exact.value} "
                        f"amount {plan.intent.amount} bound {plan.intent.bound}{why}", event=ExecEvent.NEW,
                        venue=plan.venue.name, wallet=plan.wallet.wallet.name)

    def end_without_fill(self, order: Order, status: OrdStatus, text: str, **proof) -> None:
        """An order none of which will trade: Rejected while its New has not gone out (it waits for
        its approval; a reject cannot follow a New), else ended with `status`."""
        if order.status is OrdStatus.PENDING_NEW:
            return self.transition(order, OrdStatus.REJECTED, text, event=ExecEvent.REJECTED, rej=RejectReason.OTHER,
                                   text=text, leaves=Decimal(0), **proof)
        self.finish_no_fill(order, status, text, **proof)

    def reject(self, order: Order, rej: Rejection) -> None:
        self.transition(order, OrdStatus.REJECTED, rej.text, event=ExecEvent.REJECTED, rej=rej.reason, text=rej.text,
                        leaves=Decimal(0))

    def finish_no_fill(self, order: Order, status: OrdStatus, text: str, **proof) -> None:
        """The order's swap ended without (more) fills: the order ends, unless it rests (Day, GTC,
        GTD, stops): then only the slice it fired ended, and the rest waits again on the shelf."""
        if self.shelf is not None and self.shelf.rests(order) and not order.status.terminal \
                and order.status not in (OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL):
            return self.shelf.rest_again(order, text)  # journaled there: "rests again: <text>"
        self.transition(order, status, text, event=lifecycle.EVENT_FOR[status], text=text,
                        leaves=Decimal(0), **proof)

    def node_failed(self, order: Order, stage: str, e: Exception) -> None:
        """The node failed (not a revert) while the order was being decided: nothing was signed or
        sent, and the order ends here with a report naming the node's error — Rejected before the
        New went out, Canceled after it (a cancel the client asked for meanwhile is answered)."""
        why = f"node error while {stage}: {describe(e)}; nothing was sent"
        log.warning("order ended by a node error", order_id=order.order_id, stage=stage, error=describe(e))
        if order.status is OrdStatus.PENDING_NEW:
            return self.reject(order, Rejection(RejectReason.OTHER, f"Rejected: {why}"))
        if not self.take_cancel(order):
            self.finish_no_fill(order, OrdStatus.CANCELED, f"Not sent: {why}")

    def end_unsent(self, order_id: str, order: Order | None, e: Exception) -> None:
        """An order whose processing failed for any reason still gets its terminal report, unless a
        transaction was tracked for it (then the chain decides)."""
        try:
            with self.book.lock:
                if order is None:
                    row = self.journal.get_order(order_id)
                    order = order_from_row(row) if row is not None else None
                if order is None or order.status.terminal or self.book.get(order_id) is not None:
                    return
                self.node_failed(order, "processing the order", e)
        except Exception:
            log.exception("order could not be ended", order_id=order_id)

    def transition(self, order: Order, status: OrdStatus, reason: str, *, event: ExecEvent, leaves: Decimal | None = None,
                   rej: RejectReason | None = None, text: str | None = None, venue: str | None = None,
                   wallet: str | None = None, trade_cancel: bool = False, detail: dict | None = None,
                   **report) -> None:
        lifecycle.check(order.status, status, trade_cancel=trade_cancel)
        if leaves is None:
            leaves = (order.order_qty - order.cum_qty) if order.order_qty is not None else Decimal(0)
        previous = order.status
        order.status, order.text = status, text or order.text
        order.venue, order.wallet = venue or order.venue, wallet or order.wallet
        self.journal.transition(order.order_id, status, reason, cum_qty=order.cum_qty, leaves_qty=leaves,
                                avg_px=order.avg_px, text=text, rej_reason=int(rej) if rej is not None else None,
                                venue=venue, wallet=wallet, from_status=previous, detail=detail)
        if status.terminal:
            self.taken.discard(order.order_id)
            self.finished[order.order_id] = status
            while len(self.finished) > KEEP_FINISHED:
                self.finished.popitem(last=False)
            self.journal.after_commit(lambda: crash_point("before_report"))
        elif status is OrdStatus.NEW:
            self.journal.after_commit(lambda: crash_point("before_ack"))
        self.send(order.session_id, self.er(order, event, leaves=leaves, rej=rej, text=text, **report),
                  received=order.created_at if previous is OrdStatus.PENDING_NEW or event is ExecEvent.TRADE else None)

    # ---- reports -------------------------------------------------------------------------------
    def er(self, order: Order, event: ExecEvent, *, order_id: str | None = None, ord_status: OrdStatus | None = None,
           leaves: Decimal | None = None, rej: RejectReason | None = None, text: str | None = None,
           exec_id: str | None = None, last_qty: Decimal | None = None, last_px: Decimal | None = None,
           fee: Decimal | None = None, tx_hash: str | None = None, block: int | None = None,
           chain_id: int | None = None, req_id: str | None = None, cancel_cl_ord_id: str | None = None,
           exec_ref_id: str | None = None, orig_cl_ord_id: str | None = None) -> ExecutionReport:
        oid = order_id or order.order_id
        status = ord_status or order.status
        if leaves is None:
            leaves = Decimal(0) if status.terminal or order.order_qty is None else order.order_qty - order.cum_qty
        if chain_id is None and tx_hash is not None:
            chain_id = self.spec.chain_of(self.spec.instruments[order.symbol]).chain_id
        return ExecutionReport(
            order_id=oid, cl_ord_id=cancel_cl_ord_id or order.cl_ord_id,
            orig_cl_ord_id=order.cl_ord_id if cancel_cl_ord_id else orig_cl_ord_id,
            exec_id=exec_id or self._exec_id(oid), event=event, ord_status=status, side=order.side,
            symbol=order.symbol, order_qty=order.order_qty, cash_order_qty=order.cash_order_qty, price=order.price,
            cum_qty=order.cum_qty, leaves_qty=leaves, avg_px=order.avg_px, last_qty=last_qty, last_px=last_px,
            text=text, rej_reason=rej, fee_eth=fee, tx_hash=tx_hash, block_number=block, chain_id=chain_id,
            venue=order.venue, ord_status_req_id=req_id, account=order.account, exec_ref_id=exec_ref_id,
            transact_time=datetime.now(timezone.utc),
            **(dict(time_in_force=order.time_in_force, stop_px=order.stop_px, expire_time=order.expire_at)
               if order.resting or order.stop_px is not None or order.time_in_force in RESTS else {}))

    def _exec_id(self, order_id: str) -> str:
        return f"{order_id}-{int(time.time() * 1000)}-{next(self._exec_seq)}"  # count() is atomic: no lock

    def send(self, session_id: str, er: ExecutionReport, received: datetime | None = None) -> None:
        """Reports leave once the journal rows that explain them are committed. `received`: when
        the order came in, for the ack and fill latency metrics (measured as the report leaves)."""
        if self.reporter is not None:
            reporter, reported = self.reporter, self.metrics.reported
            self.journal.after_commit(lambda: (reporter.execution_report(session_id, er), reported(er, received)))

    def cancel_reject(self, session_id: str, cl_ord_id: str | None, orig: str, order_id: str, status: OrdStatus,
                      too_late: bool, text: str, replace: bool = False) -> None:
        if cl_ord_id is None:  # the bridge's own cancel (on disconnect, a halt): no request to answer
            return
        if self.reporter is not None:
            reporter = self.reporter
            self.journal.after_commit(lambda: reporter.cancel_reject(
                session_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, order_id=order_id, ord_status=status,
                too_late=too_late, text=text, replace=replace))

    # ---- answers from the journal ----------------------------------------------------------------
    def status(self, session_id: str, cl_ord_id: str, order_id: str | None, req_id: str | None,
               event: ExecEvent | None = ExecEvent.ORDER_STATUS) -> None:
        """Answer an OrderStatusRequest (150=I) from the journal; with event=None, re-send the
        order's outcome report (150 by its status) after a crash swallowed it."""
        row = self.journal.get_order(order_id) if order_id else None
        row = row or self.journal.find_order(session_id, cl_ord_id)
        if row is None or row.session_id != session_id:
            probe = Order(session_id=session_id, cl_ord_id=cl_ord_id, symbol="[N/A]", side=Side.BUY,
                          ord_type=OrdType.MARKET, time_in_force=TimeInForce.IOC)
            self.send(session_id, self.er(probe, ExecEvent.ORDER_STATUS, order_id=order_id or "NONE", ord_status=OrdStatus.REJECTED,
                                          rej=RejectReason.UNKNOWN_ORDER, text="Unknown order", req_id=req_id))
            return
        order = order_from_row(row)
        fills = self.journal.fills_for(row.order_id)
        last = fills[-1] if fills else None
        proof = dict(tx_hash=last.tx_hash if last else None, block=last.block_number if last else None)
        if event is None:
            event = lifecycle.EVENT_FOR[order.status]
            if last is not None and order.status is OrdStatus.FILLED:
                proof.update(exec_id=last.exec_id, last_qty=last.last_qty, last_px=last.last_px, fee=last.fee_eth)
        self.send(session_id, self.er(order, event, req_id=req_id, text=row.text, rej=_rej(row.rej_reason),
                                      **proof))

    def resend_new(self, row) -> None:
        """The New as it went out when the order was accepted: nothing filled yet, all of it open."""
        order = order_from_row(row)
        order.cum_qty, order.avg_px = Decimal(0), Decimal(0)
        self.send(row.session_id, self.er(order, ExecEvent.NEW, ord_status=OrdStatus.NEW, text=None))
