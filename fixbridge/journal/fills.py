"""Fills and approvals."""
from __future__ import annotations

from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from fixbridge.orders.model import (
    Fill,
)

from . import schema as db
from .core import JournalCore
from .rows import (
    ApprovalRow,
    FillRow,
    _address,
    _approval_row,
    _check,
    _fill_row,
    _hash32,
    _now,
)

_log = structlog.get_logger(__name__)

class FillRecords:
    """The `fills` and `approvals` tables."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

    # ---- fills, approvals

    def record_fill(self, fill: Fill, fee_eth: Decimal | None) -> bool | None:
        """Journal a fill; idempotent on exec_id. Returns True if new, False if already journaled."""
        values = dict(
            order_id=fill.order_id,
            exec_id=fill.exec_id,
            tx_hash=_hash32(fill.tx_hash),
            log_index=fill.log_index,
            block_number=fill.block_number,
            last_qty=fill.last_qty,
            last_px=fill.last_px,
            base_units=fill.base_units,
            quote_units=fill.quote_units,
            fee_eth=fee_eth,
            ts=_now(),
        )
        in_batch = self._j.in_batch() is not None

        def op(s: Session) -> bool:
            if not in_batch:  # a batch has nobody to tell; the foreign key still refuses it
                self._j._require_order(s, fill.order_id)
            return self._j._fill_insert.first(s, values) is not None

        return self._j._apply(op)  # None when queued in a batch

    def fills_for(self, order_id: str, *, include_busted: bool = True) -> list[FillRow]:
        with self._j._read() as s:
            q = select(db.Fill).where(db.Fill.order_id == order_id).order_by(db.Fill.id)
            if not include_busted:
                q = q.where(db.Fill.busted_at.is_(None))
            return [_fill_row(r) for r in s.scalars(q)]

    def bust_fills(self, exec_ids: list[str]) -> None:
        """Mark fills whose transaction a reorg removed (the rows stay: the journal keeps both)."""
        ts = _now()

        def op(s: Session) -> None:
            for f in s.scalars(select(db.Fill).where(db.Fill.exec_id.in_(exec_ids))):
                f.busted_at = ts

        self._j._apply(op)

    def record_approval(
        self,
        *,
        order_id: str | None,
        chain_id: int,
        wallet: str,
        token: str,
        spender: str,
        amount_units: int,
        policy: str,
        tx_hash: str,
    ) -> None:
        _check(policy, db.APPROVAL_POLICIES, "policy")
        row = db.Approval(
            order_id=order_id,
            chain_id=chain_id,
            wallet=_address(wallet, "wallet"),
            token=_address(token, "token"),
            spender=_address(spender, "spender"),
            amount_units=amount_units,
            policy=policy,
            tx_hash=_hash32(tx_hash),
            ts=_now(),
        )
        with self._j._write() as s:
            self._j._require_order(s, order_id)
            s.add(row)

    def approvals_for(self, order_id: str) -> list[ApprovalRow]:
        with self._j._read() as s:
            q = select(db.Approval).where(db.Approval.order_id == order_id).order_by(db.Approval.id)
            return [_approval_row(r) for r in s.scalars(q)]

