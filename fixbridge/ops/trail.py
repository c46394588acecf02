"""An order's audit trail: every journaled event of one order in time order."""
from __future__ import annotations

from datetime import datetime

from fixbridge.journal import Journal


def order_trail(j: Journal, key: str, session_id: str | None = None) -> list[tuple[datetime, str, str]]:
    row = j.get_order(key)
    if row is None:
        sessions = [session_id] if session_id else sorted({m.session_id for m in j.fix_messages(cl_ord_id=key)})
        for sid in sessions:
            row = j.find_order(sid, key)
            if row:
                break
    if row is None:
        return []
    out: list[tuple[datetime, str, str]] = []
    for m in j.fix_messages(order_id=row.order_id) + j.fix_messages(session_id=row.session_id, cl_ord_id=row.cl_ord_id):
        out.append((m.ts, f"FIX {m.direction} 35={m.msg_type}", m.raw))
    for e in j.events(row.order_id):
        what = f"{e.kind}: {e.from_status.value if e.from_status else '-'} -> {e.to_status.value}" if e.kind == "transition" else e.kind
        out.append((e.ts, what, e.reason))
    for t in j.transactions_for(row.order_id):
        out.append((t.created_at, f"tx {t.purpose} {t.status}", f"{t.tx_hash} nonce {t.nonce} block {t.block_number}"))
    for f in j.fills_for(row.order_id):
        out.append((f.ts, "fill", f"{f.exec_id} {f.last_qty} @ {f.last_px} fee {f.fee_eth} ETH"))
    seen, uniq = set(), []
    for item in sorted(out, key=lambda x: x[0]):
        if item not in seen:
            seen.add(item)
            uniq.append(item)
    return uniq
