"""Recovery at start: every order the journal left open is finished. Reports the client never got
go out first (each order's New before anything after it); an order with a journaled transaction
is found on chain and settled, or rebroadcast from its journaled bytes (same nonce: it can never
run twice); an order nothing was sent for is sent now if still young enough, else it ends. Never a
second transaction while the first may land."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import structlog
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from fixbridge.chain.rpc import batch_call
from fixbridge.engine.approvals import NEVER, approved_by
from fixbridge.engine.confirmation import Confirmer
from fixbridge.engine.desk import OrderDesk, order_from_row
from fixbridge.engine.flights import ApprovalTerms, Attempt, InFlight, InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.journaling import CANCEL_CL_ORD_ID, journaled_detail
from fixbridge.engine.markets import MAX_UINT256
from fixbridge.engine.planning import Planner
from fixbridge.engine.queues import NewOrder, WalletQueues
from fixbridge.engine.resting import RestingBook
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus, RejectReason
from fixbridge.orders.resting import rests
from fixbridge.orders.validation import Rejection

log = structlog.get_logger(__name__)

RECOVERY_CHUNK = 64       # journaled in-flight orders looked up and settled together at start


class Recovery:
    def __init__(self, journal: Journal, book: InFlightBook, heads: ChainHeads, desk: OrderDesk, planner: Planner,
                 confirmer: Confirmer, queues: WalletQueues, resting: RestingBook) -> None:
        self.journal, self.book, self.heads, self.desk = journal, book, heads, desk
        self.planner, self.confirmer, self.queues, self.resting = planner, confirmer, queues, resting

    def recover(self) -> None:
        """Finish every order the journal left open."""
        since = datetime.now(timezone.utc) - timedelta(days=7)
        desk = self.desk
        unacked = self.journal.unreported_acks(since)
        open_rows = self.journal.open_orders()
        for row in self.journal.unreported_terminal_orders(since):
            # The outcome was journaled but the process died before its report went out.
            log.info("recovery: send the terminal report the client never got", order_id=row.order_id,
                     with_new=row.order_id in unacked)
            if row.order_id in unacked:
                desk.resend_new(row)
            desk.status(row.session_id, row.cl_ord_id, row.order_id, None, event=None)
        for row in open_rows:
            if row.order_id in unacked:
                log.info("recovery: send the New the client never got", order_id=row.order_id)
                desk.resend_new(row)
        journaled = {row.order_id: self.journal.transactions_for(row.order_id) for row in open_rows}
        # Approvals first: an order taken up again finds its approval in flight and sends its swap
        # behind it, rather than a second approval.
        approvals = [(row, t) for row in open_rows for t in journaled[row.order_id]
                     if t.purpose == "approve" and t.status in ("signed", "broadcast")]
        if approvals:
            log.info("recovery: approvals in flight", count=len(approvals))
            self._recover_flights([f for f in (self._recovered_approval(row, t) for row, t in approvals) if f])
        in_flight = []
        for row in open_rows:
            txs = [t for t in journaled[row.order_id] if t.purpose in ("swap", "cancel") and t.status != "failed"]
            if txs and rests(row.time_in_force, row.ord_type):
                txs = self._unsettled_slice(row.order_id, txs)
            if not txs:
                self._recover_unsent(row)
                continue
            in_flight.append((row, txs))
        if in_flight:
            log.info("recovery: orders with transactions in flight", count=len(in_flight))
            self._recover_in_flight(in_flight)

    def _unsettled_slice(self, order_id: str, txs: list) -> list:
        """A resting order's transactions that are still its business: those of its last slice (the
        highest nonce), unless that slice's fills are journaled (it settled; the order rests)."""
        last = max(t.nonce for t in txs)
        current = [t for t in txs if t.nonce == last]
        filled = {f.tx_hash for f in self.journal.fills_for(order_id)}
        return [] if any(t.tx_hash in filled for t in current) or all(
            t.status in ("reverted", "replaced", "dropped") for t in current) else current

    def _recover_unsent(self, row) -> None:
        # A resting order with nothing in flight rests again (a slice fired but not yet signed is
        # looked at again against the market as it is now).
        if row.status is not OrdStatus.PENDING_NEW and rests(row.time_in_force, row.ord_type):
            order = order_from_row(row)
            if not row.resting:
                self.journal.set_resting(row.order_id, True, row.status, "rests again: its slice was not sent "
                                         "before the bridge stopped")
            asked = journaled_detail(self.journal, row.order_id, CANCEL_CL_ORD_ID)
            if asked:  # the client asked to cancel it before the crash
                self.desk.hold_cancel(row.order_id, row.session_id, asked)
            order.resting = True
            self.journal.after_commit(lambda: self.resting.returned(order))
            return
        # Rule: an order nothing was sent for is sent now if it is younger than its session's
        # deadline (the client still expects it to trade), otherwise it expires unsent.
        now = datetime.now(timezone.utc)
        age = (now - row.created_at).total_seconds()
        if age > self.desk.counterparty(row.session_id).deadline_seconds or (
                row.expire_time is not None and row.expire_time <= now):
            order = order_from_row(row)
            if order.status is OrdStatus.PENDING_NEW:
                self.desk.reject(order, Rejection(RejectReason.TOO_LATE_TO_ENTER,
                                                  f"Not accepted before the bridge stopped; {age:.0f}s old now"))
            else:
                self.desk.finish_no_fill(order, OrdStatus.EXPIRED,
                                         f"Not sent before the bridge stopped; {age:.0f}s old now, past its deadline")
            return
        asked = journaled_detail(self.journal, row.order_id, CANCEL_CL_ORD_ID)
        if asked:  # the client asked to cancel it before the crash: its turn cancels it, as it would have
            self.desk.hold_cancel(row.order_id, row.session_id, asked)
        log.info("recovery: re-queue unsent order", order_id=row.order_id, status=row.status.value,
                 cancel_requested=asked)
        wallet = self.planner.wallet_for(row.session_id, row.account, row.symbol)
        item = NewOrder(row.order_id)
        self.journal.after_commit(lambda: self.queues.put(wallet, item))

    def _recover_in_flight(self, items: list) -> None:
        """Rebuild the in-flight book from the journal; what was mined while we were away settles,
        the rest is rebroadcast from its journaled bytes. RECOVERY_CHUNK orders at a time: their
        lookups in one JSON-RPC batch, their rows in one group commit, their reports after it."""
        for start in range(0, len(items), RECOVERY_CHUNK):
            self._recover_flights([f for f in (self._recovered(row, txs) for row, txs in items[start:start + RECOVERY_CHUNK])
                                   if f])

    def _recover_flights(self, flights: list[InFlight]) -> None:
        """Tracked again: what was mined while we were away settles, the rest is sent again."""
        with self.journal.batch():
            found = self._find_on_chain(flights)
            for f in flights:
                try:
                    mined = next(((found[a.tx_hash], a.tx_hash) for a in f.attempts if a.tx_hash in found), None)
                    if mined:
                        self.confirmer.mined(f, f.wallet.submitter.receipt_from_json(mined[0]), mined[1])
                        self.confirmer.settle(f)
                        continue
                    for a in f.attempts:
                        try:
                            f.wallet.submitter.broadcast(a.raw)
                            self.journal.set_tx_status(a.tx_hash, "broadcast", only_from=("signed",))
                        except Exception as e:
                            log.info("recovery: rebroadcast refused", tx=a.tx_hash, error=str(e)[:200])
                except Exception:
                    log.exception("recovery failed", order_id=f.order.order_id)

    def _recovered_approval(self, row, t) -> InFlight | None:
        """An open order's approval, journaled and not known mined: tracked again as the one in
        flight for its wallet, token and spender (its terms read back from the signed call)."""
        try:
            order = order_from_row(row)
            plan = self.planner.plan(order, self.desk.counterparty(order.session_id), quote=False)
            w = plan.wallet
            signed = TypedTransaction.from_bytes(HexBytes(t.raw_tx)).as_dict()
            token_addr, data = to_checksum_address(signed["to"]), bytes(signed["data"])
            token = next(k for k in self.planner.spec.tokens.values()
                         if k.chain == w.chain and k.address.lower() == token_addr.lower())
            spender, amount = approved_by(data)
            f = InFlight(order=order, plan=plan, wallet=w, nonce=t.nonce, to=token_addr, data=data,
                         gas_limit=t.gas_limit, attempts=[Attempt(t.tx_hash.lower(), t.raw_tx, t.max_fee_per_gas,
                                                                  t.max_priority_fee_per_gas, "approve")],
                         sent_block=self.heads.head(w.chain), reserved=(token_addr, 0), deadline=NEVER,
                         approves=ApprovalTerms(token, spender, amount, "standing" if amount == MAX_UINT256 else "exact"))
            self.book.track(f)
            return f
        except Exception:
            log.exception("recovery of an approval failed", order_id=row.order_id, tx=t.tx_hash)
            return None

    def _recovered(self, row, txs) -> InFlight | None:
        """The in-flight record of a journaled order and its transactions, tracked again."""
        try:
            order = order_from_row(row)
            cp = self.desk.counterparty(order.session_id)
            plan = self.planner.plan(order, cp, quote=False)
            w = plan.wallet
            # Re-pricing must resend exactly what was signed: take the call from the journaled bytes.
            first = [t for t in txs if t.purpose != "cancel"][0]
            signed = TypedTransaction.from_bytes(HexBytes(first.raw_tx)).as_dict()
            call_to, call_data = to_checksum_address(signed["to"]), bytes(signed["data"])
            if rests(order.time_in_force, order.ord_type):
                # A resting order's slice may have gone to another venue than its first plan: the one
                # whose router the signed call went to decodes its logs.
                venue = next((v for v in self.planner.markets.venues.values()
                              if getattr(v, "router", None) == call_to), None)
                if venue is not None and venue is not plan.venue:
                    plan = self.planner.plan(replace(order, ex_destination=venue.name), cp, quote=False)
            nonce = txs[0].nonce
            attempts = [Attempt(t.tx_hash.lower(), t.raw_tx, t.max_fee_per_gas, t.max_priority_fee_per_gas,
                                "cancel" if t.purpose == "cancel" else "swap") for t in txs if t.nonce == nonce]
            f = InFlight(order=order, plan=plan, wallet=w, nonce=nonce, to=call_to, data=call_data,
                         gas_limit=txs[0].gas_limit, attempts=attempts, sent_block=self.heads.head(w.chain),
                         reserved=(plan.intent.token_in, 0),
                         prior=self.resting.prior_units(order.order_id) if rests(order.time_in_force, order.ord_type)
                         else None)
            asked = (journaled_detail(self.journal, order.order_id, CANCEL_CL_ORD_ID)
                     if order.status in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_NEW) else None)
            if order.status is OrdStatus.PENDING_CANCEL:
                # A journal from before the cancel's ClOrdID was kept: the order's own.
                f.cancel = (order.session_id, asked or order.cl_ord_id)
            elif asked and order.status is OrdStatus.PENDING_NEW:  # a cancel raced its swap behind its approval
                f.cancel = (order.session_id, asked)
            if order.status is OrdStatus.PENDING_NEW:  # its New waits for its approval, if that is in flight
                f.waits_for = next((a for a in list(self.book.approvals.values())
                                    if a.order.order_id == order.order_id and a.nonce < nonce), None)
            self.book.track(f)
            return f
        except Exception:
            log.exception("recovery failed", order_id=row.order_id)
            return None

    @staticmethod
    def _find_on_chain(flights: list[InFlight]) -> dict[str, dict]:
        """tx hash -> raw receipt, for the attempts the node knows and has mined (one JSON-RPC batch
        per chain). A lookup the node does not answer counts as not found: the attempt is rebroadcast,
        which a node that has it refuses."""
        found: dict[str, dict] = {}
        by_chain: dict[str, list] = {}
        for f in flights:
            by_chain.setdefault(f.chain, []).extend((f.wallet, a.tx_hash) for a in f.attempts)
        for pairs in by_chain.values():
            w3 = pairs[0][0].submitter.w3
            try:
                answers = batch_call(w3, [c for _, h in pairs for c in (("eth_getTransactionByHash", [h]),
                                                                         ("eth_getTransactionReceipt", [h]))])
            except Exception as e:
                log.warning("recovery: lookups failed", error=str(e)[:200])
                continue
            for i, (_, h) in enumerate(pairs):
                tx, receipt = answers[2 * i].get("result"), answers[2 * i + 1].get("result")
                if tx is not None and receipt is not None:
                    found[h] = receipt
        return found
