"""Relaying what the node lost. A node can drop transactions it took: a pool evicts under pressure
(geth), and anvil drops a wallet's whole run of later nonces when a full block skips one of its
swaps for gas and the wallet's next, smaller swap then fits but is "nonce too high" in that block
(anvil's executor marks it invalid; its pool removes it with everything after it). Every later
nonce of the wallet waits behind the hole, and sending back one nonce per `replace_after_blocks`
stalled a 3,000-order burst over four wallets at one swap per three blocks (bench/throughput.py,
1x4). So each block the lowest pending transaction of each wallet is looked up (one
eth_getTransactionByHash); when the node no longer has it, every pending transaction of the
wallet is looked up in one batch and the lost ones are sent again, the same journaled bytes, in
one batch in nonce order. Those that cannot pay the base fee now are left to the Resender's
re-pricing on its schedule; those the node refuses are handed back to it for re-pricing at once."""
from __future__ import annotations

import structlog

from fixbridge.chain.rpc import BATCH_SIZE, batch_call
from fixbridge.chain.submitter import NoAnswer, nonce_used
from fixbridge.engine.flights import InFlight
from fixbridge.journal import Journal

log = structlog.get_logger(__name__)


class LostRelay:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @staticmethod
    def watched(flights: list[InFlight], chain_nonce: int, head: int) -> InFlight | None:
        """The wallet's lowest pending transaction, if the node has had a block's time to mine it:
        signed before `head`, handed to the node (not waiting for its journal row, not unanswered)."""
        f = next((f for f in flights if f.nonce >= chain_nonce and f.receipt is None), None)
        if f is None or f.queued or f.unsent or f.sent_block >= head:
            return None
        return f

    def relay(self, flights: list[InFlight], chain_nonce: int, head: int, height: int) -> list[tuple[InFlight, str]]:
        """`flights`: one wallet's pending transactions, in nonce order, looked after at block `head`
        (the node at `height` >= head, when the watcher is catching up). If the node lost the lowest, send
        again every one it lost; returns those it refused, with the refusal (to re-price). Raises on
        a node error (nothing decided; next block again)."""
        lowest = self.watched(flights, chain_nonce, head)
        if lowest is None:
            return []
        sub = lowest.wallet.submitter
        if sub.holds(lowest.attempts[-1].tx_hash) is not False:
            return []  # the node has it (or cannot say): waiting its turn is the Resender's business
        candidates = [f for f in flights if f.nonce >= chain_nonce and f.receipt is None and not f.queued]
        lost: list[InFlight] = []
        for i in range(0, len(candidates), BATCH_SIZE):
            part = candidates[i:i + BATCH_SIZE]
            answers = batch_call(sub.w3, [("eth_getTransactionByHash", [f.attempts[-1].tx_hash]) for f in part])
            lost += [f for f, a in zip(part, answers) if "error" not in a and a.get("result") is None]
        if not lost:
            return []
        # One that cannot pay the base fee now would be dropped again: it is left to the Resender's
        # re-pricing, on its schedule (its stuck timer is not reset).
        base_fee = sub.base_fee()
        again = [f for f in lost if f.attempts[-1].max_fee >= base_fee]
        refused: list[tuple[InFlight, str]] = []
        for i in range(0, len(again), BATCH_SIZE):
            part = again[i:i + BATCH_SIZE]
            for f, answer in zip(part, sub.broadcast_raws([f.attempts[-1].raw for f in part])):
                latest = f.attempts[-1]
                f.last_action_block = height  # acted on: its waiting starts now
                if isinstance(answer, NoAnswer):
                    f.unsent = True  # sent again at the next tick
                elif answer is None:
                    self.journal.add_event(f.order.order_id, "tx", f"rebroadcast {latest.tx_hash}: the node no longer had it")
                    self.journal.set_tx_status(latest.tx_hash, "broadcast")
                elif not nonce_used(answer):  # a used nonce: mined meanwhile; the nonce check settles it
                    refused.append((f, answer))
        if not again:
            return refused
        log.warning("the node lost transactions; sent again", wallet=lowest.wallet.wallet.name, lost=len(lost),
                    nonces=f"{lost[0].nonce}-{lost[-1].nonce}", underpriced=len(lost) - len(again), refused=len(refused))
        return refused
