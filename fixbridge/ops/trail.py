"""An order's audit trail: everything the journal knows about one order, in time order.

The FIX message in, the validation and risk decisions, the quote, approvals, the transaction
signed / broadcast / mined, its receipt, the fills, and every FIX message out (including a
duplicate NewOrderSingle, a status request or a cancel request that names the order).

One read snapshot, a handful of indexed lookups: fast on a journal of millions of orders
(see bench/trail_1m.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fixbridge.journal import Journal
from fixbridge.journal import schema as db

MSG_TYPES = {"D": "NewOrderSingle", "8": "ExecutionReport", "F": "OrderCancelRequest", "9": "OrderCancelReject",
             "H": "OrderStatusRequest", "G": "OrderCancelReplaceRequest", "j": "BusinessMessageReject",
             "3": "Reject"}
EXEC_TYPES = {"0": "New", "F": "Trade", "4": "Canceled", "8": "Rejected", "C": "Expired", "I": "OrderStatus",
              "6": "PendingCancel", "H": "TradeCancel", "5": "Replaced"}
ORD_STATUSES = {"0": "New", "1": "PartiallyFilled", "2": "Filled", "4": "Canceled", "6": "PendingCancel",
                "8": "Rejected", "A": "PendingNew", "C": "Expired"}
# Among entries with the same timestamp: the message in, then the steps, then the message out.
_RANK = {"fix in": 0, "event": 1, "tx": 2, "approval": 3, "receipt": 4, "fill": 5, "fix out": 6}

TRAIL_COLUMNS = ("ts", "source", "what", "detail")
ORDER_FIELDS = ("order_id", "session_id", "cl_ord_id", "account", "symbol", "side", "ord_type", "time_in_force",
                "order_qty", "cash_order_qty", "price", "status", "cum_qty", "leaves_qty", "avg_px", "venue",
                "wallet", "text", "rej_reason", "created_at", "updated_at")


class AmbiguousClOrdID(LookupError):
    """The ClOrdID is used on several sessions; name one."""

    def __init__(self, cl_ord_id: str, sessions: list[str]) -> None:
        super().__init__(f"ClOrdID {cl_ord_id!r} is used on {len(sessions)} sessions ({', '.join(sessions)}); "
                         "pass --session")
        self.sessions = sessions


@dataclass(frozen=True)
class TrailEntry:
    ts: datetime
    source: str          # 'fix in' | 'fix out' | 'event' | 'tx' | 'receipt' | 'fill' | 'approval'
    what: str            # one line: what happened
    detail: str          # the evidence: the raw FIX message, the reason, the hash
    data: dict[str, Any] = field(default_factory=dict)  # structured (in --format json)
    ref: int = 0         # the row id in its table (a stable tie-break)

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "source": self.source, "what": self.what, "detail": self.detail, "data": self.data}


@dataclass(frozen=True)
class Trail:
    order: dict[str, Any]
    entries: list[TrailEntry]

    def as_dict(self) -> dict[str, Any]:
        return {"order": self.order, "trail": [e.as_dict() for e in self.entries]}


def _fix_what(m: db.FixMessage) -> str:
    parts = [f"35={m.msg_type} {MSG_TYPES.get(m.msg_type, '')}".rstrip()]
    if m.exec_type is not None:
        parts.append(f"150={m.exec_type} {EXEC_TYPES.get(m.exec_type, '')}".rstrip())
    if m.ord_status is not None:
        parts.append(f"39={m.ord_status} {ORD_STATUSES.get(m.ord_status, '')}".rstrip())
    if m.cl_ord_id is not None:
        parts.append(f"11={m.cl_ord_id}")
    return " ".join(parts)


def find_order_row(s, key: str, session_id: str | None = None) -> db.Order | None:
    """The order named by OrderID, or by ClOrdID (on ``session_id``, or on the only session using it)."""
    q = select(db.Order).where(db.Order.order_id == key)
    if session_id is not None:
        q = q.where(db.Order.session_id == session_id)
    row = s.scalar(q)
    if row is not None:
        return row
    q = select(db.Order).where(db.Order.cl_ord_id == key)
    if session_id is not None:
        q = q.where(db.Order.session_id == session_id)
    rows = list(s.scalars(q.limit(50)))
    if len(rows) > 1:
        raise AmbiguousClOrdID(key, sorted(r.session_id for r in rows))
    return rows[0] if rows else None


def order_trail(j: Journal, key: str, session_id: str | None = None) -> Trail | None:
    """The audit trail of the order whose OrderID or ClOrdID is ``key``; None if there is none.

    Raises AmbiguousClOrdID when a ClOrdID is used on several sessions and none is named.
    """
    with j.read_session() as s:
        o = find_order_row(s, key, session_id)
        if o is None:
            return None
        order = {f: getattr(o, f) for f in ORDER_FIELDS}
        entries: list[TrailEntry] = []

        # FIX messages: those naming the OrderID, and those of the order's session naming its
        # ClOrdID or a ClOrdID used with the OrderID (a cancel request's own ClOrdID).
        msgs = {m.id: m for m in s.scalars(select(db.FixMessage).where(db.FixMessage.order_id == o.order_id))}
        cl_ids = {o.cl_ord_id} | {m.cl_ord_id for m in msgs.values() if m.cl_ord_id}
        for m in s.scalars(select(db.FixMessage).where(db.FixMessage.cl_ord_id.in_(sorted(cl_ids)),
                                                       db.FixMessage.session_id == o.session_id)):
            msgs.setdefault(m.id, m)
        for m in msgs.values():
            entries.append(TrailEntry(m.ts, f"fix {m.direction}", _fix_what(m), m.raw,
                                      {"msg_type": m.msg_type, "seq_num": m.seq_num, "cl_ord_id": m.cl_ord_id,
                                       "order_id": m.order_id, "exec_id": m.exec_id, "exec_type": m.exec_type,
                                       "ord_status": m.ord_status, "raw": m.raw}, m.id))

        tx_hashes_with_events: set[str] = set()
        for e in s.scalars(select(db.OrderEvent).where(db.OrderEvent.order_id == o.order_id)):
            if e.kind == "transition":
                what = f"{e.from_status or '-'} -> {e.to_status}"
            else:
                what = e.kind
            if e.kind == "tx" and isinstance(e.detail, dict) and e.detail.get("tx_hash"):
                tx_hashes_with_events.add(e.detail["tx_hash"])
                what = f"tx {e.detail.get('status', '')}".rstrip()
            data = {"kind": e.kind, "from_status": e.from_status, "to_status": e.to_status, "reason": e.reason,
                    "detail": e.detail}
            entries.append(TrailEntry(e.ts, "tx" if e.kind == "tx" else "event", what, e.reason, data, e.id))

        txs = list(s.scalars(select(db.Transaction).where(db.Transaction.order_id == o.order_id)))
        for t in txs:
            if t.tx_hash in tx_hashes_with_events:
                continue  # its signed/broadcast/mined steps are events already
            # A journal written before tx events existed: the row says when it was signed and what it is now.
            base = {"tx_hash": t.tx_hash, "purpose": t.purpose, "nonce": t.nonce, "wallet": t.wallet,
                    "chain_id": t.chain_id}
            entries.append(TrailEntry(t.created_at, "tx", "tx signed", f"{t.purpose} tx signed: nonce {t.nonce}, "
                                      f"{t.tx_hash}", {**base, "status": "signed"}, t.id))
            if t.status != "signed":
                entries.append(TrailEntry(t.updated_at, "tx", f"tx {t.status}",
                                          f"{t.purpose} tx {t.status}"
                                          + (f" in block {t.block_number}" if t.block_number is not None else "")
                                          + f": {t.tx_hash}", {**base, "status": t.status,
                                                               "block_number": t.block_number}, t.id))
        if txs:
            for r in s.scalars(select(db.Receipt).where(db.Receipt.tx_hash.in_([t.tx_hash for t in txs]))):
                fee_wei = r.gas_used * r.effective_gas_price
                outcome = "success" if r.status == 1 else f"reverted: {r.revert_reason or 'no reason'}"
                entries.append(TrailEntry(r.ts, "receipt", f"receipt block {r.block_number}: {outcome}",
                                          f"{r.tx_hash} gas {r.gas_used} x {r.effective_gas_price} wei = {fee_wei} wei, "
                                          f"{len(r.logs or [])} logs",
                                          {"tx_hash": r.tx_hash, "block_number": r.block_number,
                                           "block_hash": r.block_hash, "status": r.status, "gas_used": r.gas_used,
                                           "effective_gas_price": r.effective_gas_price, "fee_wei": fee_wei,
                                           "revert_reason": r.revert_reason, "logs": r.logs}, r.id))

        for f in s.scalars(select(db.Fill).where(db.Fill.order_id == o.order_id)):
            busted = getattr(f, "busted_at", None)
            entries.append(TrailEntry(
                f.ts, "fill", f"fill {f.last_qty} @ {f.last_px}" + (" (busted by a reorg)" if busted else ""),
                f"{f.exec_id} block {f.block_number}" + (f" fee {f.fee_eth} ETH" if f.fee_eth is not None else ""),
                {"exec_id": f.exec_id, "tx_hash": f.tx_hash, "log_index": f.log_index, "block_number": f.block_number,
                 "last_qty": f.last_qty, "last_px": f.last_px, "base_units": f.base_units,
                 "quote_units": f.quote_units, "fee_eth": f.fee_eth, "busted_at": busted}, f.id))

        for a in s.scalars(select(db.Approval).where(db.Approval.order_id == o.order_id)):
            amount = "max (2^256-1)" if a.amount_units == 2**256 - 1 else f"{a.amount_units} units"
            entries.append(TrailEntry(a.ts, "approval", f"approval {a.policy} {amount}",
                                      f"token {a.token} spender {a.spender} tx {a.tx_hash}",
                                      {"token": a.token, "spender": a.spender, "amount_units": a.amount_units,
                                       "policy": a.policy, "tx_hash": a.tx_hash, "wallet": a.wallet}, a.id))

    entries.sort(key=lambda e: (e.ts, _RANK.get(e.source, 9), e.ref))
    return Trail(order, entries)


__all__ = ["AmbiguousClOrdID", "Trail", "TrailEntry", "TRAIL_COLUMNS", "find_order_row", "order_trail"]
