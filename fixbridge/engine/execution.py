"""The execution engine: takes accepted orders from the FIX edge and carries each one to a
terminal state on chain, journaling every step before it happens.

Threads: the FIX edge calls `submit`/`cancel`/`status` from QuickFIX's callback thread; those
only journal and enqueue. One worker thread does the chain work, in arrival order.
"""
from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Protocol

import structlog
from web3.exceptions import ContractLogicError, Web3RPCError

from fixbridge.config import Counterparty, SessionsConfig, Spec, Token
from fixbridge.chain.submitter import BroadcastRejected, Receipt, SentTx, WouldRevert
from fixbridge.engine.faults import crash_point
from fixbridge.engine.markets import MAX_UINT256, Markets, TradingWallet, approve_calldata
from fixbridge.journal import DuplicateClOrdID, Journal
from fixbridge.orders import lifecycle
from fixbridge.orders.model import (ExecutionReport, Fill, Order, OrdStatus, OrdType, RejectReason, Side)
from fixbridge.orders.units import (PrecisionError, fmt, from_units, price, scale_bps, to_units_ceil, to_units_exact,
                                    to_units_floor, _CTX)
from fixbridge.orders.risk import PreTradeRisk, TradeContext
from fixbridge.orders.validation import Rejection, validate
from fixbridge.venues.base import Exact, SwapIntent, Venue

log = structlog.get_logger(__name__)


class Reporter(Protocol):
    """The FIX edge, as the engine sees it."""

    def execution_report(self, session_id: str, er: ExecutionReport) -> None: ...

    def cancel_reject(self, session_id: str, *, cl_ord_id: str, orig_cl_ord_id: str, order_id: str,
                      ord_status: OrdStatus, too_late: bool, text: str) -> None: ...


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


class PlanError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.text)
        self.rejection = rejection


def new_order_id() -> str:
    return "FB" + uuid.uuid4().hex[:16].upper()


class ExecutionEngine:
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets) -> None:
        self.spec, self.sessions, self.journal, self.markets = spec, sessions, journal, markets
        self.reporter: Reporter | None = None
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._cancel_requests: dict[str, tuple[str, str]] = {}  # order_id -> (session_id, cancel ClOrdID)
        self._lock = threading.Lock()
        self._exec_seq = 0
        self._worker: threading.Thread | None = None
        self.risk = PreTradeRisk(journal, spec)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.markets.open_wallets(self.journal.next_nonce)
        self._worker = threading.Thread(target=self._run, name="execution", daemon=True)
        self._worker.start()
        self.recover()

    def stop(self) -> None:
        if self._worker:
            self._queue.put(None)
            self._worker.join(timeout=30)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    # ---- called from the FIX edge (QuickFIX thread): journal and enqueue only ---------------
    def submit(self, order: Order) -> None:
        order.order_id = new_order_id()
        order.status = OrdStatus.PENDING_NEW
        order.created_at = datetime.now(timezone.utc)
        try:
            self.journal.insert_order(order, reason="received NewOrderSingle")
        except DuplicateClOrdID:
            prior = self.journal.find_order(order.session_id, order.cl_ord_id)
            log.info("duplicate ClOrdID", session=order.session_id, cl_ord_id=order.cl_ord_id)
            self._send(order.session_id, self._er(order, "8", order_id=prior.order_id if prior else "NONE",
                                                  ord_status=OrdStatus.REJECTED, rej=RejectReason.DUPLICATE_ORDER,
                                                  text=f"Duplicate ClOrdID {order.cl_ord_id!r} on this session"))
            return
        self._queue.put((order.session_id, order.order_id))

    def cancel(self, session_id: str, cl_ord_id: str, orig_cl_ord_id: str) -> None:
        row = self.journal.find_order(session_id, orig_cl_ord_id)
        if row is None:
            self._cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, "NONE", OrdStatus.REJECTED, False,
                                f"Unknown order: no OrigClOrdID {orig_cl_ord_id!r} on this session")
            return
        with self._lock:
            if row.status.terminal or self.journal.transactions_for(row.order_id):
                status = row.status
                why = (f"Too late to cancel: order is {status.value}" if status.terminal
                       else "Too late to cancel: its transaction is already signed and sent")
                self._cancel_reject(session_id, cl_ord_id, orig_cl_ord_id, row.order_id, status, True, why)
                return
            self._cancel_requests[row.order_id] = (session_id, cl_ord_id)
        self.journal.add_event(row.order_id, "note", f"cancel requested by ClOrdID {cl_ord_id}")

    def status(self, session_id: str, cl_ord_id: str, order_id: str | None, req_id: str | None,
               exec_type: str | None = lifecycle.EXEC_TYPE_STATUS) -> None:
        """Answer an OrderStatusRequest (150=I) from the journal; with exec_type=None, re-send the
        order's outcome report (150 by its status) after a crash swallowed it."""
        row = self.journal.get_order(order_id) if order_id else None
        row = row or self.journal.find_order(session_id, cl_ord_id)
        if row is None or row.session_id != session_id:
            probe = Order(session_id=session_id, cl_ord_id=cl_ord_id, symbol="[N/A]", side=Side.BUY,
                          ord_type=OrdType.MARKET, time_in_force=None)  # type: ignore[arg-type]
            self._send(session_id, self._er(probe, "I", order_id=order_id or "NONE", ord_status=OrdStatus.REJECTED,
                                            rej=RejectReason.UNKNOWN_ORDER, text="Unknown order", req_id=req_id))
            return
        order = self._order_from_row(row)
        fills = self.journal.fills_for(row.order_id)
        last = fills[-1] if fills else None
        proof = dict(tx_hash=last.tx_hash if last else None, block=last.block_number if last else None)
        if exec_type is None:
            exec_type = lifecycle.EXEC_TYPE_FOR[order.status]
            if last is not None and order.status is OrdStatus.FILLED:
                proof.update(exec_id=last.exec_id, last_qty=last.last_qty, last_px=last.last_px, fee=last.fee_eth)
        self._send(session_id, self._er(order, exec_type, req_id=req_id, text=row.text, rej=_rej(row.rej_reason),
                                        **proof))

    # ---- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._process(item[1])
            except Exception:
                log.exception("order processing failed", order_id=item[1] if item else None)
            finally:
                self._queue.task_done()

    def _process(self, order_id: str) -> None:
        row = self.journal.get_order(order_id)
        if row is None or row.status.terminal:
            return
        order = self._order_from_row(row)
        cp = self.counterparty(order.session_id)
        if order.status is OrdStatus.PENDING_NEW:
            rej = validate(order, self.spec, cp)
            if rej:
                return self._reject(order, rej)
        try:
            plan = self._plan(order, cp)
            if order.status is OrdStatus.PENDING_NEW:
                rej = self.risk.check(order, cp, self._trade_context(order, plan))
                if rej:
                    self.journal.add_event(order.order_id, "risk", rej.text)
                    raise PlanError(rej)
            self._check_funds(order, plan, cp)
        except PlanError as e:
            if order.status is OrdStatus.PENDING_NEW:
                return self._reject(order, e.rejection)
            return self._finish_no_fill(order, OrdStatus.CANCELED, e.rejection.text)
        if order.status is OrdStatus.PENDING_NEW:
            self._transition(order, OrdStatus.NEW, f"accepted: {plan.venue.name} {plan.intent.exact.value} "
                             f"amount {plan.intent.amount} bound {plan.intent.bound}", exec_type="0",
                             venue=plan.venue.name, wallet=plan.wallet.wallet.name)
        if self._take_cancel(order):
            return
        self._execute(order, plan)

    def _plan(self, order: Order, cp: Counterparty) -> Plan:
        ins = self.spec.instruments[order.symbol]
        venue = self.markets.venues[order.ex_destination or ins.venues[0]]
        wallet = self.markets.wallets[order.account or cp.wallets[0]]
        base, quote = self.spec.tokens[ins.base], self.spec.tokens[ins.quote]
        deadline_dt = order.expire_time or datetime.fromtimestamp(time.time() + cp.deadline_seconds, timezone.utc)
        deadline = int(deadline_dt.timestamp())
        by_base = order.order_qty is not None
        qty = order.order_qty if by_base else order.cash_order_qty
        assert qty is not None
        # Which token goes in, and whether the client fixed the input or the output.
        giving_base = order.side is Side.SELL
        token_in, token_out = (base, quote) if giving_base else (quote, base)
        qty_token = base if by_base else quote
        exact = Exact.INPUT if qty_token is token_in else Exact.OUTPUT
        amount = to_units_exact(qty, qty_token.decimals)
        try:
            quoted = venue.quote(token_in.address, token_out.address, exact, amount)
        except Exception as e:
            raise PlanError(Rejection(RejectReason.OTHER, f"{venue.name} cannot quote {order.symbol} for this size "
                                      f"(not enough liquidity?): {_short(e)}"))
        other = token_out if exact is Exact.INPUT else token_in
        if order.ord_type is OrdType.LIMIT:
            assert order.price is not None
            # Limit price is quote per base; the bound is in the other token of the swap.
            other_amt = (qty * order.price) if by_base else _CTX.divide(qty, order.price)
            bound = to_units_ceil(other_amt, other.decimals) if exact is Exact.INPUT else to_units_floor(other_amt, other.decimals)
        else:
            bound = scale_bps(quoted, cp.max_slippage_bps, up=exact is Exact.OUTPUT)
        if bound <= 0:
            raise PlanError(Rejection(RejectReason.INCORRECT_QUANTITY, "The price bound rounds to zero in base units"))
        intent = SwapIntent(token_in.address, token_out.address, exact, amount, bound, wallet.wallet.address, deadline)
        expected_base = qty if by_base else from_units(quoted, base.decimals)
        self.journal.add_event(order.order_id, "quote", f"{venue.name} quoted {quoted} {other.symbol} units for "
                               f"{amount} {qty_token.symbol} units ({exact.value})",
                               detail={"venue": venue.name, "exact": exact.value, "amount": str(amount),
                                       "quoted": str(quoted), "bound": str(bound), "deadline": deadline,
                                       "wallet": wallet.wallet.address})
        return Plan(venue, wallet, base, quote, intent, quoted, expected_base)

    def _trade_context(self, order: Order, plan: Plan) -> TradeContext:
        i = plan.intent
        base_units_now, quote_units_now = ((i.amount, plan.quoted) if (i.exact is Exact.INPUT) == (order.side is Side.SELL)
                                           else (plan.quoted, i.amount))
        if order.side is Side.BUY and i.exact is Exact.INPUT or order.side is Side.SELL and i.exact is Exact.OUTPUT:
            base_units_now, quote_units_now = plan.quoted, i.amount
        pool_px = price(quote_units_now, plan.quote.decimals, base_units_now, plan.base.decimals)
        # The most quote the order can move: its quote leg, or the bound when the bound is in quote.
        quote_leg = i.bound if (i.token_in == plan.quote.address) == (i.exact is Exact.OUTPUT) else i.amount
        if order.side is Side.SELL and i.exact is Exact.INPUT:
            quote_leg = max(plan.quoted, i.bound)
        notional = from_units(quote_leg, plan.quote.decimals)
        gas = int(plan.wallet.submitter.w3.eth.gas_price)
        return TradeContext(plan.venue.name, plan.wallet.wallet.name, notional, pool_px, gas)

    def _check_funds(self, order: Order, plan: Plan, cp: Counterparty) -> None:
        intent, w = plan.intent, plan.wallet
        token_in = plan.base if order.side is Side.SELL else plan.quote
        need = intent.max_in
        have = self.markets.balance_of(w.chain, intent.token_in, w.wallet.address)
        if have < need:
            raise PlanError(Rejection(RejectReason.OTHER, f"Insufficient balance: wallet {w.wallet.name} holds "
                                      f"{fmt(from_units(have, token_in.decimals))} {token_in.symbol}, the order may need "
                                      f"{fmt(from_units(need, token_in.decimals))}"))
        spender = plan.venue.build_swap(intent).spender
        if self.markets.allowance(w.chain, intent.token_in, w.wallet.address, spender) >= need:
            return
        amount = MAX_UINT256 if cp.approval_policy == "standing" else need
        self._approve(order, w, token_in, spender, amount, cp.approval_policy)

    def _approve(self, order: Order, w: TradingWallet, token: Token, spender: str, amount: int, policy: str) -> None:
        data = approve_calldata(spender, amount)
        try:
            gas = w.submitter.simulate(token.address, data)
            sent = w.submitter.send(token.address, data, gas, self._write_ahead(order.order_id, "approve", w))
            receipt = w.submitter.wait_receipt(sent.signed.tx_hash)
            self._record_receipt(receipt)
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
        w = plan.wallet
        call = plan.venue.build_swap(plan.intent)
        try:
            gas = w.submitter.simulate(call.to, call.data)
        except WouldRevert as e:
            return self._finish_no_fill(order, _revert_status(e.reason), f"Not sent, simulation reverted: {e.reason}")
        with self._lock:  # a cancel racing the signature either wins here or is told it is too late
            if self._take_cancel(order):
                return
            crash_point("before_sign")
            try:
                sent = w.submitter.send(call.to, call.data, gas, self._write_ahead(order.order_id, "swap", w))
            except BroadcastRejected as e:
                self.journal.set_tx_status(e.sent.signed.tx_hash, "failed")
                return self._finish_no_fill(order, OrdStatus.CANCELED, f"Not sent, the node refused it: {e.reason}")
        self.journal.set_tx_status(sent.signed.tx_hash, "broadcast")
        crash_point("after_broadcast")
        receipt = w.submitter.wait_receipt(sent.signed.tx_hash)
        self._settle(order, plan, receipt)

    def _settle(self, order: Order, plan: Plan, receipt: Receipt) -> None:
        """Turn a receipt into fills and the terminal report. Journal first, then report."""
        self._record_receipt(receipt)
        crash_point("after_receipt")
        chain_id = plan.wallet.wallet.chain_id
        fee = from_units(receipt.fee_wei, 18)
        if receipt.status != 1:
            reason = receipt.revert_reason or "reverted"
            return self._finish_no_fill(order, _revert_status(reason), f"Transaction reverted: {reason}",
                                        tx_hash=receipt.tx_hash, block=receipt.block_number, fee=fee, chain_id=chain_id)
        legs = plan.venue.decode_swaps({"logs": receipt.logs}, plan.intent)
        if not legs:
            return self._finish_no_fill(order, OrdStatus.CANCELED, "Transaction succeeded but no swap log was found",
                                        tx_hash=receipt.tx_hash, block=receipt.block_number, fee=fee, chain_id=chain_id)
        base_total = quote_total = 0
        for i, leg in enumerate(legs):
            base_units, quote_units = ((leg.amount_in, leg.amount_out) if order.side is Side.SELL
                                       else (leg.amount_out, leg.amount_in))
            base_total += base_units
            quote_total += quote_units
            fill = Fill(order_id=order.order_id, exec_id=f"{receipt.tx_hash}:{leg.log_index}", tx_hash=receipt.tx_hash,
                        log_index=leg.log_index, block_number=receipt.block_number,
                        last_qty=from_units(base_units, plan.base.decimals),
                        last_px=price(quote_units, plan.quote.decimals, base_units, plan.base.decimals),
                        base_units=base_units, quote_units=quote_units)
            last = i == len(legs) - 1
            self.journal.record_fill(fill, fee if last else None)
            order.cum_qty = from_units(base_total, plan.base.decimals)
            order.avg_px = price(quote_total, plan.quote.decimals, base_total, plan.base.decimals)
            if order.order_qty is None:  # a cash order's size in base is known once it fills
                order.order_qty = order.cum_qty if last else None
            status = OrdStatus.FILLED if last else OrdStatus.PARTIALLY_FILLED
            self._transition(order, status, f"fill {fill.exec_id}: {fill.last_qty} @ {fill.last_px}",
                             exec_type=lifecycle.EXEC_TYPE_TRADE, exec_id=fill.exec_id, last_qty=fill.last_qty,
                             last_px=fill.last_px, fee=fee if last else None, tx_hash=receipt.tx_hash,
                             block=receipt.block_number, chain_id=chain_id, leaves=Decimal(0) if last else None)

    # ---- recovery --------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish every order the journal left open. Never a second transaction while the first may land."""
        since = datetime.now(timezone.utc) - timedelta(days=7)
        for row in self.journal.unreported_terminal_orders(since):
            # The outcome was journaled but the process died before its report went out.
            log.info("recovery: send the terminal report the client never got", order_id=row.order_id)
            self.status(row.session_id, row.cl_ord_id, row.order_id, None, exec_type=None)
        in_flight = []
        for row in self.journal.open_orders():
            swaps = [t for t in self.journal.transactions_for(row.order_id) if t.purpose == "swap" and t.status != "failed"]
            if not swaps:
                # Rule: an order nothing was sent for is sent now if it is younger than its session's
                # deadline (the client still expects it to trade), otherwise it expires unsent.
                age = (datetime.now(timezone.utc) - row.created_at).total_seconds()
                if age > self.counterparty(row.session_id).deadline_seconds or (
                        row.expire_time is not None and row.expire_time <= datetime.now(timezone.utc)):
                    order = self._order_from_row(row)
                    if order.status is OrdStatus.PENDING_NEW:
                        self._reject(order, Rejection(RejectReason.TOO_LATE_TO_ENTER,
                                                      f"Not accepted before the bridge stopped; {age:.0f}s old now"))
                    else:
                        self._finish_no_fill(order, OrdStatus.EXPIRED,
                                             f"Not sent before the bridge stopped; {age:.0f}s old now, past its deadline")
                    continue
                log.info("recovery: re-queue unsent order", order_id=row.order_id, status=row.status.value)
                self._queue.put((row.session_id, row.order_id))
                continue
            in_flight.append((row, swaps[-1]))
        if in_flight:
            threading.Thread(target=lambda: [self._recover_sent(r, t) for r, t in in_flight], daemon=True,
                             name="recovery").start()

    def _recover_sent(self, row, tx) -> None:
        order = self._order_from_row(row)
        cp = self.counterparty(order.session_id)
        try:
            plan = self._plan(order, cp)
            w = plan.wallet
            r = w.submitter.w3.eth.get_transaction_receipt(tx.tx_hash) if self._known(w, tx.tx_hash) else None
            if r is None:
                log.info("recovery: rebroadcast journaled transaction", order_id=row.order_id, tx=tx.tx_hash)
                try:
                    w.submitter.broadcast(tx.raw_tx)
                except (ValueError, Web3RPCError) as e:
                    if "nonce" in str(e).lower():
                        return self._finish_no_fill(order, OrdStatus.CANCELED,
                                                    f"Transaction {tx.tx_hash} can never be mined: its nonce was used by another")
                    raise
                receipt = w.submitter.wait_receipt(tx.tx_hash)
            else:
                receipt = w.submitter.to_receipt(r)
            self._settle(order, plan, receipt)
        except Exception:
            log.exception("recovery failed", order_id=row.order_id)

    @staticmethod
    def _known(w: TradingWallet, tx_hash: str) -> bool:
        try:
            return w.submitter.w3.eth.get_transaction(tx_hash) is not None
        except Exception:
            return False

    # ---- helpers ---------------------------------------------------------------------------
    def counterparty(self, session_id: str) -> Counterparty:
        return self.sessions.sessions[session_counterparty(session_id)]

    def _take_cancel(self, order: Order) -> bool:
        req = self._cancel_requests.pop(order.order_id, None)
        if req is None:
            return False
        self._transition(order, OrdStatus.CANCELED, f"canceled by request {req[1]} before any transaction",
                         exec_type="4", cancel_cl_ord_id=req[1], leaves=Decimal(0))
        return True

    def _write_ahead(self, order_id: str, purpose: str, w: TradingWallet):
        def persist(sent: SentTx) -> None:
            self.journal.record_signed_tx(order_id=order_id, purpose=purpose, chain_id=w.wallet.chain_id,
                                          wallet=w.wallet.address, nonce=sent.nonce, tx_hash=sent.signed.tx_hash,
                                          raw_tx=sent.signed.raw, gas_limit=sent.gas_limit,
                                          max_fee_per_gas=sent.max_fee_per_gas,
                                          max_priority_fee_per_gas=sent.max_priority_fee_per_gas)
            crash_point("after_write_ahead")
        return persist

    def _record_receipt(self, r: Receipt) -> None:
        self.journal.record_receipt(tx_hash=r.tx_hash, block_number=r.block_number, block_hash=r.block_hash,
                                    status=r.status, gas_used=r.gas_used, effective_gas_price=r.effective_gas_price,
                                    revert_reason=r.revert_reason,
                                    logs=[{"address": l["address"], "topics": ["0x" + t.hex() for t in l["topics"]],
                                           "data": "0x" + l["data"].hex(), "logIndex": l["logIndex"]} for l in r.logs])

    def _reject(self, order: Order, rej: Rejection) -> None:
        self._transition(order, OrdStatus.REJECTED, rej.text, exec_type="8", rej=rej.reason, text=rej.text,
                         leaves=Decimal(0))

    def _finish_no_fill(self, order: Order, status: OrdStatus, text: str, **proof) -> None:
        self._transition(order, status, text, exec_type=lifecycle.EXEC_TYPE_FOR[status], text=text,
                         leaves=Decimal(0), **proof)

    def _transition(self, order: Order, status: OrdStatus, reason: str, *, exec_type: str, leaves: Decimal | None = None,
                    rej: RejectReason | None = None, text: str | None = None, venue: str | None = None,
                    wallet: str | None = None, **report) -> None:
        lifecycle.check(order.status, status)
        if leaves is None:
            leaves = (order.order_qty - order.cum_qty) if order.order_qty is not None else Decimal(0)
        order.status, order.text = status, text or order.text
        self.journal.transition(order.order_id, status, reason, cum_qty=order.cum_qty, leaves_qty=leaves,
                                avg_px=order.avg_px, text=text, rej_reason=int(rej) if rej is not None else None,
                                venue=venue, wallet=wallet)
        if status.terminal:
            crash_point("before_report")
        self._send(order.session_id, self._er(order, exec_type, leaves=leaves, rej=rej, text=text, **report))

    def _er(self, order: Order, exec_type: str, *, order_id: str | None = None, ord_status: OrdStatus | None = None,
            leaves: Decimal | None = None, rej: RejectReason | None = None, text: str | None = None,
            exec_id: str | None = None, last_qty: Decimal | None = None, last_px: Decimal | None = None,
            fee: Decimal | None = None, tx_hash: str | None = None, block: int | None = None,
            chain_id: int | None = None, req_id: str | None = None, cancel_cl_ord_id: str | None = None) -> ExecutionReport:
        oid = order_id or order.order_id
        status = ord_status or order.status
        if leaves is None:
            leaves = Decimal(0) if status.terminal or order.order_qty is None else order.order_qty - order.cum_qty
        if chain_id is None and tx_hash is not None:
            chain_id = self.spec.chain_of(self.spec.instruments[order.symbol]).chain_id
        return ExecutionReport(
            order_id=oid, cl_ord_id=cancel_cl_ord_id or order.cl_ord_id,
            orig_cl_ord_id=order.cl_ord_id if cancel_cl_ord_id else None,
            exec_id=exec_id or self._exec_id(oid), exec_type=exec_type, ord_status=status, side=order.side,
            symbol=order.symbol, order_qty=order.order_qty, cash_order_qty=order.cash_order_qty, price=order.price,
            cum_qty=order.cum_qty, leaves_qty=leaves, avg_px=order.avg_px, last_qty=last_qty, last_px=last_px,
            text=text, rej_reason=rej, fee_eth=fee, tx_hash=tx_hash, block_number=block, chain_id=chain_id,
            venue=order.venue, ord_status_req_id=req_id, account=order.account,
            transact_time=datetime.now(timezone.utc))

    def _exec_id(self, order_id: str) -> str:
        with self._lock:
            self._exec_seq += 1
            return f"{order_id}-{int(time.time() * 1000)}-{self._exec_seq}"

    def _send(self, session_id: str, er: ExecutionReport) -> None:
        if self.reporter is not None:
            self.reporter.execution_report(session_id, er)

    def _cancel_reject(self, session_id: str, cl_ord_id: str, orig: str, order_id: str, status: OrdStatus,
                       too_late: bool, text: str) -> None:
        if self.reporter is not None:
            self.reporter.cancel_reject(session_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, order_id=order_id,
                                        ord_status=status, too_late=too_late, text=text)

    def _order_from_row(self, row) -> Order:
        return Order(session_id=row.session_id, cl_ord_id=row.cl_ord_id, symbol=row.symbol, side=Side(row.side),
                     ord_type=OrdType(row.ord_type), time_in_force=_tif(row.time_in_force), order_qty=row.order_qty,
                     cash_order_qty=row.cash_order_qty, price=row.price, account=row.account,
                     expire_time=row.expire_time, ex_destination=row.ex_destination, order_id=row.order_id,
                     status=row.status, cum_qty=row.cum_qty or Decimal(0), avg_px=row.avg_px or Decimal(0),
                     text=row.text, venue=row.venue, wallet=row.wallet, created_at=row.created_at)


def session_counterparty(session_id: str) -> str:
    """QuickFIX SessionID string 'FIX.4.4:FIXBRIDGE->CLIENT1' -> 'CLIENT1'."""
    return session_id.rsplit("->", 1)[-1]


def _tif(v):
    from fixbridge.orders.model import TimeInForce
    return TimeInForce(v) if v else None


def _rej(code: int | None) -> RejectReason | None:
    return RejectReason(code) if code is not None else None


def _revert_status(reason: str) -> OrdStatus:
    return OrdStatus.EXPIRED if "EXPIRED" in reason.upper() else OrdStatus.CANCELED


def _short(e: Exception) -> str:
    """A one-line reason: a revert's message rather than its raw data."""
    s = e.message if isinstance(e, ContractLogicError) and e.message else str(e)
    return s if len(s) < 200 else s[:200] + "…"
