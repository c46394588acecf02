"""The execution engine: takes accepted orders from the FIX edge and carries each one to a
terminal state on chain, journaling every step before it happens.

A façade over components, each with its dependencies given in its constructor (see docs/design.md):
- `OrderDesk` (desk.py): every transition of an order and its report;
- `InFlightBook` (flights.py): transactions in flight, by order and hash, and the funds they hold;
- `Planner` (planning.py): venue, wallet and the swap's bound, reads only;
- `Intake` (intake.py): one worker per wallet, from the checks to the New and the signature;
- `Approver` (approvals.py): an approval sent ahead of its swap, no wait for its receipt;
- `Submission` (submission.py): simulate, sign, write-ahead, broadcast;
- `Confirmer` (confirmation.py): receipts, confirmations, fills, reorgs;
- `Resender` (resending.py): stuck, dropped, unanswered, past the deadline, nonce passed, gap no-ops;
- `OptionSettlement` (settlement.py): redeem and release at expiry;
- `Recovery` (recovery.py): what the journal left open, at start;
- `RestingShelf`, `RestingBook` (resting.py): Day, GTC, GTD and stop orders waiting for the market;
- `ChainFollower` (following.py) hands the block watchers' callbacks to them.

Threads: QuickFIX's callback thread calls `submit`/`cancel`/`status` (journal and enqueue only);
one intake worker per wallet; one block watcher per chain (chain/watcher.py).
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import structlog

from fixbridge.chain.watcher import BlockListener, Listeners
from fixbridge.config import Counterparty, SessionsConfig, Spec
from fixbridge.engine.approvals import Approver
from fixbridge.engine.confirmation import Confirmer
from fixbridge.engine.desk import OrderDesk, Reporter, order_from_row, session_counterparty
from fixbridge.engine.flights import InFlight, InFlightBook
from fixbridge.engine.following import ChainFollower
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.intake import Intake
from fixbridge.engine.journaling import CANCEL_CL_ORD_ID, WalletLease, WriteAhead
from fixbridge.engine.markets import Markets
from fixbridge.engine.nonce_gaps import NonceGapCloser
from fixbridge.engine.planning import Planner
from fixbridge.engine.queues import CancelSent, NewOrder, WalletQueues
from fixbridge.engine.quoting import StateQuotes
from fixbridge.engine.recovery import Recovery
from fixbridge.engine.relaying import LostRelay
from fixbridge.engine.resending import Resender
from fixbridge.engine.resting import RestingBook, RestingShelf
from fixbridge.engine.settlement import OptionSettlement
from fixbridge.engine.submission import Submission
from fixbridge.journal import DuplicateClOrdID, Journal
from fixbridge.ops.metrics import BridgeMetrics
from fixbridge.orders.model import ExecEvent, ExecutionReport, Order, OrdStatus, RejectReason, Side
from fixbridge.orders.resting import Amend
from fixbridge.orders.risk import PreTradeRisk
from fixbridge.orders.validation import Rejection, claims_mismatch

if TYPE_CHECKING:
    from fixbridge.market.state import MarketState

__all__ = ["ExecutionEngine", "Reporter", "session_counterparty"]

log = structlog.get_logger(__name__)

# Backpressure on the FIX edge: past this many orders and reports waiting inside the bridge (the
# group commit, its dispatcher, the wallets' queues) a NewOrderSingle waits in the socket instead.
# Taking orders in faster than they can be signed only takes the CPU from signing, settling and
# reporting the ones already in (one process, one GIL): bench/results/throughput.md.
MAX_BACKLOG = 256
BACKLOG_WAIT_S = 1.0    # the longest a message waits for room; then it is taken in anyway


def new_order_id() -> str:
    return "FB" + uuid.uuid4().hex[:16].upper()


class ExecutionEngine:
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets,
                 metrics: BridgeMetrics | None = None, market: "MarketState | None" = None) -> None:
        self.spec, self.sessions, self.journal, self.markets = spec, sessions, journal, markets
        self.metrics = metrics or BridgeMetrics()  # counters only on the hot path (ops/metrics.py)
        self.lease = WalletLease()
        self._stopping = threading.Event()  # set by stop(): waits for the chain give up
        self.heads = ChainHeads(markets)
        self.book = InFlightBook(self.heads.kick)
        self.queues = WalletQueues()
        self.shelf = RestingShelf(journal)
        self.desk = OrderDesk(spec, sessions, journal, self.metrics, self.book, self.shelf)
        self.risk = PreTradeRisk(journal, spec)
        write_ahead = WriteAhead(journal)
        self.approver = Approver(journal, markets, self.book, self.heads, write_ahead, self.lease)
        self.planner = Planner(spec, sessions, journal, markets, self.book, StateQuotes(market, self.heads, spec))
        self.resting = RestingBook(spec, journal, self.shelf, self.desk, self.planner, self.queues, market)
        self.confirmer = Confirmer(journal, self.book, self.heads, self.desk)
        self.resender = Resender(spec, journal, self.book, self.heads, self.desk, self.confirmer, write_ahead,
                                 self.lease, self.metrics, LostRelay(journal))
        self.submission = Submission(journal, self.book, self.heads, self.desk, write_ahead, self.resender, self.lease)
        self.options = OptionSettlement(spec, sessions, journal, markets, self.queues, self.desk, write_ahead, self.lease,
                                        self._stopping)
        self.intake = Intake(spec, sessions, journal, markets, self.queues, self.heads, self.book, self.desk,
                             self.planner, self.risk, self.approver, self.submission, self.resender, self.options,
                             self.resting)
        self.recovery = Recovery(journal, self.book, self.heads, self.desk, self.planner, self.confirmer, self.queues,
                                 self.resting)
        self.block_listeners: list[BlockListener] = []  # others on the engine's watchers (the market feed), after it
        self.follower = ChainFollower(journal, self.book, self.heads, self.confirmer, self.resender, self.options,
                                      self.resting)

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def ownership_lost(self) -> str | None:
        """Why this instance's leases could not be renewed (then it signs nothing), or None."""
        return self.lease.lost

    @ownership_lost.setter
    def ownership_lost(self, why: str | None) -> None:
        self.lease.lost = why

    def start(self, reporter: Reporter) -> None:
        self.desk.reporter = reporter
        self.markets.open_wallets(self.journal.next_nonce)
        gaps = NonceGapCloser(self.journal, self.resender.fill_nonce_gap)
        open_orders = {r.order_id for r in self.journal.open_orders()}
        for w in self.markets.wallets.values():
            gaps.close(w, open_orders)
        self.queues.open(list(self.markets.wallets))
        self.intake.start()
        self.heads.start(Listeners(self.follower, *self.block_listeners))
        self.recover()

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the watchers and the intake workers (each finishes the order in hand up to its
        journal rows; a wait for the chain is given up, see Stopping). False if a worker was
        still busy at the timeout: what it journaled stays, and the next start recovers it."""
        self._stopping.set()
        self.heads.stop()
        self.queues.stop_all()
        return self.intake.join(time.monotonic() + timeout)

    def recover(self) -> None:
        self.recovery.recover()

    # ---- what others read ------------------------------------------------------------------
    def counterparty(self, session_id: str) -> Counterparty:
        return self.desk.counterparty(session_id)

    def outage(self, chain: str) -> str | None:
        return self.heads.outage(chain)

    def head(self, chain: str) -> int:
        return self.heads.head(chain)

    def watching(self, chain: str) -> bool:
        """Whether the engine follows the chain (it has a wallet there)."""
        return self.heads.watcher(chain) is not None

    def in_flight(self, order_id: str) -> InFlight | None:
        return self.book.get(order_id)

    # ---- called from the FIX edge (QuickFIX thread): journal and enqueue only ---------------
    def backlog(self) -> int:
        return self.journal.backlog() + self.queues.backlog()

    def wait_for_room(self) -> None:
        """Hold the FIX edge while the bridge is MAX_BACKLOG behind (at most BACKLOG_WAIT_S)."""
        if self.backlog() < MAX_BACKLOG:
            return
        end = time.monotonic() + BACKLOG_WAIT_S
        while self.backlog() >= MAX_BACKLOG // 2 and time.monotonic() < end:
            time.sleep(0.002)

    def submit(self, order: Order, possible_resend: bool = False) -> None:
        """A NewOrderSingle. `possible_resend`: the message came again (PossDupFlag/PossResend), e.g.
        QuickFIX asked for it after a restart because the first delivery's receipt was not counted."""
        order.order_id = new_order_id()
        order.status = OrdStatus.PENDING_NEW
        order.created_at = datetime.now(timezone.utc)
        # No waiting here (QuickFIX's thread): the row goes with the next group commit, and what
        # follows runs once its outcome is known (on the journal's dispatcher; see batch.py).
        self.journal.insert_order(order, reason="received NewOrderSingle",
                                  then=(lambda: self._accepted(order), lambda e: self._not_journaled(order, e, possible_resend)))

    def _accepted(self, order: Order) -> None:
        """The order's row is committed: check what only the message carried, then hand it to its worker."""
        reporter = self.desk.reporter
        if reporter is not None and self.counterparty(order.session_id).ack_pending_new:
            try:  # the row that explains it is committed (we run after it): straight to the wire
                reporter.execution_report(order.session_id, self.desk.er(order, ExecEvent.PENDING_NEW))
            except Exception:  # a lost acknowledgement must not cost the order its New or Rejected
                log.exception("PendingNew not sent", session=order.session_id, cl_ord_id=order.cl_ord_id)
        ins = self.spec.instruments.get(order.symbol)
        if order.claims is not None and ins is not None:
            # The instrument fields travel with the message only, so they are checked here.
            mismatch = claims_mismatch(order.claims, ins)
            if mismatch:
                return self.desk.reject(order, Rejection(RejectReason.UNKNOWN_SYMBOL, f"{mismatch} for {order.symbol}"))
        # The worker gets the order itself: no need to read it back.
        self.queues.put(self.planner.wallet_for(order.session_id, order.account, order.symbol),
                        NewOrder(order.order_id, order))

    def _not_journaled(self, order: Order, error: BaseException, possible_resend: bool) -> None:
        desk = self.desk
        if not isinstance(error, DuplicateClOrdID):
            log.error("order not journaled", session=order.session_id, cl_ord_id=order.cl_ord_id,
                      error=f"{type(error).__name__}: {error}"[:300])
            desk.send(order.session_id, desk.er(order, ExecEvent.REJECTED, order_id="NONE", ord_status=OrdStatus.REJECTED,
                                                rej=RejectReason.OTHER,
                                                text=f"Order could not be journaled ({type(error).__name__}); nothing was sent"))
            return
        prior = error.prior
        if possible_resend and prior is not None:
            # The same order again, not a new one with a used ClOrdID: say where it stands (150=I)
            # rather than reject an order that is working or filled.
            log.info("resent NewOrderSingle of a known order", session=order.session_id, cl_ord_id=order.cl_ord_id)
            return desk.status(order.session_id, order.cl_ord_id, prior.order_id, None)
        log.info("duplicate ClOrdID", session=order.session_id, cl_ord_id=order.cl_ord_id)
        desk.send(order.session_id, desk.er(order, ExecEvent.REJECTED, order_id=prior.order_id if prior else "NONE",
                                            ord_status=OrdStatus.REJECTED, rej=RejectReason.DUPLICATE_ORDER,
                                            text=f"Duplicate ClOrdID {order.cl_ord_id!r} on this session"))

    def cancel(self, session_id: str, cl_ord_id: str | None, orig_cl_ord_id: str, requested_by: str | None = None) -> None:
        """An OrderCancelRequest (cl_ord_id: its ClOrdID), or the bridge's own cancel of the order
        (cl_ord_id None: cancel on disconnect, a halt; `requested_by` says why; no cancel reject is
        owed to anyone, the order's own outcome is its answer)."""
        desk = self.desk
        who = f"ClOrdID {cl_ord_id}" if cl_ord_id else (requested_by or "the bridge")
        row = self.journal.find_order(session_id, orig_cl_ord_id)
        if row is None:
            desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, "NONE", OrdStatus.REJECTED, False,
                               f"Unknown order: no OrigClOrdID {orig_cl_ord_id!r} on this session")
            return
        if self.resting.cancel(row.order_id, session_id, cl_ord_id):  # resting: canceled at once
            return
        with self.book.lock:
            flight = self.book.get(row.order_id)
            if row.order_id in desk.finished:  # finished, and the journal may not show it yet
                row = replace(row, status=desk.finished[row.order_id])
            if row.status.terminal or row.status is OrdStatus.PENDING_CANCEL or (flight and flight.receipt):
                status = row.status
                why = (f"Too late to cancel: order is {status.value}" if status.terminal
                       else "A cancel is already pending" if status is OrdStatus.PENDING_CANCEL
                       else "Too late to cancel: its transaction is already mined")
                desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id, status, True, why)
                return
            if flight is not None and flight.order.status is OrdStatus.PENDING_NEW:
                # Sent behind its approval, not acknowledged yet: the no-op races the swap all the
                # same; the New follows the approval, then the race's outcome names this cancel.
                if flight.cancel is not None:
                    desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id, OrdStatus.PENDING_NEW, True,
                                       "A cancel is already pending")
                    return
                flight.cancel = (session_id, cl_ord_id)
                self.journal.add_event(row.order_id, "note", f"cancel requested by ClOrdID {cl_ord_id}: its swap, "
                                       "sent behind its approval, is raced by a no-op",
                                       detail={CANCEL_CL_ORD_ID: cl_ord_id})
                wallet, item = flight.wallet.wallet.name, CancelSent(row.order_id)
                self.journal.after_commit(lambda: self.queues.put(wallet, item))
                return
            if flight is not None:
                # Sent but not mined: race a same-nonce no-op with higher fees against it.
                flight.cancel = (session_id, cl_ord_id)
                desk.transition(flight.order, OrdStatus.PENDING_CANCEL, f"cancel requested by {who}: "
                                "replacing the pending transaction with a no-op", event=ExecEvent.PENDING_CANCEL,
                                cancel_cl_ord_id=cl_ord_id, detail={CANCEL_CL_ORD_ID: cl_ord_id})
                wallet, item = flight.wallet.wallet.name, CancelSent(row.order_id)
                self.journal.after_commit(lambda: self.queues.put(wallet, item))
                return
            desk.hold_cancel(row.order_id, session_id, cl_ord_id)
        # Journaled with the cancel's ClOrdID: a restart before the order's turn still cancels it.
        self.journal.add_event(row.order_id, "note", f"cancel requested by {who}",
                               detail={CANCEL_CL_ORD_ID: cl_ord_id})

    def amend(self, session_id: str, cl_ord_id: str, orig_cl_ord_id: str, amend: Amend) -> None:
        """An OrderCancelReplaceRequest: a resting order takes the new terms (150=5), anything else
        gets OrderCancelReject 434=2 saying why."""
        row = self.journal.find_order(session_id, orig_cl_ord_id)
        if row is None or row.session_id != session_id:
            self.desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, "NONE", OrdStatus.REJECTED, False,
                                    f"Unknown order: no OrigClOrdID {orig_cl_ord_id!r} on this session", replace=True)
            return
        status = self.desk.finished.get(row.order_id, row.status)
        why = ("Too late to amend: the order is " + status.value if status.terminal
               else self.resting.amend(session_id, cl_ord_id, orig_cl_ord_id, row, amend))
        if why is not None:
            self.desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id, status, status.terminal, why,
                                    replace=True)

    def refuse_amend(self, session_id: str, cl_ord_id: str, orig_cl_ord_id: str, text: str) -> None:
        """An OrderCancelReplaceRequest the FIX edge could not read: OrderCancelReject 434=2, nothing changes."""
        row = self.journal.find_order(session_id, orig_cl_ord_id)
        known = row is not None and row.session_id == session_id
        self.desk.cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id if known else "NONE",
                                row.status if known else OrdStatus.REJECTED, False, text, replace=True)

    def status(self, session_id: str, cl_ord_id: str, order_id: str | None, req_id: str | None,
               event: ExecEvent | None = ExecEvent.ORDER_STATUS) -> None:
        """Answer an OrderStatusRequest (150=I) from the journal (see OrderDesk.status)."""
        self.desk.status(session_id, cl_ord_id, order_id, req_id, event=event)

    # ---- mass status and mass cancel: FIX AF / q, cancel on disconnect, halts ---------------
    def working_orders(self, session_id: str, symbol: str | None = None, side: Side | None = None) -> list[Order]:
        """The session's orders not yet terminal (PendingNew, New, PartiallyFilled, PendingCancel,
        resting), oldest first: the journal's open orders, less those the engine has finished and
        the journal may not show yet."""
        out = []
        for row in self.journal.open_orders():
            if row.session_id != session_id or (symbol and row.symbol != symbol) or (side and row.side != side):
                continue
            done = self.desk.finished.get(row.order_id)
            if done is not None and done.terminal:
                continue
            out.append(order_from_row(row))
        return out

    def mass_cancel(self, session_id: str, cl_ord_id: str | None, symbol: str | None = None,
                    side: Side | None = None, requested_by: str | None = None) -> list[Order]:
        """Cancel each working order of the session (of `symbol`, `side`) through the one cancel path
        (`cancel`): an unsent order is canceled at its turn, a sent one raced by a no-op. Returns the
        orders it tried; each gets its own outcome (Canceled, or a fill that won the race)."""
        orders = self.working_orders(session_id, symbol, side)
        with self.journal.batch():
            for o in orders:
                self.cancel(session_id, cl_ord_id, o.cl_ord_id, requested_by=requested_by)
        return orders

    def status_report(self, order: Order) -> ExecutionReport:
        """The order's status (150=I) as the engine holds it; nothing is sent or journaled."""
        return self.desk.er(order, ExecEvent.ORDER_STATUS, text=order.text)
