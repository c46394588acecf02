"""Confirmation: a tracked transaction's receipt becomes the order's outcome. Records the receipts
of our transactions, settles each once it is deep enough for its session (`confirmations`) and its
block is still the one the watcher follows, reports fills from the Swap events, and takes back
what a reorg removed (fills already reported get a Trade Cancel, 150=H, and the order waits for
its transaction again). Owns: journal first, then report, for every outcome of a mined transaction."""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import structlog

from fixbridge.chain.submitter import Receipt
from fixbridge.engine.desk import OrderDesk
from fixbridge.engine.faults import crash_point
from fixbridge.engine.flights import InFlight, InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.journaling import record_receipt
from fixbridge.journal import Journal
from fixbridge.orders.model import ExecEvent, Fill, OrdStatus, Side
from fixbridge.orders.units import from_units, price
from fixbridge.venues.base import Exact

log = structlog.get_logger(__name__)

SETTLE_FLUSH_EVERY = 8    # settled orders per journal unit within one block


def revert_status(reason: str) -> OrdStatus:
    """A revert for a passed deadline ends the order Expired; any other, Canceled."""
    return OrdStatus.EXPIRED if "EXPIRED" in reason.upper() or "Transaction too old" in reason else OrdStatus.CANCELED


class Confirmer:
    def __init__(self, journal: Journal, book: InFlightBook, heads: ChainHeads, desk: OrderDesk) -> None:
        self.journal, self.book, self.heads, self.desk = journal, book, heads, desk

    # ---- receipts ------------------------------------------------------------------------------
    def take_receipts(self, chain: str, receipts: dict[str, dict], head: int) -> Callable[[InFlight], None]:
        """Record the receipts of our transactions; settle those already deep enough. Returns the
        settling function (flushing the journal every SETTLE_FLUSH_EVERY orders)."""
        b = self.journal.in_batch()
        settled = 0

        def settle(f: InFlight) -> None:
            nonlocal settled
            self.settle(f)
            settled += 1
            if b is not None and settled % SETTLE_FLUSH_EVERY == 0:
                b.flush()  # the first reports of a full block leave while the rest settle

        watcher = self.heads.watchers[chain]
        for tx_hash, raw in receipts.items():
            f = self.book.of_hash(tx_hash)
            if f is None or f.receipt is not None:
                continue
            try:
                receipt = f.wallet.submitter.receipt_from_json(raw)
            except Exception as e:  # e.g. a revert's reason could not be read: the node is failing
                log.info("receipt not read; asked again", tx=tx_hash, error=str(e)[:200])
                watcher.owe(tx_hash, int(raw["blockNumber"], 16))
                continue
            self.mined(f, receipt, tx_hash)
            if self.confirmed(f, head, watcher.hashes):
                settle(f)  # reported at inclusion: at once, not after the rest of the block's receipts
        return settle

    def on_block(self, chain: str, number: int, receipts: dict[str, dict]) -> None:
        settle = self.take_receipts(chain, receipts, number)
        hashes = self.heads.watchers[chain].hashes
        for f in [f for f in self.book.on_chain(chain) if f.receipt is not None]:
            if self.confirmed(f, number, hashes):
                settle(f)

    def confirmations(self, f: InFlight) -> int:
        return max(1, self.desk.counterparty(f.order.session_id).confirmations)

    def confirmed(self, f: InFlight, head: int, hashes: dict[int, str]) -> bool:
        """Mined, deep enough for its session, and its block still the one the watcher follows."""
        assert f.receipt is not None
        return (head - f.receipt.block_number + 1 >= self.confirmations(f)
                and hashes.get(f.receipt.block_number) == f.receipt.block_hash)

    def mined(self, f: InFlight, receipt: Receipt, tx_hash: str) -> None:
        f.receipt = receipt
        f.mined_attempt = next(a for a in f.attempts if a.tx_hash == tx_hash)
        record_receipt(self.journal, receipt, f.order.status if f.approves is None else None)
        for a in f.attempts:
            if a.tx_hash != tx_hash:
                self.journal.set_tx_status(a.tx_hash, "replaced")

    # ---- outcomes ------------------------------------------------------------------------------
    def settle(self, f: InFlight) -> None:
        """Journal first, then report: the outcome of a mined, confirmed transaction."""
        if self.book.flights.get(f.key) is not f:
            return  # settled already (a swap behind an approval settles with it, within one block's loop)
        if f.approves is not None:
            return self._settle_approval(f)
        if f.waits_for is not None:
            return  # its approval's receipt is not settled yet (served late): it settles this swap
        self.book.untrack(f)
        receipt, attempt, order = f.receipt, f.mined_attempt, f.order
        assert receipt is not None and attempt is not None
        crash_point("after_receipt")
        if f.orphaned is not None:  # the order ended when its approval failed: journaled, not reported
            self.journal.add_event(order.order_id, "tx", f"{receipt.tx_hash} ({attempt.kind}) mined after the order "
                                   f"ended: {f.orphaned}", detail={"tx_hash": receipt.tx_hash})
            return
        chain_id = f.wallet.wallet.chain_id
        fee = from_units(receipt.fee_wei, 18)
        proof = dict(tx_hash=receipt.tx_hash, block=receipt.block_number, fee=fee, chain_id=chain_id)
        desk = self.desk
        if order.status is OrdStatus.PENDING_NEW:
            # Sent behind its approval, and the approval settled while the bridge was down
            # (recovery): the New it never got comes first.
            desk.accept(order, f.plan, "; its approval was mined before the restart")
        if attempt.kind == "cancel" and f.cancel is None:  # the no-op that replaced a swap past its deadline
            return desk.finish_no_fill(order, OrdStatus.EXPIRED, f"Expired: its deadline passed before it was mined; "
                                       f"the no-op {receipt.tx_hash} took its nonce", **proof)
        if attempt.kind == "cancel":
            who = f.cancel[1]
            return desk.transition(order, OrdStatus.CANCELED, f"canceled: the no-op replacement {receipt.tx_hash} "
                                   "was mined in place of the swap", event=ExecEvent.CANCELED, leaves=Decimal(0),
                                   cancel_cl_ord_id=who, text="Canceled: replaced on chain before it executed",
                                   **proof)
        if receipt.status != 1:
            reason = receipt.revert_reason or "reverted"
            return desk.finish_no_fill(order, revert_status(reason), f"Transaction reverted: {reason}", **proof)
        if f.cancel is not None and f.prior is None:
            desk.cancel_reject(f.cancel[0], f.cancel[1], order.cl_ord_id, order.order_id, order.status, True,
                               f"Too late to cancel: the swap {receipt.tx_hash} was mined first")
        self._report_fills(f, receipt, proof)
        self.book.keep_settled(f, receipt.block_number)

    def _after_slice(self, f: InFlight, receipt: Receipt, proof: dict) -> None:
        """A resting order's slice has filled: the rest waits again, or, if a cancel was asked while
        the slice was on its way, the rest is canceled (the fill itself was too late to stop)."""
        order = f.order
        if order.status.terminal:
            if f.cancel is not None:
                self.desk.cancel_reject(f.cancel[0], f.cancel[1], order.cl_ord_id, order.order_id, order.status, True,
                                        f"Too late to cancel: the swap {receipt.tx_hash} filled the order first")
            return
        if f.cancel is not None:
            self.desk.transition(order, OrdStatus.CANCELED, f"canceled by request {f.cancel[1] or 'of the bridge'}: "
                                 "the rest after the slice's fill", event=ExecEvent.CANCELED, leaves=Decimal(0),
                                 cancel_cl_ord_id=f.cancel[1], tx_hash=receipt.tx_hash, block=receipt.block_number,
                                 chain_id=proof["chain_id"])
            return
        assert self.desk.shelf is not None
        self.desk.shelf.rest_again(order, f"slice {receipt.tx_hash} filled; {order.leaves_qty} left")

    def _report_fills(self, f: InFlight, receipt: Receipt, proof: dict) -> None:
        order, plan = f.order, f.plan
        legs = plan.venue.decode_swaps({"logs": receipt.logs}, plan.intent)
        if not legs:
            return self.desk.finish_no_fill(order, OrdStatus.CANCELED, "Transaction succeeded but no swap log was found",
                                            **proof)
        base_total, quote_total = f.prior or (0, 0)  # a resting order's earlier slices count towards it
        in_total = out_total = 0
        intent = plan.intent
        for i, leg in enumerate(legs):
            base_units, quote_units = ((leg.amount_in, leg.amount_out) if order.side is Side.SELL
                                       else (leg.amount_out, leg.amount_in))
            base_total += base_units
            quote_total += quote_units
            in_total += leg.amount_in
            out_total += leg.amount_out
            suffix = f":{f.generation}" if f.generation else ""
            fill = Fill(order_id=order.order_id, exec_id=f"{receipt.tx_hash}:{leg.log_index}{suffix}",
                        tx_hash=receipt.tx_hash, log_index=leg.log_index, block_number=receipt.block_number,
                        last_qty=from_units(base_units, plan.base.decimals),
                        last_px=price(quote_units, plan.quote.decimals, base_units, plan.base.decimals),
                        base_units=base_units, quote_units=quote_units)
            last = i == len(legs) - 1
            complete = (in_total if intent.exact is Exact.INPUT else out_total) >= intent.amount
            if f.prior is not None:  # a slice: complete when the order is
                complete = order.order_qty is not None and from_units(base_total, plan.base.decimals) >= order.order_qty
            self.journal.record_fill(fill, proof["fee"] if last else None)
            f.reported_exec_ids.append(fill.exec_id)
            order.cum_qty = from_units(base_total, plan.base.decimals)
            order.avg_px = price(quote_total, plan.quote.decimals, base_total, plan.base.decimals)
            if order.cash_order_qty is not None and last and complete:
                order.order_qty = order.cum_qty  # a cash order's size in base is known once it fills
            status = OrdStatus.FILLED if last and complete else OrdStatus.PARTIALLY_FILLED
            leaves = Decimal(0) if status is OrdStatus.FILLED else None
            self.desk.transition(order, status, f"fill {fill.exec_id}: {fill.last_qty} @ {fill.last_px}",
                                 event=ExecEvent.TRADE, exec_id=fill.exec_id, last_qty=fill.last_qty,
                                 last_px=fill.last_px, leaves=leaves,
                                 **{**proof, "fee": proof["fee"] if last else None})
        if f.prior is not None:
            return self._after_slice(f, receipt, proof)
        if order.status is OrdStatus.PARTIALLY_FILLED:
            # IOC: what the venue could not fill at the limit is canceled, not left working.
            self.desk.finish_no_fill(order, OrdStatus.CANCELED, "IOC: the rest could not be filled at the limit price",
                                     tx_hash=receipt.tx_hash, block=receipt.block_number, chain_id=proof["chain_id"])

    # ---- approvals -----------------------------------------------------------------------------
    def _settle_approval(self, f: InFlight) -> None:
        """An approval mined: the orders whose swaps wait on it are accepted (their New), and each
        swap already mined settles now. Reverted: those orders end (approval_failed)."""
        self.book.untrack(f)
        receipt, terms = f.receipt, f.approves
        assert receipt is not None and terms is not None
        if receipt.status != 1:
            return self.approval_failed(f, f"Approval of {terms.token.symbol} reverted: "
                                           f"{receipt.revert_reason or 'reverted'} ({receipt.tx_hash})")
        f.granted = True  # a swap signed behind it after this point sees it (Submission, under the lock)
        self.book.keep_settled(f, receipt.block_number)  # a reorg may take it back
        if f.generation == 0:
            self.journal.record_approval(order_id=f.order.order_id, chain_id=f.wallet.wallet.chain_id,
                                         wallet=f.wallet.wallet.address, token=terms.token.address,
                                         spender=terms.spender, amount_units=terms.amount, policy=terms.policy,
                                         tx_hash=receipt.tx_hash)
        else:
            self.journal.add_event(f.order.order_id, "approval", f"approval {receipt.tx_hash} mined again in block "
                                   f"{receipt.block_number} after a reorg")
        watcher = self.heads.watcher(f.chain)
        for swap in self.book.waiting_on(f):
            swap.waits_for = None
            self.journal.add_event(swap.order.order_id, "approval", f"approved {terms.spender} for {terms.token.symbol} "
                                   f"({terms.policy})", detail={"tx_hash": receipt.tx_hash, "amount": str(terms.amount)})
            if swap.order.status is OrdStatus.PENDING_NEW:
                self.desk.accept(swap.order, swap.plan, f"; its approval {receipt.tx_hash} was mined")
            if swap.receipt is not None and watcher is not None and self.confirmed(swap, self.heads.head(f.chain),
                                                                                    watcher.hashes):
                self.settle(swap)

    def approval_failed(self, f: InFlight, why: str) -> None:
        """The approval reverted or was lost: every order waiting on it ends, Rejected (its New never
        went out) with the reason. A swap behind it already mined (it reverted: no allowance) is
        journaled; one not mined yet is replaced by a no-op (Resender): it could only revert,
        paying a swap's gas for nothing, and its nonce must still be used for the wallet's later
        ones. The next order of the wallet finds no approval in flight and sends its own."""
        self.book.untrack(f)
        f.failed = why
        log.warning("approval failed", wallet=f.wallet.wallet.name, nonce=f.nonce, why=why)
        self.journal.add_event(f.order.order_id, "approval", why, detail={"tx_hash": f.attempts[-1].tx_hash})
        for swap in self.book.waiting_on(f):
            swap.waits_for, swap.orphaned = None, why
            order = swap.order
            if not order.status.terminal:
                behind = (f"its swap {swap.receipt.tx_hash} reverted" if swap.receipt is not None
                          else f"its swap {swap.attempts[-1].tx_hash} is replaced by a no-op")
                self.desk.end_without_fill(order, OrdStatus.CANCELED, f"{why}; nothing traded, {behind}")
            if swap.cancel is not None:
                self.desk.cancel_reject(swap.cancel[0], swap.cancel[1], order.cl_ord_id, order.order_id, order.status,
                                        True, f"Too late to cancel: the order ended ({why})")
            if swap.receipt is not None:
                self.settle(swap)

    # ---- reorgs --------------------------------------------------------------------------------
    def reorg(self, chain: str, fork: int) -> list[InFlight]:
        """Blocks above `fork` are gone. What they held goes back in flight; returns the flights
        whose outcome was taken back, to be sent again (a reorg drops what it removed on some nodes)."""
        for f in self.book.on_chain(chain):
            if f.receipt is not None and f.receipt.block_number > fork:
                self.journal.add_event(f.order.order_id, "reorg", f"block {f.receipt.block_number} with "
                                       f"{f.receipt.tx_hash} was reorged out before confirmation")
                f.receipt, f.mined_attempt = None, None
        taken_back = []
        for key, (f, n) in list(self.book.settled.items()):
            if f.chain != chain or n <= fork:
                continue
            self.book.settled.pop(key)
            if f.approves is not None:
                self._take_back_approval(f, fork)
            else:
                self._take_back(f, fork)
            taken_back.append(f)
        return taken_back

    def _take_back_approval(self, f: InFlight, fork: int) -> None:
        """A settled approval's block is gone: in flight again (sent again, settled again when mined);
        orders that come meanwhile wait on it, as on any approval in flight."""
        receipt = f.receipt
        assert receipt is not None
        self.journal.add_event(f.order.order_id, "reorg", f"reorg: block {receipt.block_number} holding the approval "
                               f"{receipt.tx_hash} is no longer on the chain: the approval is in flight again",
                               detail={"fork_block": fork})
        f.granted = False
        self._in_flight_again(f, fork)

    def _take_back(self, f: InFlight, fork: int) -> None:
        """A reported outcome's block is gone: bust its fills (Trade Cancel) and wait again."""
        order = f.order
        receipt = f.receipt
        assert receipt is not None
        reason = f"reorg: block {receipt.block_number} holding {receipt.tx_hash} is no longer on the chain"
        self.journal.add_event(order.order_id, "reorg", reason, detail={"fork_block": fork})
        if f.reported_exec_ids:
            self.journal.bust_fills(f.reported_exec_ids)
            busted = list(f.reported_exec_ids)
            base_units, quote_units = f.prior or (0, 0)  # a resting order keeps what its earlier slices filled
            order.cum_qty = from_units(base_units, f.plan.base.decimals)
            order.avg_px = price(quote_units, f.plan.quote.decimals, base_units, f.plan.base.decimals)
            if order.cash_order_qty is not None:
                order.order_qty = None
            back_to = OrdStatus.PARTIALLY_FILLED if base_units else OrdStatus.NEW
            for exec_id in busted:
                self.desk.transition(order, back_to, f"{reason}; fill {exec_id} canceled",
                                     event=ExecEvent.TRADE_CANCEL, exec_ref_id=exec_id,
                                     trade_cancel=True, text=f"Trade canceled by a chain reorg: {exec_id}")
            f.reported_exec_ids = []
        self._in_flight_again(f, fork)

    def _in_flight_again(self, f: InFlight, fork: int) -> None:
        """Back in the book, unmined, counted from the fork; a new generation keeps ExecIDs unique."""
        f.receipt, f.mined_attempt = None, None
        f.generation += 1
        f.last_action_block = fork
        self.book.track(f)
