"""Intake: one worker per wallet takes a batch of its queue at a time, reads the chain at one block
for all of it (chain/rpc.py pins), and carries each new order from its checks (kill switch,
validation, wallet, outage, risk, funds, allowance) to the New report and to submission. Also runs
its wallet's cancels (a no-op at the swap's nonce) and option settlements, since those are
transactions of its wallet's nonces. Never waits for a receipt, an approval's included (its
swap follows it at the next nonce, approvals.py); waits for the journal (and the broadcasts of
the swaps signed before) only before an approval's broadcast."""
from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal

import structlog

from fixbridge.chain.rpc import new_pin, pinned_reads
from fixbridge.chain.submitter import Stopping
from fixbridge.config import Counterparty, SessionsConfig, Spec
from fixbridge.engine.approvals import Approver
from fixbridge.engine.desk import OrderDesk, order_from_row
from fixbridge.engine.flights import InFlight, InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.markets import Markets
from fixbridge.engine.planning import Plan, PlanError, Planner, short_reason
from fixbridge.engine.queues import CancelSent, FireResting, NewOrder, SettleSeries, WalletQueues, WorkItem
from fixbridge.engine.resending import Resender
from fixbridge.engine.resting import RestingBook
from fixbridge.engine.settlement import OptionSettlement
from fixbridge.engine.submission import Submission
from fixbridge.journal import Journal
from fixbridge.orders.model import ExecEvent, Order, OrdStatus, RejectReason, Side
from fixbridge.orders.risk import PreTradeRisk
from fixbridge.orders.units import fmt, from_units
from fixbridge.orders.validation import Rejection, validate

log = structlog.get_logger(__name__)

MAX_BATCH = 256        # orders an intake worker takes off its queue at once
FLUSH_AFTER_S = 0.005  # within a batch, hand writes to the journal (and so report and broadcast) this often


class Intake:
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets,
                 queues: WalletQueues, heads: ChainHeads, book: InFlightBook, desk: OrderDesk, planner: Planner,
                 risk: PreTradeRisk, approver: Approver, submission: Submission, resender: Resender,
                 options: OptionSettlement, resting: RestingBook) -> None:
        self.spec, self.sessions, self.journal, self.markets = spec, sessions, journal, markets
        self.queues, self.heads, self.book, self.desk, self.planner = queues, heads, book, desk, planner
        self.risk, self.approver, self.submission = risk, approver, submission
        self.resender, self.options = resender, options
        self.resting = resting  # Day, GTC, GTD and stops wait there until the market meets them
        self._workers: list[threading.Thread] = []
        self._pins: dict[str, object] = {}  # wallet -> its worker's pinned reads (chain/rpc.py)

    # ---- workers -------------------------------------------------------------------------------
    def start(self) -> None:
        for name, q in self.queues.queues.items():
            t = threading.Thread(target=self._run, args=(q,), name=f"intake-{name}", daemon=True)
            t.start()
            self._workers.append(t)

    def join(self, end: float) -> bool:
        """Wait for the workers until monotonic `end`; False if one is still busy."""
        for t in self._workers:
            t.join(timeout=max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._workers)

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

    def _work(self, wallet: str, items: list[WorkItem | None]) -> None:
        """A batch of the queue: the chain read at one block for all its orders, their journal rows
        handed to the writer every FLUSH_AFTER_S, and each flush's swaps broadcast together once
        those rows are committed."""
        chain = self.markets.wallets[wallet].chain
        w3 = self.markets.w3[chain]
        pin = self._pins.get(wallet)
        if pin is None:
            pin = self._pins[wallet] = new_pin(w3)
        news = [item for item in items if isinstance(item, NewOrder)]
        given = {item.order_id: item.order for item in news if item.order is not None}
        orders = {oid: order_from_row(r) for oid, r in self.journal.get_orders(
            [item.order_id for item in news if item.order_id not in given]).items()}
        orders.update(given)
        if pin is not None:
            # The watcher asked the node for its height after the newest of these orders arrived:
            # any block mined before they arrived is at or below that height, so reads pinned there
            # are current for them without asking again.
            watcher = self.heads.watcher(chain)
            polled = watcher.polled if watcher is not None else None
            newest = max((o.created_at.timestamp() for o in orders.values() if o.created_at), default=None)
            pin.next_batch(polled[1] if polled and newest is not None and polled[0] > newest else None)
        taken = self.desk.taken
        with self.journal.batch() as b:
            for item in items:
                if item is None:
                    break
                try:
                    if isinstance(item, NewOrder):
                        if item.order_id in taken:
                            continue
                        taken.add(item.order_id)
                        with pinned_reads(w3, pin):
                            self._process(item.order_id, orders.get(item.order_id))
                    elif isinstance(item, CancelSent):
                        self.resender.replace_with_noop(item.order_id)
                    elif isinstance(item, SettleSeries):
                        self.options.settle_series(wallet, item)
                    elif isinstance(item, FireResting):
                        with pinned_reads(w3, pin):
                            self._fire(item)
                except Stopping as e:
                    log.info("stopping: order left for the next start", item=item, why=str(e))
                    break
                except Exception as e:
                    log.exception("order processing failed", item=item)
                    if isinstance(item, NewOrder):
                        self.desk.end_unsent(item.order_id, orders.get(item.order_id), e)
                if b.age() >= FLUSH_AFTER_S:
                    b.flush()  # to the writer thread; this worker goes on with the next order

    # ---- one order -----------------------------------------------------------------------------
    def _process(self, order_id: str, order: Order | None = None) -> None:
        desk = self.desk
        if order is None:
            row = self.journal.get_order(order_id)
            if row is None:
                return
            order = order_from_row(row)
        if order.status.terminal:
            return
        cp = desk.counterparty(order.session_id)
        if order.status is OrdStatus.PENDING_NEW:
            halted = self.risk.halted(order.session_id)  # kill switch: `fixbridge halt`
            if halted:
                self.journal.add_event(order.order_id, "risk", halted.text)
                return desk.reject(order, halted)
            rej = validate(order, self.spec, cp)
            if rej:
                return desk.reject(order, rej)
            chain = self.spec.chain_of(self.spec.instruments[order.symbol])
            wallet = order.account or self.planner.default_wallet(cp, order.symbol)
            if self.markets.wallets[wallet].chain != chain.name:
                return desk.reject(order, Rejection(RejectReason.UNKNOWN_ACCOUNT, f"Account {wallet!r} is on chain "
                                                    f"{self.markets.wallets[wallet].chain}; {order.symbol} trades on {chain.name}"))
            if self.heads.outage(chain.name):
                # Policy: reject rather than queue; an OMS wants a prompt answer it can act on.
                return desk.reject(order, Rejection(RejectReason.EXCHANGE_CLOSED, f"Chain {chain.name} is unreachable "
                                                    f"({self.heads.outage(chain.name)}); nothing was sent, try again"))
        resting = order.status is OrdStatus.PENDING_NEW and self.resting.shelf.rests(order)
        stage = "quoting"
        try:
            plan = self.planner.plan(self.resting.as_sent(order) if resting else order, cp)
            stage = "checking risk"
            if order.status is OrdStatus.PENDING_NEW:
                rej = self.risk.check(order, cp, self.planner.trade_context(order, plan))
                if rej:
                    self.journal.add_event(order.order_id, "risk", rej.text)
                    raise PlanError(rej)
            if resting:
                # A desk expects an order its wallet cannot pay for refused at once; the allowance and
                # the funds it commits are settled when it fires (a resting order holds nothing).
                stage = "checking funds"
                self._check_balance(order, plan)
                return self.resting.accept(order, f"accepted to rest: {plan.venue.name}", plan.venue.name,
                                           plan.wallet.wallet.name)
            stage = "checking funds"
            approval = self._check_funds(order, plan, cp)
        except PlanError as e:
            if order.status is OrdStatus.PENDING_NEW:
                return desk.reject(order, e.rejection)
            return desk.finish_no_fill(order, OrdStatus.CANCELED, e.rejection.text)
        except Stopping:
            raise  # not the order's end: the next start takes it up again
        except Exception as e:  # the node failed (not a revert): the order ends here, with the reason
            return desk.node_failed(order, stage, e)
        if order.status is OrdStatus.PENDING_NEW and approval is None:
            desk.accept(order, plan)
        # Waiting for its approval, the order stays PendingNew: the New follows the approval's
        # receipt (Confirmer), and an approval that fails is a reject, which cannot follow a New.
        if desk.take_cancel(order, plan):
            return
        self.submission.execute(order, plan, waits_for=approval)

    def _fire(self, item: FireResting) -> None:
        """A resting order the market meets: plan and send its slice, its fills added to the order's.
        A slice that cannot be sent for the order's own reasons (funds, risk) ends the order with the
        reason; one the node or the market stops waits again (OrderDesk.finish_no_fill)."""
        desk, order, piece = self.desk, item.order, item.piece
        if order.status.terminal or desk.take_cancel(order):
            return
        cp = desk.counterparty(order.session_id)
        halted = self.risk.halted(order.session_id)
        stage = "quoting"
        try:
            if halted:
                raise PlanError(halted)
            plan = self.planner.plan(piece, cp)
            stage = "checking funds"
            approval = self._check_funds(order, plan, cp)
        except PlanError as e:
            return desk.transition(order, OrdStatus.CANCELED, f"not sent: {e.rejection.text}", event=ExecEvent.CANCELED,
                                   text=f"Canceled: {e.rejection.text}", leaves=Decimal(0))
        except Stopping:
            raise
        except Exception as e:
            return desk.finish_no_fill(order, OrdStatus.CANCELED, f"node error while {stage}: {short_reason(e)}")
        if desk.take_cancel(order):
            return
        self.submission.execute(order, plan, waits_for=approval, prior=self.resting.prior_units(order.order_id))

    def _check_balance(self, order: Order, plan: Plan) -> tuple[int, int]:
        """The wallet holds what the order may take, beyond what orders in flight hold: (need, committed)."""
        w = plan.wallet
        token_in = plan.pulls[0] if plan.pulls else plan.base if order.side is Side.SELL else plan.quote
        pay_token, need = plan.pays
        held = self.markets.balance_of(w.chain, pay_token, w.wallet.address)
        committed = self.book.reserved(w, pay_token)
        if held - committed < need:
            units = lambda x: fmt(from_units(x, token_in.decimals))  # noqa: E731
            raise PlanError(Rejection(RejectReason.OTHER, f"Insufficient balance: wallet {w.wallet.name} holds "
                                      f"{units(held)} {token_in.symbol}" + (f", {units(committed)} of it committed to "
                                      "orders in flight" if committed else "") + f", the order may need {units(need)}"))
        return need, committed

    def _check_funds(self, order: Order, plan: Plan, cp: Counterparty) -> InFlight | None:
        """Balance and allowance. Returns the approval in flight the swap must follow, if any."""
        w = plan.wallet
        token_in = plan.pulls[0] if plan.pulls else plan.base if order.side is Side.SELL else plan.quote
        pay_token, _ = plan.pays
        need, committed = self._check_balance(order, plan)
        spender = plan.call.spender
        if self.markets.allowance(w.chain, pay_token, w.wallet.address, spender) >= need + committed:
            return None
        return self.approver.ensure(order, plan, token_in, spender, need + committed, cp.approval_policy)
