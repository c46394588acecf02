"""Signed transactions (write-ahead), their statuses and receipts, and each wallet's nonces."""
from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fixbridge.orders.model import (
    OrdStatus,
)

from . import schema as db
from .core import JournalCore
from .rows import (
    _PENDING_TX,
    ReceiptRow,
    TxRow,
    UnknownTransaction,
    _address,
    _check,
    _hash32,
    _hex,
    _now,
    _receipt_row,
    _tx_row,
)

_log = structlog.get_logger(__name__)

class TransactionRecords:
    """The `transactions`, `receipts` and `wallet_nonces` tables."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

    # ---- transactions

    def record_signed_tx(
        self,
        *,
        order_id: str | None,
        purpose: str,
        chain_id: int,
        wallet: str,
        nonce: int,
        tx_hash: str,
        raw_tx: str,
        gas_limit: int,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        order_status: OrdStatus | None = None,
    ) -> None:
        """Write-ahead: journal a signed transaction BEFORE broadcasting it (status 'signed').

        In the same transaction wallet_nonces.next_nonce becomes max(existing, nonce + 1).
        Recording the very same signed transaction twice is a no-op; a different transaction
        with a journaled hash raises IntegrityError.
        """
        _check(purpose, db.TX_PURPOSES, "purpose")
        wallet = _address(wallet, "wallet")
        tx_hash = _hash32(tx_hash)
        raw_tx = _hex(raw_tx, "raw_tx")
        if nonce < 0:
            raise ValueError(f"nonce must be >= 0, got {nonce}")
        now = _now()

        known = None if order_status is None else OrdStatus(order_status).value

        tx_row = dict(
            order_id=order_id, purpose=purpose, chain_id=chain_id, wallet=wallet, nonce=nonce,
            tx_hash=tx_hash, raw_tx=raw_tx, gas_limit=gas_limit, max_fee_per_gas=max_fee_per_gas,
            max_priority_fee_per_gas=max_priority_fee_per_gas, status="signed", block_number=None,
            created_at=now, updated_at=now)
        insert_tx = self._j._prep_insert(db.Transaction.__table__, tuple(tx_row))
        nonce_row = dict(chain_id=chain_id, wallet=wallet, next_nonce=nonce + 1, updated_at=now)

        def op(s: Session) -> None:
            if known is None:
                self._j._require_order(s, order_id)  # (else the foreign key still refuses an unknown order)
            insert_tx.run(s, tx_row)
            self._j._tx_event(s, order_id, now, f"{purpose} tx signed: nonce {nonce}, {tx_hash}",
                           {"tx_hash": tx_hash, "status": "signed", "nonce": nonce, "wallet": wallet}, known)
            self._j._nonce_upsert.run(s, nonce_row)

        try:
            self._j._apply(op)
        except IntegrityError:
            with self._j._read() as s:
                existing = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == tx_hash))
                if existing is not None and existing.raw_tx == raw_tx and existing.order_id == order_id:
                    return
            raise

    def set_tx_status(self, tx_hash: str, status: str, block_number: int | None = None,
                      only_from: tuple[str, ...] | None = None) -> None:
        """Set a transaction's status ('broadcast', 'dropped', 'failed', ...) and, if given, its block.
        With only_from, only a transaction in one of those statuses changes (a receipt recorded by
        another thread in the meantime is never overwritten)."""
        _check(status, db.TX_STATUSES, "status")
        tx_hash = _hash32(tx_hash)
        self._j._apply(lambda s: self._set_tx_status(s, tx_hash, status, block_number, only_from))

    def set_tx_status_many(self, tx_hashes: list[str], status: str, only_from: tuple[str, ...] | None = None,
                           ts: datetime | None = None) -> None:
        """set_tx_status for several transactions in one write; ``ts`` is when it happened (for a
        broadcast: when the transactions were handed to the node, before any receipt)."""
        _check(status, db.TX_STATUSES, "status")
        hashes = [_hash32(h) for h in tx_hashes]
        if not hashes:
            return

        def op(s: Session) -> None:
            when = ts or _now()
            found = ((h, self._j._tx_with_order.first(s, {"tx_hash": h})) for h in hashes)
            rows = [(h, *r) for h, r in found if r is not None and (only_from is None or r[0] in only_from)]
            if not rows:
                return
            self._j._tx_status_update.run_many(s, [{"tx_hash": h, "status": status, "updated_at": when} for h, *_ in rows])
            events = [dict(order_id=order_id, ts=when, kind="tx", from_status=order_status,
                           to_status=order_status, reason=f"{purpose} tx {status}: {h}",
                           detail={"tx_hash": h, "status": status})
                      for h, _, purpose, order_id, order_status in rows if order_id is not None and order_status is not None]
            if events:
                self._j._append(s, db.OrderEvent.__table__, events)

        self._j._apply(op)

    def _set_tx_status(self, s: Session, tx_hash: str, status: str, block_number: int | None,
                       only_from: tuple[str, ...] | None) -> None:
        tx = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == tx_hash).with_for_update())
        if tx is None:
            raise UnknownTransaction(tx_hash)
        if only_from is not None and tx.status not in only_from:
            return
        tx.status = status
        if block_number is not None:
            tx.block_number = block_number
        tx.updated_at = _now()
        self._j._tx_event(s, tx.order_id, tx.updated_at, f"{tx.purpose} tx {status}: {tx_hash}",
                       {"tx_hash": tx_hash, "status": status, "block_number": block_number})

    def record_receipt(
        self,
        *,
        tx_hash: str,
        block_number: int,
        block_hash: str,
        status: int,
        gas_used: int,
        effective_gas_price: int,
        revert_reason: str | None,
        logs: list[dict],
        order_status: OrdStatus | None = None,
    ) -> None:
        """Journal a receipt and mark its transaction 'mined' (status 1) or 'reverted' (status 0).

        A transaction has one receipt row: recording again (e.g. re-mined after a reorg)
        replaces it with the newer one.
        """
        tx_hash = _hash32(tx_hash)
        block_hash = _hash32(block_hash, "block_hash")
        status = int(status)
        if status not in (0, 1):
            raise ValueError(f"receipt status must be 0 or 1, got {status}")
        now = _now()
        logs = list(logs)

        tx_status = "mined" if status == 1 else "reverted"
        receipt = dict(tx_hash=tx_hash, block_number=block_number, block_hash=block_hash, status=status,
                       gas_used=gas_used, effective_gas_price=effective_gas_price, revert_reason=revert_reason,
                       logs=logs, ts=now)
        known = None if order_status is None else OrdStatus(order_status).value

        mined = dict(tx_hash=tx_hash, status=tx_status, block_number=block_number, updated_at=now)
        find, upsert, mark = self._j._tx_of_hash, self._j._receipt_upsert, self._j._tx_mined

        def op(s: Session) -> None:
            tx = find.first(s, mined)
            if tx is None:
                raise UnknownTransaction(tx_hash)
            tx_order_id, tx_purpose = tx
            upsert.run(s, receipt)
            mark.run(s, mined)
            self._j._tx_event(s, tx_order_id, now, f"{tx_purpose} tx {tx_status} in block {block_number}: {tx_hash}",
                           {"tx_hash": tx_hash, "status": tx_status, "block_number": block_number,
                            "gas_used": gas_used, "revert_reason": revert_reason}, known)

        self._j._apply(op)

    def receipt(self, tx_hash: str) -> ReceiptRow | None:
        with self._j._read() as s:
            r = s.scalar(select(db.Receipt).where(db.Receipt.tx_hash == _hash32(tx_hash)))
            return None if r is None else _receipt_row(r)

    def get_transaction(self, tx_hash: str) -> TxRow | None:
        with self._j._read() as s:
            r = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == _hash32(tx_hash)))
            return None if r is None else _tx_row(r)

    def transactions_for(self, order_id: str) -> list[TxRow]:
        with self._j._read() as s:
            q = select(db.Transaction).where(db.Transaction.order_id == order_id).order_by(db.Transaction.id)
            return [_tx_row(r) for r in s.scalars(q)]

    def pending_transactions(self) -> list[TxRow]:
        """Transactions 'signed' or 'broadcast' (no receipt yet), oldest first: what recovery resumes."""
        with self._j._read() as s:
            q = select(db.Transaction).where(db.Transaction.status.in_(_PENDING_TX)).order_by(db.Transaction.id)
            return [_tx_row(r) for r in s.scalars(q)]

    def transactions_at(self, chain_id: int, wallet: str, from_nonce: int, to_nonce: int) -> list[TxRow]:
        """Every journaled attempt of `wallet` at nonces from_nonce <= n < to_nonce, oldest first."""
        with self._j._read() as s:
            q = (select(db.Transaction).where(
                db.Transaction.chain_id == chain_id, db.Transaction.wallet == _address(wallet, "wallet"),
                db.Transaction.nonce >= from_nonce, db.Transaction.nonce < to_nonce).order_by(db.Transaction.id))
            return [_tx_row(r) for r in s.scalars(q)]

    def next_nonce(self, chain_id: int, wallet: str) -> int | None:
        """One past the highest nonce journaled for (chain, wallet), or None if it never signed."""
        with self._j._read() as s:
            return s.scalar(
                select(db.WalletNonce.next_nonce).where(
                    db.WalletNonce.chain_id == chain_id, db.WalletNonce.wallet == _address(wallet, "wallet")
                )
            )

