"""The engine's journal hooks that several components share: the write-ahead of a signed
transaction, a receipt's row, and what a restart reads back from an order's events. Functions and
one small class over the `Journal`; no order state here."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fixbridge.chain.submitter import Receipt, SentTx
from fixbridge.engine.faults import crash_point
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus

if TYPE_CHECKING:
    from fixbridge.engine.markets import TradingWallet

CANCEL_CL_ORD_ID = "cancel_cl_ord_id"  # the journal detail key that keeps a cancel's ClOrdID for a restart


class WriteAhead:
    """The journal hook that must return before a transaction is broadcast (the write-ahead
    invariant: every signed transaction is journaled with its nonce and raw bytes first)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def hook(self, order_id: str | None, purpose: str, w: "TradingWallet", deferred: bool = False,
             status: OrdStatus | None = None) -> Callable[[SentTx], None]:
        """Inside a batch it commits the batch (the caller broadcasts next), unless the caller
        defers its broadcast to the batch's commit itself (deferred=True)."""
        journal = self.journal

        def persist(sent: SentTx) -> None:
            journal.record_signed_tx(order_id=order_id, purpose=purpose, chain_id=w.wallet.chain_id,
                                     wallet=w.wallet.address, nonce=sent.nonce, tx_hash=sent.signed.tx_hash,
                                     raw_tx=sent.signed.raw, gas_limit=sent.gas_limit,
                                     max_fee_per_gas=sent.max_fee_per_gas,
                                     max_priority_fee_per_gas=sent.max_priority_fee_per_gas, order_status=status)
            b = journal.in_batch()
            if b is not None and deferred:
                b.after_commit(lambda: crash_point("after_write_ahead"))
                return
            if b is not None:
                b.flush(wait=True)
            crash_point("after_write_ahead")
        return persist


class WalletLease:
    """Whether this instance still holds its wallets' leases (set by the bridge's renewal). No
    signature without it: every component that signs asks `lost` first."""

    def __init__(self) -> None:
        self.lost: str | None = None  # why the leases could not be renewed, or None


def record_receipt(journal: Journal, r: Receipt, order_status: OrdStatus | None = None) -> None:
    journal.record_receipt(tx_hash=r.tx_hash, block_number=r.block_number, block_hash=r.block_hash,
                           status=r.status, gas_used=r.gas_used, effective_gas_price=r.effective_gas_price,
                           revert_reason=r.revert_reason, order_status=order_status,
                           logs=[{"address": l["address"], "topics": ["0x" + t.hex() for t in l["topics"]],
                                  "data": "0x" + l["data"].hex(), "logIndex": l["logIndex"]} for l in r.logs])


def journaled_detail(journal: Journal, order_id: str, key: str, kind: str | None = None):
    """The latest value of `key` in the details of an order's journaled events (of `kind`), or
    None: what a restart needs back that the order's row does not hold (the quote's deadline;
    a cancel's ClOrdID, from the PendingCancel transition or the note of a cancel held for an
    order not yet sent, so the answer after a restart names the client's own request)."""
    found = [e.detail[key] for e in journal.events(order_id)
             if (kind is None or e.kind == kind) and e.detail and e.detail.get(key) is not None]
    return found[-1] if found else None
