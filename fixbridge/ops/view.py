"""A read-only view of a running bridge, for /metrics, /readyz and the status page.

Reads the journal (counts, open orders, transactions in flight, halts, reconcile runs) and the
engine's and QuickFIX's state; never writes, never takes the engine's lock. The journal part is
read once per second at most, however many scrapes and pages ask (one read snapshot).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import quickfix as fix
from sqlalchemy import func, select, text

from fixbridge.journal import schema as db
from fixbridge.orders.model import TERMINAL, OrdStatus

if TYPE_CHECKING:
    from fixbridge.engine.execution import ExecutionEngine
    from fixbridge.fix.application import BridgeApplication
    from fixbridge.journal import Journal

SNAPSHOT_SECONDS = 1.0  # the journal part is read at most this often ...
SNAPSHOT_COST_SHARE = 10  # ... and at most every 10x the time its last read took (a big journal: ~10 % of a core at most)
RECENT_ORDERS = 50
WORKING_ORDERS = 200
_PENDING = ("signed", "broadcast")
_WORKING = tuple(s.value for s in OrdStatus if s not in TERMINAL)  # IN (...): the status index serves it


def counterparty(session_id: str) -> str:
    return session_id.rsplit("->", 1)[-1]


@dataclass
class JournalSnapshot:
    taken_at: float
    order_counts: dict[str, int] = field(default_factory=dict)  # status -> orders in the journal
    fills: int = 0                                              # fills in the journal, not busted by a reorg
    in_flight: list[dict[str, Any]] = field(default_factory=list)           # one per nonce in flight
    halts: list[dict[str, Any]] = field(default_factory=list)
    reconcile: list[dict[str, Any]] = field(default_factory=list)           # the last run of each chain


class BridgeView:
    def __init__(self, journal: "Journal", engine: "ExecutionEngine", app: "BridgeApplication") -> None:
        self.journal, self.engine, self.app = journal, engine, app
        spec = engine.spec
        self._chain_names = {c.chain_id: name for name, c in spec.chains.items()}
        self._snap: JournalSnapshot | None = None
        self._snap_lock = threading.Lock()  # one journal read at a time for all readers (not on the hot path)
        self._snap_cost = 0.0
        # Gas is counted from receipts journaled after the start: (highest receipt id read, wei by chain).
        self._gas_lock = threading.Lock()
        self._gas_seen = self._max_receipt_id()
        self._gas_wei: dict[str, int] = {}

    @property
    def _wallets(self) -> dict[str, tuple[str, str]]:
        """address (lower case) -> (wallet name, chain); the wallets open once the engine started."""
        return {w.wallet.address.lower(): (name, w.chain) for name, w in self.engine.markets.wallets.items()}

    # ---- the bridge's own state --------------------------------------------------------------
    def session_ids(self) -> list[str]:
        return sorted(self.app.session_ids())

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for sid in self.session_ids():
            s = fix.Session.lookupSession(self.app.sessions[sid])
            out.append({"session_id": sid, "counterparty": counterparty(sid),
                        "logged_on": bool(s is not None and s.isLoggedOn()),
                        "next_sender_seq": s.getExpectedSenderNum() if s is not None else None,
                        "next_target_seq": s.getExpectedTargetNum() if s is not None else None})
        return out

    def chain_names(self) -> list[str]:
        return sorted(self.engine.spec.chains)

    def chains(self) -> list[dict[str, Any]]:
        """Each chain as its watcher sees it (chains without a wallet of this bridge have no watcher)."""
        out = []
        for name in self.chain_names():
            c = self.engine.spec.chains[name]
            w = self.engine.heads.watcher(name)  # read-only: the watcher's head and last poll
            polled = w.polled if w is not None else None
            head = w.head if w is not None else None
            out.append({"chain": name, "chain_id": c.chain_id, "rpc_url": _no_credentials(c.rpc_url),
                        "watched": w is not None, "head": head,
                        "node_height": polled[1] if polled else None, "polled_at": polled[0] if polled else None,
                        "lag_blocks": (polled[1] - head) if polled and head is not None else None,
                        "outage": self.engine.outage(name)})
        return out

    def journal_backlog(self) -> int:
        return self.journal.backlog()

    def intake_backlog(self) -> int:
        return self.engine.queues.backlog()

    # ---- the journal ---------------------------------------------------------------------------
    def journal_snapshot(self) -> JournalSnapshot:
        with self._snap_lock:
            every = max(SNAPSHOT_SECONDS, SNAPSHOT_COST_SHARE * self._snap_cost)
            if self._snap is None or time.monotonic() - self._snap.taken_at >= every:
                t0 = time.monotonic()
                self._snap = self._read_snapshot()
                self._snap_cost = time.monotonic() - t0
            return self._snap

    def _read_snapshot(self) -> JournalSnapshot:
        """Counts over the whole journal (on a journal shared by several instances, each exports the
        same numbers): by status alone the count reads the status index, not the table (60 ms for a
        million orders on SQLite; by session it would be 2 s)."""
        snap = JournalSnapshot(time.monotonic())
        with self.journal.read_session() as s:
            snap.order_counts = {st: n for st, n in s.execute(select(db.Order.status, func.count())
                                                              .group_by(db.Order.status))}
            snap.fills = s.scalar(select(func.count()).select_from(db.Fill).where(db.Fill.busted_at.is_(None))) or 0
            snap.in_flight = self._in_flight(s)
            for h in s.scalars(select(db.TradingHalt).where(db.TradingHalt.resumed_at.is_(None))
                               .order_by(db.TradingHalt.id)):
                snap.halts.append({"scope": h.scope, "reason": h.reason, "halted_by": h.halted_by,
                                   "halted_at": h.halted_at})
            seen: set[int] = set()
            for r in s.scalars(select(db.ReconciliationRun).order_by(db.ReconciliationRun.id.desc()).limit(20)):
                if r.chain_id in seen or r.chain_id not in self._chain_names:
                    continue
                seen.add(r.chain_id)
                results = r.results if isinstance(r.results, dict) else {}
                snap.reconcile.append({"chain_id": r.chain_id, "chain": self._chain_names.get(r.chain_id),
                                       "status": r.status, "breaks": r.breaks, "from_block": r.from_block,
                                       "to_block": r.to_block, "finished_at": r.finished_at,
                                       "break_list": [{"kind": b.get("kind"), "detail": b.get("detail"),
                                                       "tx_hash": b.get("tx_hash"), "order_id": b.get("order_id")}
                                                      for b in (results.get("breaks") or [])[:20]]})
        return snap

    def _in_flight(self, s) -> list[dict[str, Any]]:
        """One entry per (chain, wallet, nonce) with an attempt signed or broadcast: its first
        attempt's time (the age) and its latest attempt's fees and hash."""
        rows = s.scalars(_by_status(s, db.Transaction, "ix_transactions_status", _PENDING))
        by_nonce: dict[tuple[int, str, int], dict[str, Any]] = {}
        wallets = self._wallets
        for t in rows:
            if t.wallet.lower() not in wallets:
                continue  # another instance's wallet on a shared journal
            key = (t.chain_id, t.wallet, t.nonce)
            e = by_nonce.get(key)
            if e is None:
                e = by_nonce[key] = {"chain": self._chain_names.get(t.chain_id, str(t.chain_id)), "wallet": t.wallet,
                                     "wallet_name": wallets[t.wallet.lower()][0], "nonce": t.nonce,
                                     "order_id": t.order_id, "since": t.created_at, "attempts": 0}
            e.update(tx_hash=t.tx_hash, purpose=t.purpose, status=t.status, max_fee_wei=t.max_fee_per_gas,
                     tip_wei=t.max_priority_fee_per_gas, gas_limit=t.gas_limit)
            e["attempts"] += 1
            e["order_id"] = e["order_id"] or t.order_id
        return list(by_nonce.values())

    def _max_receipt_id(self) -> int:
        with self.journal.read_session() as s:
            return s.scalar(select(func.max(db.Receipt.id))) or 0

    def gas_spent_wei(self) -> dict[str, int]:
        """Wei paid by this bridge's wallets, by chain, for receipts journaled since the start
        (exact integers here; read incrementally, so a scrape reads only the new receipts)."""
        with self._gas_lock:
            wallets = self._wallets
            with self.journal.read_session() as s:
                q = (select(db.Receipt.id, db.Transaction.chain_id, db.Transaction.wallet, db.Receipt.gas_used,
                            db.Receipt.effective_gas_price)
                     .join(db.Transaction, db.Transaction.tx_hash == db.Receipt.tx_hash)
                     .where(db.Receipt.id > self._gas_seen).order_by(db.Receipt.id))
                for rid, chain_id, wallet, gas_used, price in s.execute(q):
                    self._gas_seen = max(self._gas_seen, rid)
                    if wallet.lower() in wallets:
                        chain = self._chain_names.get(chain_id, str(chain_id))
                        self._gas_wei[chain] = self._gas_wei.get(chain, 0) + int(gas_used) * int(price)
            for chain in self._chain_names.values():
                self._gas_wei.setdefault(chain, 0)
            return dict(self._gas_wei)

    def orders(self) -> dict[str, list[dict[str, Any]]]:
        """Working orders (not terminal) and the most recent ones, each with its latest transaction."""
        sids = self.session_ids()
        with self.journal.read_session() as s:
            mine = set(sids)
            working = sorted((o for o in s.scalars(_by_status(s, db.Order, "ix_orders_status", _WORKING))
                              if o.session_id in mine), key=lambda o: -o.id)[:WORKING_ORDERS]
            recent = list(s.scalars(select(db.Order).where(db.Order.session_id.in_(sids))
                                    .order_by(db.Order.id.desc()).limit(RECENT_ORDERS)))
            ids = sorted({o.order_id for o in working + recent})
            txs: dict[str, Any] = {}
            if ids:
                for t in s.scalars(select(db.Transaction).where(db.Transaction.order_id.in_(ids),
                                                                db.Transaction.purpose.in_(("swap", "cancel")))
                                   .order_by(db.Transaction.id)):
                    prev = txs.get(t.order_id)
                    if prev is None or prev.status not in ("mined", "reverted") or t.status in ("mined", "reverted"):
                        txs[t.order_id] = t  # the mined attempt if any, else the latest
        def row(o) -> dict[str, Any]:
            t = txs.get(o.order_id)
            return {"order_id": o.order_id, "cl_ord_id": o.cl_ord_id, "session": counterparty(o.session_id),
                    "symbol": o.symbol, "side": "Buy" if o.side == "1" else "Sell" if o.side == "2" else o.side,
                    "qty": str(o.order_qty if o.order_qty is not None else o.cash_order_qty),
                    "cash": o.order_qty is None, "price": None if o.price is None else str(o.price),
                    "status": o.status, "cum_qty": str(o.cum_qty), "avg_px": str(o.avg_px), "venue": o.venue,
                    "text": o.text, "created_at": o.created_at, "updated_at": o.updated_at,
                    "tx_hash": t.tx_hash if t is not None else None, "tx_status": t.status if t is not None else None,
                    "block": t.block_number if t is not None else None}
        return {"working": [row(o) for o in working], "recent": [row(o) for o in recent]}

    def fills_per_minute(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Fills (not busted) per minute over the last `minutes`, from the journal; oldest first."""
        now = datetime.now(timezone.utc)
        first = int(now.timestamp() // 60) - minutes + 1
        since = datetime.fromtimestamp(first * 60, timezone.utc)
        counts = dict.fromkeys(range(first, first + minutes), 0)
        with self.journal.read_session() as s:
            q = select(db.Fill.ts).where(db.Fill.ts >= since, db.Fill.busted_at.is_(None)).limit(500_000)
            for (ts,) in s.execute(q):
                m = int(ts.timestamp() // 60)
                if m in counts:
                    counts[m] += 1
        return [{"t": m * 60, "n": n} for m, n in sorted(counts.items())]


def _by_status(s, model, index: str, statuses: tuple[str, ...]):
    """Rows of `model` in one of a few rare statuses, by the status index. SQLite's planner, once
    ANALYZE has seen that most rows share one status, would scan the whole table instead (300 ms
    for a million transactions): told the index, it answers at once."""
    if s.get_bind().dialect.name != "sqlite":
        return select(model).where(model.status.in_(statuses)).order_by(model.id)
    marks = ", ".join(f":s{i}" for i in range(len(statuses)))
    sql = text(f"SELECT * FROM {model.__tablename__} INDEXED BY {index} WHERE status IN ({marks}) ORDER BY id")
    return select(model).from_statement(sql.bindparams(**{f"s{i}": v for i, v in enumerate(statuses)}))


def _no_credentials(url: str) -> str:
    """An RPC URL as shown on the page: a key in its path or query (Infura, Alchemy) is cut."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{':' + str(u.port) if u.port else ''}" + ("/…" if (u.path.strip('/') or u.query) else "")


__all__ = ["BridgeView", "JournalSnapshot", "counterparty"]
