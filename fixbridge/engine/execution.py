"""The execution engine: takes accepted orders from the FIX edge and carries each one to a
terminal state on chain, journaling every step before it happens.

Threads:
- QuickFIX's callback thread calls `submit`/`cancel`/`status`: they only journal and enqueue.
- One intake worker per wallet checks, plans, approves, signs, journals and broadcasts, then
  moves on without waiting for the chain: many orders go into one block, wallets in parallel.
- One block watcher per chain (fixbridge.chain.watcher) delivers each block; `tracking.py`
  settles the transactions it holds, bumps stuck ones, rebroadcasts dropped ones and follows
  reorgs.
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Protocol

import structlog
from web3.exceptions import ContractLogicError

from fixbridge.chain.rpc import describe, new_pin, pinned_reads, refresh_pin
from fixbridge.chain.submitter import BroadcastRejected, NoAnswer, SentTx, Stopping, WouldRevert, nonce_used
from fixbridge.config import Counterparty, SessionsConfig, Spec, Token
from fixbridge.engine.faults import crash_point
from fixbridge.engine.nonce_gaps import NonceGapCloser
from fixbridge.engine.markets import MAX_UINT256, Markets, TradingWallet, approve_calldata
from fixbridge.engine.settlement import SettlementMixin, SettlementReport
from fixbridge.engine.tracking import CANCEL_CL_ORD_ID, Attempt, InFlight, TrackingMixin, _revert_status
from fixbridge.journal import DuplicateClOrdID, Journal
from fixbridge.ops.metrics import BridgeMetrics
from fixbridge.orders import lifecycle
from fixbridge.orders.model import ExecEvent, ExecutionReport, Order, OrdStatus, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.risk import PreTradeRisk, TradeContext
from fixbridge.orders.units import fmt, from_units, price
from fixbridge.orders.intent import (NotPlannable, SwapTerms, expected_base, may_sell_to_open, swap_deadline,
                                     swap_shape, swap_terms)
from fixbridge.engine.routing import VenueQuote, decide, swap_gas_wei
from fixbridge.orders.validation import Rejection, claims_mismatch, validate
from fixbridge.venues.base import Call, Exact, SwapIntent, Venue
from fixbridge.venues.options_market import OptionsMarketClient

log = structlog.get_logger(__name__)

MAX_BATCH = 256        # orders an intake worker takes off its queue at once
FLUSH_AFTER_S = 0.005  # within a batch, hand writes to the journal (and so report and broadcast) this often
KEEP_FINISHED = 10_000  # recent outcomes kept in memory (see ExecutionEngine._finished)
# Backpressure on the FIX edge: past this many orders and reports waiting inside the bridge (the
# group commit, its dispatcher, the wallets' queues) a NewOrderSingle waits in the socket instead.
# Taking orders in faster than they can be signed only takes the CPU from signing, settling and
# reporting the ones already in (one process, one GIL): bench/results/throughput.md.
MAX_BACKLOG = 256
BACKLOG_WAIT_S = 1.0    # the longest a message waits for room; then it is taken in anyway
GAS_CACHE_BLOCKS = 64  # how long a route's simulated gas is reused for orders whose quote meets the bound


class Reporter(Protocol):
    """The FIX edge, as the engine sees it."""

    def execution_report(self, session_id: str, er: ExecutionReport) -> None: ...

    def cancel_reject(self, session_id: str, *, cl_ord_id: str, orig_cl_ord_id: str, order_id: str,
                      ord_status: OrdStatus, too_late: bool, text: str) -> None: ...

    def settlement_report(self, session_id: str, report: SettlementReport) -> None: ...

    def session_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class Plan:
    """How one order becomes one swap: the venue, the wallet, and the bound it must honour."""
    venue: Venue
    wallet: TradingWallet
    base: Token
    quote: Token
    intent: SwapIntent
    quoted: int            # the venue's quote for the other side, at planning time
    expected_base: Decimal
    # Sell-to-open: the call that writes and sells in one transaction, and the collateral it pulls
    # (in place of the swap's token_in) as (token, base units).
    write: Call | None = None
    pulls: tuple[Token, int] | None = None
    # The pure arithmetic the intent came from (orders/intent.py): the bound's exact value and rule.
    terms: SwapTerms | None = None

    @property
    def call(self) -> Call:
        return self.write or self.venue.build_swap(self.intent)

    @property
    def pays(self) -> tuple[str, int]:
        """(token address, most base units) this order takes from the wallet."""
        if self.pulls is not None:
            return self.pulls[0].address, self.pulls[1]
        return self.intent.token_in, self.intent.max_in


class PlanError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.text)
        self.rejection = rejection


def new_order_id() -> str:
    return "FB" + uuid.uuid4().hex[:16].upper()


class ExecutionEngine(TrackingMixin, SettlementMixin):
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets,
                 metrics: BridgeMetrics | None = None) -> None:
        self.spec, self.sessions, self.journal, self.markets = spec, sessions, journal, markets
        self.metrics = metrics or BridgeMetrics()  # counters only on the hot path (ops/metrics.py)
        self.reporter: Reporter | None = None
        self._queues: dict[str, queue.Queue] = {}
        self._workers: list[threading.Thread] = []
        self._cancel_requests: dict[str, tuple[str, str]] = {}  # order_id -> (session_id, cancel ClOrdID)
        self._lock = threading.RLock()
        self._exec_seq = itertools.count(1)
        self._gas_prices: dict[str, tuple[float, int]] = {}
        # (chain, router, selector, token_in, token_out) -> (block, highest simulated gas)
        self._route_gas: dict[tuple, tuple[int, int]] = {}
        # Orders an intake worker has taken up: the journal may not show their progress yet (its
        # writes are committed by the writer thread), so a second "new" for one is ignored here.
        self._taken: set[str] = set()
        self._pins: dict[str, object] = {}  # wallet -> its worker's pinned reads (chain/rpc.py)
        # Outcomes of the last orders to finish, for the moments before the journal shows them.
        self._finished: OrderedDict[str, OrdStatus] = OrderedDict()
        self.risk = PreTradeRisk(journal, spec)
        self.ownership_lost: str | None = None  # set when this instance's leases could not be renewed
        self._stopping = threading.Event()  # set by stop(): waits for the chain give up
        TrackingMixin.__init__(self)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.markets.open_wallets(self.journal.next_nonce)
        gaps = NonceGapCloser(self.journal, self.fill_nonce_gap)
        open_orders = {r.order_id for r in self.journal.open_orders()}
        for w in self.markets.wallets.values():
            gaps.close(w, open_orders)
        for name in self.markets.wallets:
            q: queue.Queue = queue.Queue()
            self._queues[name] = q
            t = threading.Thread(target=self._run, args=(q,), name=f"intake-{name}", daemon=True)
            t.start()
            self._workers.append(t)
        self.start_tracking()
        self.recover()

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the watchers and the intake workers (each finishes the order in hand up to its
        journal rows; a wait for the chain is given up, see Stopping). False if a worker was
        still busy at the timeout: what it journaled stays, and the next start recovers it."""
        self._stopping.set()
        self.stop_tracking()
        for q in self._queues.values():
            q.put(None)
        end = time.monotonic() + timeout
        for t in self._workers:
            t.join(timeout=max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._workers)

    # ---- called from the FIX edge (QuickFIX thread): journal and enqueue only ---------------
    def backlog(self) -> int:
        return self.journal.backlog() + sum(q.qsize() for q in self._queues.values())

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
        if self.reporter is not None and self.counterparty(order.session_id).ack_pending_new:
            try:  # the row that explains it is committed (we run after it): straight to the wire
                self.reporter.execution_report(order.session_id, self._er(order, ExecEvent.PENDING_NEW))
            except Exception:  # a lost acknowledgement must not cost the order its New or Rejected
                log.exception("PendingNew not sent", session=order.session_id, cl_ord_id=order.cl_ord_id)
        ins = self.spec.instruments.get(order.symbol)
        if order.claims is not None and ins is not None:
            # The instrument fields travel with the message only, so they are checked here.
            mismatch = claims_mismatch(order.claims, ins)
            if mismatch:
                return self._reject(order, Rejection(RejectReason.UNKNOWN_SYMBOL, f"{mismatch} for {order.symbol}"))
        # The worker gets the order itself: no need to read it back.
        self._enqueue(order.session_id, order.account, ("new", order.order_id, order), order.symbol, committed=True)

    def _not_journaled(self, order: Order, error: BaseException, possible_resend: bool) -> None:
        if not isinstance(error, DuplicateClOrdID):
            log.error("order not journaled", session=order.session_id, cl_ord_id=order.cl_ord_id,
                      error=f"{type(error).__name__}: {error}"[:300])
            self._send(order.session_id, self._er(order, ExecEvent.REJECTED, order_id="NONE", ord_status=OrdStatus.REJECTED,
                                                  rej=RejectReason.OTHER,
                                                  text=f"Order could not be journaled ({type(error).__name__}); nothing was sent"))
            return
        prior = error.prior
        if possible_resend and prior is not None:
            # The same order again, not a new one with a used ClOrdID: say where it stands (150=I)
            # rather than reject an order that is working or filled.
            log.info("resent NewOrderSingle of a known order", session=order.session_id, cl_ord_id=order.cl_ord_id)
            return self.status(order.session_id, order.cl_ord_id, prior.order_id, None)
        log.info("duplicate ClOrdID", session=order.session_id, cl_ord_id=order.cl_ord_id)
        self._send(order.session_id, self._er(order, ExecEvent.REJECTED, order_id=prior.order_id if prior else "NONE",
                                              ord_status=OrdStatus.REJECTED, rej=RejectReason.DUPLICATE_ORDER,
                                              text=f"Duplicate ClOrdID {order.cl_ord_id!r} on this session"))

    def _enqueue(self, session_id: str, account: str | None, item: tuple, symbol: str | None = None,
                 committed: bool = False) -> None:
        """Each wallet's orders go through its own worker, in arrival order."""
        cp = self.counterparty(session_id)
        wallet = account if account in cp.wallets else self.default_wallet(cp, symbol)
        if committed:
            self._queues[wallet].put(item)
        else:  # hand it over once the order's row is committed: the worker's journal rows refer to it
            self.journal.after_commit(lambda: self._queues[wallet].put(item))

    def default_wallet(self, cp: Counterparty, symbol: str | None) -> str:
        """The session's first wallet on the chain the instrument trades on."""
        ins = self.spec.instruments.get(symbol or "")
        if ins is not None:
            chain = self.spec.chain_of(ins).name
            for name in cp.wallets:
                if self.markets.wallets[name].chain == chain:
                    return name
        return cp.wallets[0]

    def cancel(self, session_id: str, cl_ord_id: str, orig_cl_ord_id: str) -> None:
        row = self.journal.find_order(session_id, orig_cl_ord_id)
        if row is None:
            self._cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, "NONE", OrdStatus.REJECTED, False,
                                f"Unknown order: no OrigClOrdID {orig_cl_ord_id!r} on this session")
            return
        with self._lock:
            flight = self.in_flight(row.order_id)
            if row.order_id in self._finished:  # finished, and the journal may not show it yet
                row = replace(row, status=self._finished[row.order_id])
            if row.status.terminal or row.status is OrdStatus.PENDING_CANCEL or (flight and flight.receipt):
                status = row.status
                why = (f"Too late to cancel: order is {status.value}" if status.terminal
                       else "A cancel is already pending" if status is OrdStatus.PENDING_CANCEL
                       else "Too late to cancel: its transaction is already mined")
                self._cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id, status, True, why)
                return
            if flight is not None:
                # Sent but not mined: race a same-nonce no-op with higher fees against it.
                flight.cancel = (session_id, cl_ord_id)
                self._transition(flight.order, OrdStatus.PENDING_CANCEL, f"cancel requested by {cl_ord_id}: "
                                 "replacing the pending transaction with a no-op", event=ExecEvent.PENDING_CANCEL,
                                 cancel_cl_ord_id=cl_ord_id, detail={CANCEL_CL_ORD_ID: cl_ord_id})
                q = self._queues[flight.wallet.wallet.name]
                self.journal.after_commit(lambda: q.put(("cancel", row.order_id)))
                return
            self._cancel_requests[row.order_id] = (session_id, cl_ord_id)
        # Journaled with the cancel's ClOrdID: a restart before the order's turn still cancels it.
        self.journal.add_event(row.order_id, "note", f"cancel requested by ClOrdID {cl_ord_id}",
                               detail={CANCEL_CL_ORD_ID: cl_ord_id})

    def status(self, session_id: str, cl_ord_id: str, order_id: str | None, req_id: str | None,
               event: ExecEvent | None = ExecEvent.ORDER_STATUS) -> None:
        """Answer an OrderStatusRequest (150=I) from the journal; with event=None, re-send the
        order's outcome report (150 by its status) after a crash swallowed it."""
        row = self.journal.get_order(order_id) if order_id else None
        row = row or self.journal.find_order(session_id, cl_ord_id)
        if row is None or row.session_id != session_id:
            probe = Order(session_id=session_id, cl_ord_id=cl_ord_id, symbol="[N/A]", side=Side.BUY,
                          ord_type=OrdType.MARKET, time_in_force=TimeInForce.IOC)
            self._send(session_id, self._er(probe, ExecEvent.ORDER_STATUS, order_id=order_id or "NONE", ord_status=OrdStatus.REJECTED,
                                            rej=RejectReason.UNKNOWN_ORDER, text="Unknown order", req_id=req_id))
            return
        order = self._order_from_row(row)
        fills = self.journal.fills_for(row.order_id)
        last = fills[-1] if fills else None
        proof = dict(tx_hash=last.tx_hash if last else None, block=last.block_number if last else None)
        if event is None:
            event = lifecycle.EVENT_FOR[order.status]
            if last is not None and order.status is OrdStatus.FILLED:
                proof.update(exec_id=last.exec_id, last_qty=last.last_qty, last_px=last.last_px, fee=last.fee_eth)
        self._send(session_id, self._er(order, event, req_id=req_id, text=row.text, rej=_rej(row.rej_reason),
                                        **proof))

    # ---- intake worker (one per wallet) ----------------------------------------------------
    def _run(self, q: queue.Queue) -> None:
        wallet = threading.current_thread().name.removeprefix("intake-")
        while True:
            items = [q.get()]
            while len(items) < MAX_BATCH and items[-1] is not None:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            try:
                self._work(wallet, items)
            except Exception:
                log.exception("intake batch failed", items=len(items))
            finally:
                for _ in items:
                    q.task_done()
            if items[-1] is None:
                return

    def _work(self, wallet: str, items: list) -> None:
        """A batch of the queue: the chain read at one block for all its orders, their journal rows
        handed to the writer every FLUSH_AFTER_S, and each flush's swaps broadcast together once
        those rows are committed."""
        chain = self.markets.wallets[wallet].chain
        w3 = self.markets.w3[chain]
        pin = self._pins.get(wallet)
        if pin is None:
            pin = self._pins[wallet] = new_pin(w3)
        given = {item[1]: item[2] for item in items if item is not None and item[0] == "new" and len(item) > 2}
        orders = {oid: self._order_from_row(r) for oid, r in self.journal.get_orders(
            [item[1] for item in items if item is not None and item[0] == "new" and item[1] not in given]).items()}
        orders.update(given)
        if pin is not None:
            # The watcher asked the node for its height after the newest of these orders arrived:
            # any block mined before they arrived is at or below that height, so reads pinned there
            # are current for them without asking again.
            watcher = self._watchers.get(chain)
            polled = watcher.polled if watcher is not None else None
            newest = max((o.created_at.timestamp() for o in orders.values() if o.created_at), default=None)
            pin.next_batch(polled[1] if polled and newest is not None and polled[0] > newest else None)
        with self.journal.batch() as b:
            for item in items:
                if item is None:
                    break
                kind, ref = item[0], item[1]
                try:
                    if kind == "new":
                        if ref in self._taken:
                            continue
                        self._taken.add(ref)
                        with pinned_reads(w3, pin):
                            self._process(ref, orders.get(ref))
                    elif kind == "cancel":
                        self.replace_with_noop(ref)
                    elif kind == "settle":
                        self.settle_series(wallet, ref)
                except Stopping as e:
                    log.info("stopping: order left for the next start", item=item, why=str(e))
                    break
                except Exception as e:
                    log.exception("order processing failed", item=item)
                    if kind == "new":
                        self._end_unsent(ref, orders.get(ref), e)
                if b.age() >= FLUSH_AFTER_S:
                    b.flush()  # to the writer thread; this worker goes on with the next order

    def _process(self, order_id: str, order: Order | None = None) -> None:
        if order is None:
            row = self.journal.get_order(order_id)
            if row is None:
                return
            order = self._order_from_row(row)
        if order.status.terminal:
            return
        cp = self.counterparty(order.session_id)
        if order.status is OrdStatus.PENDING_NEW:
            halted = self.risk.halted(order.session_id)  # kill switch: `fixbridge halt`
            if halted:
                self.journal.add_event(order.order_id, "risk", halted.text)
                return self._reject(order, halted)
            rej = validate(order, self.spec, cp)
            if rej:
                return self._reject(order, rej)
            chain = self.spec.chain_of(self.spec.instruments[order.symbol])
            wallet = order.account or self.default_wallet(cp, order.symbol)
            if self.markets.wallets[wallet].chain != chain.name:
                return self._reject(order, Rejection(RejectReason.UNKNOWN_ACCOUNT, f"Account {wallet!r} is on chain "
                                                     f"{self.markets.wallets[wallet].chain}; {order.symbol} trades on {chain.name}"))
            if self.outage(chain.name):
                # Policy: reject rather than queue; an OMS wants a prompt answer it can act on.
                return self._reject(order, Rejection(RejectReason.EXCHANGE_CLOSED, f"Chain {chain.name} is unreachable "
                                                     f"({self.outage(chain.name)}); nothing was sent, try again"))
        stage = "quoting"
        try:
            plan = self._plan(order, cp)
            stage = "checking risk"
            if order.status is OrdStatus.PENDING_NEW:
                rej = self.risk.check(order, cp, self._trade_context(order, plan))
                if rej:
                    self.journal.add_event(order.order_id, "risk", rej.text)
                    raise PlanError(rej)
            stage = "checking funds"
            self._check_funds(order, plan, cp)
        except PlanError as e:
            if order.status is OrdStatus.PENDING_NEW:
                return self._reject(order, e.rejection)
            return self._finish_no_fill(order, OrdStatus.CANCELED, e.rejection.text)
        except Stopping:
            raise  # not the order's end: the next start takes it up again
        except Exception as e:  # the node failed (not a revert): the order ends here, with the reason
            return self._node_failed(order, stage, e)
        if order.status is OrdStatus.PENDING_NEW:
            self._transition(order, OrdStatus.NEW, f"accepted: {plan.venue.name} {plan.intent.exact.value} "
                             f"amount {plan.intent.amount} bound {plan.intent.bound}", event=ExecEvent.NEW,
                             venue=plan.venue.name, wallet=plan.wallet.wallet.name)
        if self._take_cancel(order):
            return
        self._execute(order, plan)

    def _plan(self, order: Order, cp: Counterparty, *, quote: bool = True) -> Plan:
        """Choose venue and wallet and derive the swap with its bound. quote=False (recovery) only
        rebuilds what decoding the receipt needs. The arithmetic is pure (orders/intent.py); here
        are the reads it needs (quotes, gas price, balance) and the journal rows of what it decided."""
        ins = self.spec.instruments[order.symbol]
        venue = self.markets.venues[order.ex_destination or order.venue or ins.venues[0]]
        wallet = self.markets.wallets[order.account or order.wallet or self.default_wallet(cp, order.symbol)]
        base, quote_tok = self.spec.tokens[ins.base], self.spec.tokens[ins.quote]
        deadline = swap_deadline(order.expire_time, time.time(), cp.deadline_seconds)
        try:
            shape = swap_shape(order, base, quote_tok)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        if not quote:
            intent = SwapIntent(shape.token_in.address, shape.token_out.address, shape.exact, shape.amount, 0,
                                wallet.wallet.address, deadline, order.time_in_force is TimeInForce.IOC)
            return Plan(venue, wallet, base, quote_tok, intent, 0, shape.qty if shape.by_base else Decimal(0))
        chosen_by_client = order.ex_destination or order.venue
        candidates = [venue] if chosen_by_client else [self.markets.venues[v] for v in ins.venues]
        venue, quoted = self._route(order, candidates, shape.token_in, shape.token_out, shape.exact, shape.amount)
        try:
            terms = swap_terms(order, shape, quoted, cp.max_slippage_bps, deadline)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        intent = terms.intent(wallet.wallet.address)
        other, bound, amount, exact = shape.other, intent.bound, shape.amount, shape.exact
        self.journal.add_event(order.order_id, "quote", f"{venue.name} quoted {quoted} {other.symbol} units for "
                               f"{amount} {shape.fixed.symbol} units ({exact.value})",
                               detail={"venue": venue.name, "exact": exact.value, "amount": str(amount),
                                       "quoted": str(quoted), "bound": str(bound), "deadline": deadline,
                                       "wallet": wallet.wallet.address}, status=order.status)
        plan = Plan(venue, wallet, base, quote_tok, intent, quoted, expected_base(shape, quoted, base), terms=terms)
        return self._maybe_write(order, cp, ins, plan)

    def _maybe_write(self, order: Order, cp: Counterparty, ins, plan: Plan) -> Plan:
        """A Sell of an option series the wallet does not hold enough of is a sell-to-open, for sessions
        allowed to write: the market mints the whole quantity against collateral and sells it through the
        V2 router in the same transaction. Everyone else gets the usual balance check."""
        i, w = plan.intent, plan.wallet
        if not may_sell_to_open(order, ins, cp.may_write_options, i.exact, plan.venue.writes_into):
            return plan
        held = self.markets.balance_of(w.chain, i.token_in, w.wallet.address) - self.reserved(w, i.token_in)
        if held >= i.amount:
            return plan
        market = OptionsMarketClient(self.markets.w3[w.chain], self.spec.options_markets[ins.market].address)
        token_addr, units = market.collateral(ins.series_id, i.amount)
        collateral = next(t for t in self.spec.tokens.values() if t.address == token_addr and t.chain == w.chain)
        call = market.write_and_sell(ins.series_id, i.amount, plan.venue.router, i.bound, i.deadline)
        self.journal.add_event(order.order_id, "note", f"sell-to-open: wallet holds {fmt(from_units(max(held, 0), plan.base.decimals))}"
                               f", writes {fmt(from_units(i.amount, plan.base.decimals))} of series {ins.series_id} against "
                               f"{fmt(from_units(units, collateral.decimals))} {collateral.symbol} collateral",
                               detail={"market": market.address, "series_id": ins.series_id, "collateral": str(units)})
        return replace(plan, write=call, pulls=(collateral, units))

    def _route(self, order: Order, venues: list[Venue], token_in: Token, token_out: Token, exact: Exact,
               amount: int) -> tuple[Venue, int]:
        """Best execution: quote every venue, compare net of the gas each swap costs, pick the best
        (engine/routing.py decides). The quotes, the gas estimates and the choice are journaled."""
        other = token_out if exact is Exact.INPUT else token_in
        considered: list[VenueQuote] = []
        errors: dict[str, str] = {}
        gas_price = None
        node_errors = False
        for v in venues:
            try:
                q = v.quote(token_in.address, token_out.address, exact, amount)
            except Exception as e:
                errors[v.name] = _short(e)
                node_errors = node_errors or isinstance(e, OSError)  # NodeError: the node failed, not the venue
                continue
            if len(venues) > 1 and gas_price is None:
                gas_price = self._gas_price(self.spec.venues[v.name].chain)
            gas_cost = self._gas_in(other, v, gas_price) if len(venues) > 1 else 0
            considered.append(VenueQuote.of(v.name, q, gas_cost, exact))
        if not considered and node_errors:  # not the venues' answer: the node's
            raise PlanError(Rejection(RejectReason.OTHER, f"Not quoted: node error while quoting {order.symbol}: "
                                      + "; ".join(f"{k}: {m}" for k, m in errors.items()) + "; nothing was sent"))
        try:
            decision = decide(order.symbol, exact, considered, errors)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        if len(venues) > 1:
            self.journal.add_event(order.order_id, "quote", decision.why(other.symbol),
                                   detail=decision.detail(gas_price), status=order.status)
        return self.markets.venues[decision.chosen.venue], decision.chosen.quoted

    def _gas_in(self, token: Token, venue: Venue, gas_price: int) -> int:
        """A swap's gas cost in units of `token` (via the venue's WETH price; 0 if it has none)."""
        wei = swap_gas_wei(venue.swap_gas, gas_price)
        weth = next((t for t in self.spec.tokens.values() if t.symbol == "WETH" and t.chain == token.chain), None)
        if weth is None:
            return 0
        if token.address == weth.address:
            return wei
        try:
            return venue.quote(weth.address, token.address, Exact.INPUT, wei) if wei else 0
        except Exception:
            return 0

    def _trade_context(self, order: Order, plan: Plan) -> TradeContext:
        i = plan.intent
        # The quote gives the other side of the swap: pair it with the amount to get base vs quote.
        amount_is_base = (i.token_in == plan.base.address) == (i.exact is Exact.INPUT)
        base_units, quote_units = (i.amount, plan.quoted) if amount_is_base else (plan.quoted, i.amount)
        pool_px = price(quote_units, plan.quote.decimals, base_units, plan.base.decimals)
        # The most quote the order can move: the quote leg itself, or the bound when the bound is in quote.
        quote_most = max(quote_units, i.bound) if amount_is_base else quote_units
        notional = from_units(quote_most, plan.quote.decimals)
        gas = self._gas_price(plan.wallet.chain)
        return TradeContext(plan.venue.name, plan.wallet.wallet.name, notional, pool_px, gas)

    def _gas_price(self, chain: str) -> int:
        """The chain's gas price, read at most once a second (it moves once a block)."""
        at, price_wei = self._gas_prices.get(chain, (0.0, 0))
        if time.monotonic() - at > 1.0:
            price_wei = int(self.markets.w3[chain].eth.gas_price)
            self._gas_prices[chain] = (time.monotonic(), price_wei)
        return price_wei

    def _check_funds(self, order: Order, plan: Plan, cp: Counterparty) -> None:
        w = plan.wallet
        token_in = plan.pulls[0] if plan.pulls else plan.base if order.side is Side.SELL else plan.quote
        pay_token, need = plan.pays
        held = self.markets.balance_of(w.chain, pay_token, w.wallet.address)
        committed = self.reserved(w, pay_token)
        if held - committed < need:
            units = lambda x: fmt(from_units(x, token_in.decimals))  # noqa: E731
            raise PlanError(Rejection(RejectReason.OTHER, f"Insufficient balance: wallet {w.wallet.name} holds "
                                      f"{units(held)} {token_in.symbol}" + (f", {units(committed)} of it committed to "
                                      "orders in flight" if committed else "") + f", the order may need {units(need)}"))
        spender = plan.call.spender
        if self.markets.allowance(w.chain, pay_token, w.wallet.address, spender) >= need + committed:
            return
        amount = MAX_UINT256 if cp.approval_policy == "standing" else need + committed
        self._approve(order, w, token_in, spender, amount, cp.approval_policy)

    def _approve(self, order: Order, w: TradingWallet, token: Token, spender: str, amount: int, policy: str) -> None:
        """Approvals are rare (standing) and a swap cannot simulate without one: wait for it."""
        if self.ownership_lost:  # an approval is a signature too: none without the wallet's lease
            raise PlanError(Rejection(RejectReason.OTHER, "Not sent: this bridge instance no longer holds its "
                                      f"wallet lease ({self.ownership_lost})"))
        data = approve_calldata(spender, amount)
        try:
            gas = w.submitter.simulate(token.address, data)
            sent = w.submitter.sign(token.address, data, gas)
            self._write_ahead(order.order_id, "approve", w)(sent)
            try:
                w.submitter.broadcast_new(sent)
                resend = None
            except BroadcastRejected:
                raise
            except Exception:  # no answer: it is journaled, and sent again while it is waited for
                resend = sent.signed.raw
            receipt = w.submitter.wait_receipt(sent.signed.tx_hash, resend=resend, stop=self._stopping)
            refresh_pin(w.submitter.w3)  # later orders of this batch must see the approval
            self._record_receipt(receipt)
        except Stopping:
            raise  # the approval is journaled; the next start takes the order up again
        except BroadcastRejected as e:
            self.journal.set_tx_status(e.sent.signed.tx_hash, "failed")
            raise PlanError(Rejection(RejectReason.OTHER, f"Allowance for {token.symbol} cannot be granted: "
                                      f"the node refused the approval ({e.reason})"))
        except Exception as e:
            raise PlanError(Rejection(RejectReason.OTHER, f"Allowance for {token.symbol} cannot be granted: {_short(e)}"))
        if receipt.status != 1:
            raise PlanError(Rejection(RejectReason.OTHER, f"Approval of {token.symbol} reverted: {receipt.revert_reason}"))
        self.journal.record_approval(order_id=order.order_id, chain_id=w.wallet.chain_id, wallet=w.wallet.address,
                                     token=token.address, spender=spender, amount_units=amount, policy=policy,
                                     tx_hash=sent.signed.tx_hash)
        self.journal.add_event(order.order_id, "approval", f"approved {spender} for {token.symbol} ({policy})",
                               detail={"tx_hash": sent.signed.tx_hash, "amount": str(amount)})

    def _execute(self, order: Order, plan: Plan) -> None:
        """Simulate (or reuse the route's gas), sign, journal, hand to tracking; the broadcast
        follows the batch's commit. Does not wait for the chain."""
        w = plan.wallet
        call = plan.call
        gas = self._known_gas(plan, call)
        if gas is None:
            try:
                gas = w.submitter.simulate(call.to, call.data)
            except WouldRevert as e:
                return self._finish_no_fill(order, _revert_status(e.reason), f"Not sent, simulation reverted: {e.reason}")
            except Exception as e:  # not a revert: the node failed
                return self._node_failed(order, "simulating", e)
            self._learn_gas(plan, call, gas)
        try:
            w.submitter.base_fee()  # read before the signature (usually cached): a failure ends the order unsigned
        except Exception as e:
            return self._node_failed(order, "reading the base fee", e)
        with self._lock:  # a cancel racing the signature either wins here or is told it is too late
            if self._take_cancel(order):
                return
            if self.ownership_lost:
                return self._finish_no_fill(order, OrdStatus.CANCELED, "Not sent: this bridge instance no longer "
                                            f"holds its wallet lease ({self.ownership_lost})")
            crash_point("before_sign")
            sent = w.submitter.sign(call.to, call.data, gas)
            self._write_ahead(order.order_id, "swap", w, deferred=True, status=order.status)(sent)
            flight = InFlight(order=order, plan=plan, wallet=w, nonce=sent.nonce, to=call.to, data=call.data,
                              gas_limit=sent.gas_limit, attempts=[Attempt.of(sent, "swap")],
                              sent_block=self.head(w.chain), reserved=plan.pays, deadline=plan.intent.deadline)
            self.track(flight)
        # One broadcast for all the swaps of this flush, once their write-ahead rows are committed.
        self.journal.collect_after_commit("broadcast", (flight, sent), self._broadcast, lane="broadcast")

    def _broadcast(self, items: list) -> None:
        """Broadcast the swaps whose write-ahead rows were just committed, in one round trip per wallet."""
        by_wallet: dict[str, list] = {}
        for flight, sent in items:
            by_wallet.setdefault(flight.wallet.wallet.name, []).append((flight, sent))
        for group in by_wallet.values():
            w = group[0][0].wallet
            handed_over = datetime.now(timezone.utc)
            refusals = w.submitter.broadcast_many([sent for _, sent in group])
            accepted, refused = [], []
            for (flight, sent), refusal in zip(group, refusals):
                if refusal is None:
                    accepted.append(sent.signed.tx_hash)
                    continue
                if isinstance(refusal, NoAnswer):  # may have arrived: journaled, in flight, sent again
                    self.resend_later(flight, refusal.error)
                    continue
                with self._lock:
                    if self.in_flight(flight.order.order_id) is not flight or flight.receipt is not None or nonce_used(refusal):
                        # Mined already (a lost answer's retry is refused), or its nonce is used:
                        # the chain decides, through the watcher and the nonce check, not this answer.
                        log.info("broadcast refused after the fact", tx=sent.signed.tx_hash, refusal=refusal[:200])
                        continue
                if w.submitter.holds(sent.signed.tx_hash) is not False:
                    # The node has it after all (a retried broadcast: the first try arrived, its answer
                    # was lost, the retry was refused), or cannot say: in flight, sent again.
                    self.resend_later(flight, f"refused ({refusal[:100]}) but the node may hold it")
                    continue
                with self._lock:
                    if self.in_flight(flight.order.order_id) is not flight or flight.receipt is not None:
                        continue
                    self.untrack(flight)
                    self.journal.set_tx_status(sent.signed.tx_hash, "failed")
                    self._finish_no_fill(flight.order, OrdStatus.CANCELED, f"Not sent, the node refused it: {refusal}")
                refused.append(sent)
            for sent in reversed(refused):  # the last nonces taken go back to the book, no gap left
                w.submitter.nonces.give_back(sent.nonce)
            for sent in refused:  # a hole below later nonces: a no-op fills it
                self.fill_nonce_gap(w, sent.nonce)
            # The watcher may already have recorded a receipt (automine): never step back from it.
            self.journal.set_tx_status_many(accepted, "broadcast", only_from=("signed",), ts=handed_over)
            crash_point("after_broadcast")

    def _route_key(self, plan: Plan, call) -> tuple | None:
        if plan.write is not None or (plan.intent.partial and plan.venue.fills_partially):
            return None  # sell-to-open and price-limited partial swaps: always simulate
        return (plan.wallet.chain, call.to, bytes(call.data[:4]), plan.intent.token_in, plan.intent.token_out)

    def _known_gas(self, plan: Plan, call) -> int | None:
        """A recent simulation's gas for the same route, if this order's quote meets its bound: then
        the swap succeeds against the state it was quoted on, and a simulation would only repeat
        the gas figure. An order whose quote misses its bound is simulated, for the venue's reason."""
        i = plan.intent
        meets = plan.quoted >= i.bound if i.exact is Exact.INPUT else plan.quoted <= i.bound
        key = self._route_key(plan, call)
        if not meets or key is None or plan.quoted <= 0:
            return None
        known = self._route_gas.get(key)
        if known is None or self.head(plan.wallet.chain) - known[0] > GAS_CACHE_BLOCKS:
            return None
        return known[1]

    def _learn_gas(self, plan: Plan, call, gas: int) -> None:
        key = self._route_key(plan, call)
        if key is None:
            return
        head = self.head(plan.wallet.chain)
        prev = self._route_gas.get(key)
        fresh = prev is not None and head - prev[0] <= GAS_CACHE_BLOCKS
        self._route_gas[key] = (head, max(gas, prev[1]) if fresh else gas)

    # ---- recovery --------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish every order the journal left open. Never a second transaction while the first may land."""
        since = datetime.now(timezone.utc) - timedelta(days=7)
        # Reports the client never got go out first, each order's New before anything after it.
        unacked = self.journal.unreported_acks(since)
        open_rows = self.journal.open_orders()
        for row in self.journal.unreported_terminal_orders(since):
            # The outcome was journaled but the process died before its report went out.
            log.info("recovery: send the terminal report the client never got", order_id=row.order_id,
                     with_new=row.order_id in unacked)
            if row.order_id in unacked:
                self._resend_new(row)
            self.status(row.session_id, row.cl_ord_id, row.order_id, None, event=None)
        for row in open_rows:
            if row.order_id in unacked:
                log.info("recovery: send the New the client never got", order_id=row.order_id)
                self._resend_new(row)
        in_flight = []
        for row in open_rows:
            txs = [t for t in self.journal.transactions_for(row.order_id) if t.purpose in ("swap", "cancel")
                   and t.status != "failed"]
            if not txs:
                self._recover_unsent(row)
                continue
            in_flight.append((row, txs))
        if in_flight:
            log.info("recovery: orders with transactions in flight", count=len(in_flight))
            self.recover_in_flight(in_flight)

    def _resend_new(self, row) -> None:
        """The New as it went out when the order was accepted: nothing filled yet, all of it open."""
        order = self._order_from_row(row)
        order.cum_qty, order.avg_px = Decimal(0), Decimal(0)
        self._send(row.session_id, self._er(order, ExecEvent.NEW, ord_status=OrdStatus.NEW, text=None))

    def _recover_unsent(self, row) -> None:
        # Rule: an order nothing was sent for is sent now if it is younger than its session's
        # deadline (the client still expects it to trade), otherwise it expires unsent.
        now = datetime.now(timezone.utc)
        age = (now - row.created_at).total_seconds()
        if age > self.counterparty(row.session_id).deadline_seconds or (
                row.expire_time is not None and row.expire_time <= now):
            order = self._order_from_row(row)
            if order.status is OrdStatus.PENDING_NEW:
                self._reject(order, Rejection(RejectReason.TOO_LATE_TO_ENTER,
                                              f"Not accepted before the bridge stopped; {age:.0f}s old now"))
            else:
                self._finish_no_fill(order, OrdStatus.EXPIRED,
                                     f"Not sent before the bridge stopped; {age:.0f}s old now, past its deadline")
            return
        asked = self._journaled_detail(row.order_id, CANCEL_CL_ORD_ID)
        if asked:  # the client asked to cancel it before the crash: its turn cancels it, as it would have
            self._cancel_requests[row.order_id] = (row.session_id, asked)
        log.info("recovery: re-queue unsent order", order_id=row.order_id, status=row.status.value,
                 cancel_requested=asked)
        self._enqueue(row.session_id, row.account, ("new", row.order_id), row.symbol)

    # ---- helpers ---------------------------------------------------------------------------
    def session_ids_of(self, comp_id: str) -> list[str]:
        return [sid for sid in (self.reporter.session_ids() if self.reporter else []) if session_counterparty(sid) == comp_id]

    def counterparty(self, session_id: str) -> Counterparty:
        return self.sessions.sessions[session_counterparty(session_id)]

    def _node_failed(self, order: Order, stage: str, e: Exception) -> None:
        """The node failed (not a revert) while the order was being decided: nothing was signed or
        sent, and the order ends here with a report naming the node's error — Rejected before the
        New went out, Canceled after it (a cancel the client asked for meanwhile is answered)."""
        why = f"node error while {stage}: {describe(e)}; nothing was sent"
        log.warning("order ended by a node error", order_id=order.order_id, stage=stage, error=describe(e))
        if order.status is OrdStatus.PENDING_NEW:
            return self._reject(order, Rejection(RejectReason.OTHER, f"Rejected: {why}"))
        if not self._take_cancel(order):
            self._finish_no_fill(order, OrdStatus.CANCELED, f"Not sent: {why}")

    def _end_unsent(self, order_id: str, order: Order | None, e: Exception) -> None:
        """An order whose processing failed for any reason still gets its terminal report, unless a
        transaction was tracked for it (then the chain decides)."""
        try:
            with self._lock:
                if order is None:
                    row = self.journal.get_order(order_id)
                    order = self._order_from_row(row) if row is not None else None
                if order is None or order.status.terminal or self.in_flight(order_id) is not None:
                    return
                self._node_failed(order, "processing the order", e)
        except Exception:
            log.exception("order could not be ended", order_id=order_id)

    def _take_cancel(self, order: Order) -> bool:
        req = self._cancel_requests.pop(order.order_id, None)
        if req is None:
            return False
        self._transition(order, OrdStatus.CANCELED, f"canceled by request {req[1]} before any transaction",
                         event=ExecEvent.CANCELED, cancel_cl_ord_id=req[1], leaves=Decimal(0))
        return True

    def _write_ahead(self, order_id: str, purpose: str, w: TradingWallet, deferred: bool = False,
                     status: OrdStatus | None = None):
        """The journal hook that must return before a transaction is broadcast. Inside a batch it
        commits the batch (the caller broadcasts next), unless the caller defers its broadcast to
        the batch's commit itself (deferred=True)."""
        def persist(sent: SentTx) -> None:
            self.journal.record_signed_tx(order_id=order_id, purpose=purpose, chain_id=w.wallet.chain_id,
                                          wallet=w.wallet.address, nonce=sent.nonce, tx_hash=sent.signed.tx_hash,
                                          raw_tx=sent.signed.raw, gas_limit=sent.gas_limit,
                                          max_fee_per_gas=sent.max_fee_per_gas,
                                          max_priority_fee_per_gas=sent.max_priority_fee_per_gas, order_status=status)
            b = self.journal.in_batch()
            if b is not None and deferred:
                b.after_commit(lambda: crash_point("after_write_ahead"))
                return
            if b is not None:
                b.flush(wait=True)
            crash_point("after_write_ahead")
        return persist

    def _record_receipt(self, r, order_status: OrdStatus | None = None) -> None:
        self.journal.record_receipt(tx_hash=r.tx_hash, block_number=r.block_number, block_hash=r.block_hash,
                                    status=r.status, gas_used=r.gas_used, effective_gas_price=r.effective_gas_price,
                                    revert_reason=r.revert_reason, order_status=order_status,
                                    logs=[{"address": l["address"], "topics": ["0x" + t.hex() for t in l["topics"]],
                                           "data": "0x" + l["data"].hex(), "logIndex": l["logIndex"]} for l in r.logs])

    def _reject(self, order: Order, rej: Rejection) -> None:
        self._transition(order, OrdStatus.REJECTED, rej.text, event=ExecEvent.REJECTED, rej=rej.reason, text=rej.text,
                         leaves=Decimal(0))

    def _finish_no_fill(self, order: Order, status: OrdStatus, text: str, **proof) -> None:
        self._transition(order, status, text, event=lifecycle.EVENT_FOR[status], text=text,
                         leaves=Decimal(0), **proof)

    def _transition(self, order: Order, status: OrdStatus, reason: str, *, event: ExecEvent, leaves: Decimal | None = None,
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
            self._taken.discard(order.order_id)
            self._finished[order.order_id] = status
            while len(self._finished) > KEEP_FINISHED:
                self._finished.popitem(last=False)
            self.journal.after_commit(lambda: crash_point("before_report"))
        elif status is OrdStatus.NEW:
            self.journal.after_commit(lambda: crash_point("before_ack"))
        self._send(order.session_id, self._er(order, event, leaves=leaves, rej=rej, text=text, **report),
                   received=order.created_at if previous is OrdStatus.PENDING_NEW or event is ExecEvent.TRADE else None)

    def _er(self, order: Order, event: ExecEvent, *, order_id: str | None = None, ord_status: OrdStatus | None = None,
            leaves: Decimal | None = None, rej: RejectReason | None = None, text: str | None = None,
            exec_id: str | None = None, last_qty: Decimal | None = None, last_px: Decimal | None = None,
            fee: Decimal | None = None, tx_hash: str | None = None, block: int | None = None,
            chain_id: int | None = None, req_id: str | None = None, cancel_cl_ord_id: str | None = None,
            exec_ref_id: str | None = None) -> ExecutionReport:
        oid = order_id or order.order_id
        status = ord_status or order.status
        if leaves is None:
            leaves = Decimal(0) if status.terminal or order.order_qty is None else order.order_qty - order.cum_qty
        if chain_id is None and tx_hash is not None:
            chain_id = self.spec.chain_of(self.spec.instruments[order.symbol]).chain_id
        return ExecutionReport(
            order_id=oid, cl_ord_id=cancel_cl_ord_id or order.cl_ord_id,
            orig_cl_ord_id=order.cl_ord_id if cancel_cl_ord_id else None,
            exec_id=exec_id or self._exec_id(oid), event=event, ord_status=status, side=order.side,
            symbol=order.symbol, order_qty=order.order_qty, cash_order_qty=order.cash_order_qty, price=order.price,
            cum_qty=order.cum_qty, leaves_qty=leaves, avg_px=order.avg_px, last_qty=last_qty, last_px=last_px,
            text=text, rej_reason=rej, fee_eth=fee, tx_hash=tx_hash, block_number=block, chain_id=chain_id,
            venue=order.venue, ord_status_req_id=req_id, account=order.account, exec_ref_id=exec_ref_id,
            transact_time=datetime.now(timezone.utc))

    def _exec_id(self, order_id: str) -> str:
        return f"{order_id}-{int(time.time() * 1000)}-{next(self._exec_seq)}"  # count() is atomic: no lock

    def _send(self, session_id: str, er: ExecutionReport, received: datetime | None = None) -> None:
        """Reports leave once the journal rows that explain them are committed. `received`: when
        the order came in, for the ack and fill latency metrics (measured as the report leaves)."""
        if self.reporter is not None:
            reporter, reported = self.reporter, self.metrics.reported
            self.journal.after_commit(lambda: (reporter.execution_report(session_id, er), reported(er, received)))

    def _cancel_reject(self, session_id: str, cl_ord_id: str, orig: str, order_id: str, status: OrdStatus,
                       too_late: bool, text: str) -> None:
        if self.reporter is not None:
            reporter = self.reporter
            self.journal.after_commit(lambda: reporter.cancel_reject(
                session_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, order_id=order_id, ord_status=status,
                too_late=too_late, text=text))

    def _order_from_row(self, row) -> Order:
        return Order(session_id=row.session_id, cl_ord_id=row.cl_ord_id, symbol=row.symbol, side=Side(row.side),
                     ord_type=OrdType(row.ord_type), time_in_force=TimeInForce(row.time_in_force),
                     order_qty=row.order_qty, cash_order_qty=row.cash_order_qty, price=row.price, account=row.account,
                     expire_time=row.expire_time, ex_destination=row.ex_destination, order_id=row.order_id,
                     status=row.status, cum_qty=row.cum_qty or Decimal(0), avg_px=row.avg_px or Decimal(0),
                     text=row.text, venue=row.venue, wallet=row.wallet, created_at=row.created_at)


def session_counterparty(session_id: str) -> str:
    """QuickFIX SessionID string 'FIX.4.4:FIXBRIDGE->CLIENT1' -> 'CLIENT1'."""
    return session_id.rsplit("->", 1)[-1]


def _rej(code: int | None) -> RejectReason | None:
    return RejectReason(code) if code is not None else None


def _short(e: Exception) -> str:
    """A one-line reason: a revert's message rather than its raw data."""
    s = e.message if isinstance(e, ContractLogicError) and e.message else str(e)
    return s if len(s) < 200 else s[:200] + "…"
