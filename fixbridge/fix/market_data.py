"""MarketDataRequest (V) -> W, then X per block; Y for what cannot be served.

The request is checked on QuickFIX's thread (cheap; a refusal is a Y at once and changes
nothing); everything else — the snapshot's quotes, each block's changes — runs on one thread of
its own (`market-data`), fed by the market state's block changes, so neither QuickFIX's thread nor
the block watcher waits for quoting or for the sockets.

    263=0 snapshot: one W per symbol.   263=1 snapshot + updates: W per symbol, then per block in
    which a symbol changed one X (265=1, the default) or a W per changed symbol (265=0).
    263=2 unsubscribe the MDReqID given.   264 MarketDepth: 0 the whole ladder, N its first N sizes.
    267 MDEntryType: 0 bid, 1 offer, 2 trade.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import quickfix as fix
import quickfix44 as fix44
import structlog

from fixbridge.config import Spec
from fixbridge.fix import md_wire as w
from fixbridge.market.book import DEFAULT_SIZES, Level, ladder_units, pool_levels, prints, with_best
from fixbridge.market.pools import Pool
from fixbridge.market.state import BlockChange, Listing, MarketState

log = structlog.get_logger(__name__)

RECENT_TRADES = 10  # trades per symbol a snapshot repeats
ENTRY_TYPES = frozenset({w.BID_TYPE, w.OFFER_TYPE, w.TRADE_TYPE})


@dataclass
class Subscription:
    session: fix.SessionID
    md_req_id: str
    symbols: list[str]
    types: frozenset[str]
    depth: int
    full_refresh: bool                                   # 265=0: a W per change instead of an X
    sent: dict[str, dict[str, w.Entry]] = field(default_factory=dict)  # symbol -> entry id -> last sent level
    trades: dict[str, tuple[str, int]] = field(default_factory=dict)  # trade entry id -> (symbol, block)
    as_of: dict[str, int] = field(default_factory=dict)   # chain -> block the client's view is as of


class Refused(Exception):
    def __init__(self, reason: str | None, text: str) -> None:
        super().__init__(text)
        self.reason, self.text = reason, text


class MarketDataDesk:
    def __init__(self, state: MarketState, spec: Spec,
                 send: Callable[[fix.Message, fix.SessionID], object] = fix.Session.sendToTarget) -> None:
        self.state, self.spec, self._to_target = state, spec, send
        self._jobs: queue.Queue = queue.Queue()
        self._active: dict[str, set[str]] = {}      # session -> its subscriptions' MDReqIDs (QuickFIX's thread)
        self._active_lock = threading.Lock()
        self._subs: dict[tuple[str, str], Subscription] = {}  # the worker's own
        self._recent: dict[str, deque[w.Entry]] = {}
        self._by_pool: dict[tuple, tuple[Pool, list[Level]]] = {}  # the worker's: a pool's levels, while it is unchanged
        self._thread: threading.Thread | None = None
        self.send_seconds = 0.0  # of the block in hand: how long QuickFIX took to take its messages
        self.available = True  # False: the market state could not be loaded (every request gets a Y)
        state.subscribe(lambda change: self._jobs.put(("change", change)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="market-data", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(("stop", None))
        if self._thread:
            self._thread.join(timeout=5)

    def _send(self, message: fix.Message, session: fix.SessionID) -> None:
        """One message to one session; a session gone meanwhile costs only its own message."""
        try:
            self._to_target(message, session)
        except Exception as e:  # SessionNotFound (logged out and removed), a socket error...
            log.info("market data message not sent", session=session.toString(), error=f"{type(e).__name__}: {e}"[:200])

    # ---- QuickFIX's thread -------------------------------------------------------------------
    def request(self, message: fix.Message, session: fix.SessionID) -> None:
        sid = session.toString()
        md_req_id = message.getField(262)
        try:
            kind, sub = self._parse(message, session, md_req_id)
        except Refused as r:
            log.info("market data request refused", session=sid, md_req_id=md_req_id, reason=r.text)
            self._send(w.reject(md_req_id, r.reason, r.text), session)
            return
        with self._active_lock:
            ids = self._active.setdefault(sid, set())
            if kind == "unsubscribe":
                if md_req_id not in ids:
                    self._send(w.reject(md_req_id, None, f"No subscription with MDReqID {md_req_id!r} in this session"),
                               session)
                    return
                ids.discard(md_req_id)
            elif md_req_id in ids:
                self._send(w.reject(md_req_id, w.DUPLICATE_MD_REQ_ID,
                                    f"MDReqID {md_req_id!r} already names a subscription of this session"), session)
                return
            elif kind == "subscribe":
                ids.add(md_req_id)
        self._jobs.put((kind, (sid, md_req_id) if kind == "unsubscribe" else sub))

    def has_subscriptions(self) -> bool:
        """Any live subscription (read by the block watchers: poll fast while someone listens)."""
        return any(self._active.values())

    def logged_out(self, sid: str) -> None:
        """A session's subscriptions end with it (a client subscribes again after its next Logon)."""
        with self._active_lock:
            self._active.pop(sid, None)
        self._jobs.put(("logout", sid))

    def _parse(self, m: fix.Message, session: fix.SessionID, md_req_id: str) -> tuple[str, Subscription | None]:
        if not self.available:
            raise Refused(None, "Market data is unavailable: the market state could not be loaded")
        srt = m.getField(263)
        if srt == "2":
            return "unsubscribe", None
        if srt not in ("0", "1"):
            raise Refused(w.UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE,
                          f"SubscriptionRequestType {srt} is not supported (0 snapshot, 1 snapshot + updates, 2 unsubscribe)")
        depth = int(m.getField(264))
        if depth < 0:
            raise Refused(w.UNSUPPORTED_MARKET_DEPTH, f"MarketDepth {depth}: 0 (the whole ladder) or a number of levels")
        update_type = m.getField(265) if m.isSetField(265) else "1"
        if update_type not in ("0", "1"):
            raise Refused(w.UNSUPPORTED_MD_UPDATE_TYPE, f"MDUpdateType {update_type} is not supported (0 full, 1 incremental)")
        types = []
        for i in range(1, int(m.getField(267)) + 1):
            g = fix44.MarketDataRequest.NoMDEntryTypes()
            m.getGroup(i, g)
            types.append(g.getField(269))
        bad = [t for t in types if t not in ENTRY_TYPES]
        if bad:
            raise Refused(w.UNSUPPORTED_MD_ENTRY_TYPE, f"MDEntryType {', '.join(bad)} is not supported (0 bid, 1 offer, 2 trade)")
        symbols = []
        for i in range(1, int(m.getField(146)) + 1):
            g = fix44.MarketDataRequest.NoRelatedSym()
            m.getGroup(i, g)
            symbols.append(g.getField(55))
        unknown = [s for s in symbols if s not in self.state.listings]
        if unknown:
            raise Refused(w.UNKNOWN_SYMBOL, f"Unknown symbol {', '.join(unknown)} (see SecurityListRequest)")
        sub = Subscription(session, md_req_id, list(dict.fromkeys(symbols)), frozenset(types), depth, update_type == "0")
        return ("subscribe" if srt == "1" else "snapshot"), sub

    # ---- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            kind, arg = self._jobs.get()
            if kind == "stop":
                return
            try:
                if kind in ("snapshot", "subscribe"):
                    self._snapshot(arg, keep=kind == "subscribe")
                elif kind == "unsubscribe":
                    self._subs.pop(arg, None)
                elif kind == "logout":
                    for key in [k for k in self._subs if k[0] == arg]:
                        del self._subs[key]
                elif kind == "change":
                    started, self.send_seconds = time.perf_counter(), 0.0
                    sent = self._change(arg)
                    if sent:  # bench/market_data.py reads it: the desk's share of a block's latency
                        log.debug("market data sent", chain=arg.chain, block=arg.block, messages=sent,
                                  took_ms=round((time.perf_counter() - started) * 1000, 3),
                                  sending_ms=round(self.send_seconds * 1000, 3))
            except Exception:  # one bad job must not end market data for everyone
                log.exception("market data job failed", job=kind)

    def _levels(self, symbol: str, depth: int, cache: dict) -> list[w.Entry]:
        key = (symbol, depth)
        if key not in cache:
            listing = self.state.listings[symbol]
            sizes = ladder_units(listing, self.spec.instruments[symbol].depth_sizes or DEFAULT_SIZES)
            pools = self.state.snapshot()
            ladder = tuple(sizes[:depth] if depth else sizes)
            levels = with_best([lv for k in listing.pools if k.address in pools
                                for lv in self._pool_levels(pools[k.address], listing, ladder)])
            cache[key] = [w.level_entry(symbol, lv) for lv in levels]
        return cache[key]

    def _pool_levels(self, pool: Pool, listing: Listing, ladder: tuple[int, ...]) -> list[Level]:
        """One pool's levels for a ladder, quoted again only when the pool changed (pools are
        immutable: an unchanged pool is the same object)."""
        key = (pool.key.address, listing.base, listing.base_decimals, listing.quote_decimals, ladder)
        hit = self._by_pool.get(key)
        if hit is not None and hit[0] is pool:
            return hit[1]
        levels = pool_levels(pool, listing, list(ladder))
        self._by_pool[key] = (pool, levels)
        return levels

    def _wanted_levels(self, sub: Subscription, symbol: str, cache: dict) -> dict[str, w.Entry]:
        return {e.entry_id: e for e in self._levels(symbol, sub.depth, cache) if e.type in sub.types}

    def _snapshot(self, sub: Subscription, keep: bool) -> None:
        cache: dict = {}
        for symbol in sub.symbols:
            chain = self.state.listings[symbol].chain
            sub.as_of[chain] = self.state.block(chain) or 0
            levels = self._wanted_levels(sub, symbol, cache)
            trades = list(self._recent.get(symbol, ())) if w.TRADE_TYPE in sub.types else []
            sub.sent[symbol] = levels
            sub.trades.update({t.entry_id: (symbol, t.block or 0) for t in trades})
            self._send(w.snapshot(sub.md_req_id, symbol, list(levels.values()) + trades), sub.session)
        if keep:
            self._subs[(sub.session.toString(), sub.md_req_id)] = sub

    def _change(self, change: BlockChange) -> int:
        """The block's updates to every subscription; returns how many messages went out."""
        cache: dict = {}
        touched: dict[str, list[w.Entry]] = {}  # symbol -> its new trades
        for symbol, listing in self.state.listings.items():
            if listing.chain != change.chain:
                continue
            mine = {k.address for k in listing.pools}
            if change.pools & mine or any(t.pool in mine for t in change.trades):
                keys = {k.address: k for k in listing.pools}
                new = [w.print_entry(symbol, p) for p in prints(change.trades, listing, keys)]
                touched[symbol] = new
                recent = self._recent.setdefault(symbol, deque(maxlen=RECENT_TRADES))
                if change.reloaded:  # trades of blocks a reorg took away are gone
                    kept = [t for t in recent if (t.block or 0) <= change.block]
                    recent.clear()
                    recent.extend(kept)
                recent.extend(new)
        if not touched:
            return 0
        built: dict[tuple, fix.Message] = {}  # sessions with the same subscription share one X, built once
        return sum(self._update(sub, change, touched, cache, built) for sub in list(self._subs.values()))

    def _update(self, sub: Subscription, change: BlockChange, touched: dict[str, list[w.Entry]], cache: dict,
                built: dict[tuple, fix.Message]) -> int:
        if not change.reloaded and change.block <= sub.as_of.get(change.chain, -1):
            return 0  # the snapshot already showed this block
        updates: list[tuple[str, w.Entry]] = []
        changed_symbols = []
        for symbol in sub.symbols:
            if symbol not in touched:
                continue
            before = sub.sent.get(symbol, {})
            after = self._wanted_levels(sub, symbol, cache)
            ups = [(w.DELETE, e) for i, e in before.items() if i not in after]
            ups += [(w.NEW if i not in before else w.CHANGE, e) for i, e in after.items()
                    if i not in before or not before[i].same_quote(e)]
            if w.TRADE_TYPE in sub.types:
                if change.reloaded:
                    gone = [i for i, (s, b) in sub.trades.items() if s == symbol and b > change.block]
                    for i in gone:
                        del sub.trades[i]
                    ups += [(w.DELETE, w.Entry(symbol, i, w.TRADE_TYPE, Decimal(0), Decimal(0))) for i in gone]
                for t in touched[symbol]:
                    sub.trades[t.entry_id] = (symbol, t.block or 0)
                    ups.append((w.NEW, t))
            sub.sent[symbol] = after
            if ups:
                updates += ups
                changed_symbols.append(symbol)
        sub.as_of[change.chain] = change.block
        if not updates:
            return 0
        if sub.full_refresh:
            for symbol in changed_symbols:
                self._send(w.snapshot(sub.md_req_id, symbol, list(sub.sent[symbol].values()) + touched[symbol]),
                           sub.session)
            return len(changed_symbols)
        else:
            key = tuple(updates)
            if key not in built:
                built[key] = w.incremental(None, updates)
            msg = fix.Message(built[key])
            msg.setField(262, sub.md_req_id)
            t = time.perf_counter()
            self._send(msg, sub.session)
            self.send_seconds += time.perf_counter() - t
            return 1
