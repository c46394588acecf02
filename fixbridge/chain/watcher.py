"""Follows a chain's head: every new block once, in order, with reorg detection.

Polls the head (HTTP nodes have no push), fetches each new block's header and transaction
hashes, and — only when the block holds a transaction someone is waiting for — all its receipts
in one `eth_getBlockReceipts` call (per-transaction receipts where the node lacks it: remembered
for the chain). A block whose parent hash is not the hash we saw at the height below means a
reorg: the listener hears the fork point before the new blocks.

A node may announce a block before it serves the block's receipts, or serve them late (a
load-balanced provider, an indexer behind): a receipt of ours that a delivered block holds but the
node did not serve is *owed*, and asked for again (by hash) on every later poll until it comes,
then handed to the listener (`on_receipts`); never dropped while someone waits for it. A `latest`
lower than our head is a rollback only if the block at our head is gone for ROLLBACK_CONFIRM_SECONDS,
not when one answer came from a node a block or two behind.

Knows nothing about orders: the listener decides what a receipt means.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import structlog
from web3 import Web3

from fixbridge.chain.rpc import batch_call, block_by_number, raw_call

log = structlog.get_logger(__name__)

KEEP_HASHES = 256  # how far back a reorg can be followed
FULL_CHECK_SECONDS = 0.1
RECEIPT_RETRIES = 2  # quick asks for a new block's receipts; what is still missing is owed (asked again later)
RECEIPT_RETRY_SECONDS = 0.01
OWED_ASK_SECONDS = 0.05  # owed receipts are asked for again at most this often (and on every new block)
TICK_SECONDS = 0.25  # the listener's on_tick: resends that must not wait for a block (automine devnets)
ROLLBACK_CONFIRM_SECONDS = 1.0  # a shorter chain must stay shorter this long to be a rollback
IDLE_POLL_SECONDS = 0.05  # nothing of ours in flight: nobody waits for the next block
FAST_POLL_SECONDS = 0.002  # a block is due: find it within a couple of milliseconds


def hx(b: Any) -> str:
    """0x-hex of bytes/HexBytes/str, lower case."""
    if isinstance(b, str):
        return b.lower() if b.startswith("0x") else "0x" + b.lower()
    return "0x" + bytes(b).hex()


@dataclass
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    tx_hashes: list[str]
    # Who fetches the receipts, given the block. Not a closure over the block: that would be a
    # reference cycle, and a block's few thousand receipt objects would wait for the cyclic
    # garbage collector (a full collection, GIL held) instead of going when the block does.
    _fetch: Callable[["Block"], dict[str, dict]] = field(repr=False, default=lambda block: {})

    def receipts(self) -> dict[str, dict]:
        """tx hash -> raw receipt, fetched at most once."""
        if not hasattr(self, "_cache"):
            self._cache = self._fetch(self)
        return self._cache


class BlockListener(Protocol):
    def wanted(self) -> set[str]:
        """Transaction hashes whose receipts are wanted (lower-case 0x-hex)."""

    def on_reorg(self, chain: str, fork_number: int) -> None:
        """Blocks above fork_number we reported before are no longer canonical."""

    def on_block(self, chain: str, block: Block) -> None: ...

    def on_receipts(self, chain: str, receipts: dict[str, dict]) -> None:
        """Receipts of transactions in blocks already delivered, which the node served late."""

    def on_tick(self, chain: str) -> None:
        """Called every TICK_SECONDS or so, blocks or not."""

    def on_outage(self, chain: str, error: Exception | None) -> None:
        """The node stopped answering (error) or answers again (None)."""


def _following(listener: object) -> bool:
    """A listener may say someone waits for every block (market data subscribers), not only for
    receipts (`wanted`): the watcher then polls as when a transaction of ours is in flight."""
    following = getattr(listener, "following", None)
    return bool(following()) if following is not None else False


class Listeners:
    """Several listeners on one watcher (the engine, the market feed, ...), each told everything in
    the order given. One that fails does not keep the others from hearing; the first failure is
    raised once all have been called, as a single listener's would be."""

    def __init__(self, *listeners: BlockListener) -> None:
        self.listeners = list(listeners)

    def wanted(self) -> set[str]:
        out: set[str] = set()
        for listener in self.listeners:
            out |= listener.wanted()
        return out

    def _each(self, name: str, *args: Any) -> None:
        failed: Exception | None = None
        for listener in self.listeners:
            try:
                getattr(listener, name)(*args)
            except Exception as e:
                if failed is None:
                    failed = e
                else:
                    log.exception("block listener failed", listener=type(listener).__name__, call=name)
        if failed is not None:
            raise failed

    def following(self) -> bool:
        return any(_following(listener) for listener in self.listeners)

    def on_reorg(self, chain: str, fork_number: int) -> None:
        self._each("on_reorg", chain, fork_number)

    def on_block(self, chain: str, block: Block) -> None:
        self._each("on_block", chain, block)

    def on_receipts(self, chain: str, receipts: dict[str, dict]) -> None:
        self._each("on_receipts", chain, receipts)

    def on_tick(self, chain: str) -> None:
        self._each("on_tick", chain)

    def on_outage(self, chain: str, error: Exception | None) -> None:
        self._each("on_outage", chain, error)


class BlockWatcher:
    def __init__(self, chain: str, w3: Web3, listener: BlockListener, poll_seconds: float = 0.005) -> None:
        self.chain, self.w3, self.listener, self.poll = chain, w3, listener, poll_seconds
        self.hashes: dict[int, str] = {}
        self.head: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by kick() and stop(): poll now
        self._idling = False
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._block_receipts = True  # False once the node said it has no eth_getBlockReceipts
        self._owed: dict[str, int] = {}  # tx hash -> the block that holds it, whose receipt the node has not served
        self._owed_asked = 0.0
        self._ticked = 0.0
        self._shorter_since: float | None = None  # when the node's latest first fell below our head
        self._checked_at = 0.0
        self._arrivals: list[float] = []  # when the last blocks were first seen (monotonic)
        # (wall-clock time the height was asked for, the height the node answered)
        self.polled: tuple[float, int] | None = None

    def start(self, from_block: int | None = None) -> None:
        """Follow from the current head (or from_block, to replay blocks mined while we were away)."""
        latest = self._latest()
        start = latest["number"] if from_block is None else max(0, from_block - 1)
        b = latest if start == latest["number"] else self._get_block(start)
        if b is None:
            raise ConnectionError(f"eth_getBlockByNumber: the node has no block {start}")
        self.hashes[b["number"]] = hx(b["hash"])
        self.head = b["number"]
        self._thread = threading.Thread(target=self._run, name=f"watcher-{self.chain}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                if self._down_since is not None:
                    log.info("node answers again", chain=self.chain, after_s=round(time.monotonic() - self._down_since, 1))
                    self._down_since = None
                    self.listener.on_outage(self.chain, None)
            except Exception as e:  # an outage or a node error: keep going, the bridge stays up
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("node not answering; retrying", chain=self.chain, error=f"{type(e).__name__}: {e}"[:300])
                    try:
                        self.listener.on_outage(self.chain, e)
                    except Exception:
                        log.exception("outage handler failed")
                self._stop.wait(0.2)
                continue
            self._wake.wait(self._pause())
            self._wake.clear()

    def kick(self) -> None:
        """Something is now waiting for a block (a transaction was sent): stop idling. (Busy, the
        watcher already polls when a block is due: a kick then would only add polls.)"""
        if self._idling:
            self._wake.set()

    def _pause(self) -> float:
        """How long to sleep before the next poll. Idle: IDLE_POLL_SECONDS. With transactions in
        flight on a chain that mines at a steady interval, sleep until just before the next block
        is due, then poll every FAST_POLL_SECONDS; otherwise (automine, irregular) `poll`."""
        try:
            busy = bool(self.listener.wanted()) or _following(self.listener)
        except Exception:
            busy = True
        self._idling = not busy
        if not busy:
            return max(self.poll, IDLE_POLL_SECONDS)
        a = self._arrivals
        if len(a) >= 4:
            gaps = sorted(b - x for x, b in zip(a, a[1:]))
            interval = gaps[len(gaps) // 2]
            if interval >= 0.3 and max(gaps) - min(gaps) < 0.5 * interval:
                due = a[-1] + interval - 0.1 - time.monotonic()
                return max(FAST_POLL_SECONDS, min(due, interval))
        return self.poll

    def step(self) -> None:
        """Process every block from our head to the node's head."""
        # Poll the height (a few bytes) often; read the whole head block when it moved, and every
        # FULL_CHECK_SECONDS anyway to see a block replaced at the same height.
        asked_at = time.time()
        res = raw_call(self.w3, "eth_blockNumber", [])
        if "result" not in res:
            raise ConnectionError(f"eth_blockNumber: {res.get('error')}")
        height = int(res["result"], 16)
        now = time.monotonic()
        if self.head is not None and height <= self.head and now - self._checked_at < FULL_CHECK_SECONDS:
            # Nothing new (a height below ours is a node behind, or a rollback: the full check sees it).
            self.polled = (asked_at, height)
            return self._between_blocks()
        self._checked_at = now
        top = self._latest()
        latest = top["number"]
        assert self.head is not None
        if latest < self.head and not self._rolled_back(latest):
            return self._between_blocks()  # one answer from a node behind us: not a shorter chain
        if latest >= self.head:
            self._shorter_since = None
            self.polled = (asked_at, height)
        if latest == self.head and self.hashes.get(latest) not in (None, hx(top["hash"])):
            self._reorg(latest)  # same height, another block: replaced in place
        while self.head < latest and not self._stop.is_set():
            n = self.head + 1
            raw = self._get_block(n)
            if raw is None:
                break
            parent = hx(raw["parentHash"])
            if self.hashes.get(n - 1) not in (None, parent):
                self._reorg(n - 1)
                continue
            self._deliver(raw)
        self._between_blocks(force=True)

    def _rolled_back(self, latest: int) -> bool:
        """The node's latest is below our head. A rollback (anvil's, a devnet's revert) if the block
        at our head is another or stays gone; a node a block or two behind (a load balancer's other
        backend, a stale cache) still has it, or has it back within ROLLBACK_CONFIRM_SECONDS."""
        assert self.head is not None
        b = self._get_block(self.head)
        if b is not None and hx(b["hash"]) == self.hashes.get(self.head):
            self._shorter_since = None
            return False
        if b is None:
            now = time.monotonic()
            if self._shorter_since is None:
                self._shorter_since = now
            if now - self._shorter_since < ROLLBACK_CONFIRM_SECONDS:
                return False
        self._shorter_since = None
        self._reorg(latest)
        return True

    def _between_blocks(self, force: bool = False) -> None:
        """Ask again for the receipts still owed; tick the listener."""
        now = time.monotonic()
        if self._owed and (force or now - self._owed_asked >= OWED_ASK_SECONDS):
            self._owed_asked = now
            self._ask_owed()
        if now - self._ticked >= TICK_SECONDS:
            self._ticked = now
            self.listener.on_tick(self.chain)

    def owe(self, tx_hash: str, block_number: int) -> None:
        """The listener could not use a receipt it got (e.g. a revert's reason could not be read):
        ask for it again."""
        self._owed[tx_hash] = block_number

    def owes(self, tx_hash: str) -> bool:
        """The transaction is in a block this watcher delivered, and its receipt is still to come."""
        return tx_hash in self._owed

    def _ask_owed(self) -> None:
        wanted = self.listener.wanted()
        for h in [h for h in self._owed if h not in wanted]:
            del self._owed[h]  # settled another way, or no one waits for it any more
        hashes = list(self._owed)
        if not hashes:
            return
        try:
            answers = batch_call(self.w3, [("eth_getTransactionReceipt", [h]) for h in hashes])
        except Exception as e:  # the node is failing: ask again next time
            log.info("owed receipts not answered", chain=self.chain, count=len(hashes), error=str(e)[:200])
            return
        found: dict[str, dict] = {}
        for h, a in zip(hashes, answers):
            r = a.get("result")
            # Only a receipt of a block on the chain we follow: one from a block we have not reached
            # comes with that block; one from a block we no longer have, after the reorg is seen.
            if r and self.hashes.get(int(r["blockNumber"], 16)) == hx(r["blockHash"]):
                found[h] = r
        if found:
            for h in found:
                self._owed.pop(h, None)
            log.info("owed receipts served", chain=self.chain, count=len(found), still_owed=len(self._owed))
            self.listener.on_receipts(self.chain, found)

    def _get_block(self, which: int | str) -> dict[str, Any] | None:
        """A block header with its transaction hashes (numbers as ints), or None if the node has none."""
        b = block_by_number(self.w3, which)
        if b is None:
            return None
        return {"number": int(b["number"], 16), "hash": b["hash"], "parentHash": b["parentHash"],
                "timestamp": int(b["timestamp"], 16), "transactions": b["transactions"]}

    def _latest(self) -> dict[str, Any]:
        b = self._get_block("latest")
        if b is None:
            raise ConnectionError("eth_getBlockByNumber: the node has no latest block")
        return b

    def _deliver(self, raw: Any) -> None:
        n = raw["number"]
        block = Block(n, hx(raw["hash"]), hx(raw["parentHash"]), int(raw["timestamp"]),
                      [hx(t) for t in raw["transactions"]])
        block._fetch = self._fetch_receipts
        self.hashes[n] = block.hash
        self.hashes.pop(n - KEEP_HASHES, None)
        self.head = n
        self._arrivals = (self._arrivals + [time.monotonic()])[-9:]
        self.listener.on_block(self.chain, block)

    def _reorg(self, below: int) -> None:
        """Walk back from `below` to the highest height whose hash still matches: the fork point."""
        n = below
        while n >= 0 and n in self.hashes:
            b = self._get_block(n)
            if b is not None and hx(b["hash"]) == self.hashes[n]:
                break
            n -= 1
        fork = max(n, 0)
        for h in [h for h in self.hashes if h > fork]:
            del self.hashes[h]
        for h in [h for h, n in self._owed.items() if n > fork]:
            del self._owed[h]  # its block is gone: the transaction is pending again
        log.warning("reorg", chain=self.chain, fork_block=fork, depth=(self.head or fork) - fork)
        self.head = fork
        self.listener.on_reorg(self.chain, fork)

    def _fetch_receipts(self, block: Block) -> dict[str, dict]:
        """Our transactions' receipts in `block`. Never raises: what the node does not serve (yet,
        or because it is failing) is owed and asked for again on later polls."""
        wanted = self.listener.wanted()
        mine = [h for h in block.tx_hashes if h in wanted]
        if not mine:
            return {}
        out: dict[str, dict] = {}
        # A node may announce a block a moment before it serves its receipts: ask again, briefly,
        # before owing them.
        for attempt in range(RECEIPT_RETRIES):
            if attempt:
                time.sleep(RECEIPT_RETRY_SECONDS)
            try:
                out.update(self._receipts_of(block, [h for h in mine if h not in out]))
            except Exception as e:
                log.info("receipts not answered", chain=self.chain, block=block.number, error=str(e)[:200])
            if all(h in out for h in mine):
                break
        missing = [h for h in mine if h not in out]
        if missing:
            for h in missing:
                self._owed[h] = block.number
            log.warning("receipts not served yet for a block holding our transactions; asking again",
                        chain=self.chain, block=block.number, missing=len(missing))
        return out

    def _receipts_of(self, block: Block, hashes: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        per_tx = not self._block_receipts
        if self._block_receipts:
            res = raw_call(self.w3, "eth_getBlockReceipts", [hex(block.number)])
            if "error" in res:
                if _unsupported(res["error"]):
                    self._block_receipts = False  # the node lacks it: one receipt at a time, from now on
                    log.info("node has no eth_getBlockReceipts; per-transaction receipts", chain=self.chain)
                per_tx = True  # failing or unsupported: this block's receipts one at a time
            else:
                for r in res.get("result") or []:
                    h = r["transactionHash"].lower()
                    if h in hashes:
                        out[h] = r
        if per_tx:
            todo = [h for h in hashes if h not in out]
            for h, a in zip(todo, batch_call(self.w3, [("eth_getTransactionReceipt", [h]) for h in todo])):
                if a.get("result"):
                    out[h] = a["result"]
        # A receipt of another block at this height (a reorg between the header and the receipts)
        # is not this block's: owed, and settled once the watcher follows that block.
        return {h: r for h, r in out.items() if hx(r["blockHash"]) == block.hash}


def _unsupported(error: object) -> bool:
    """The node does not have the method (-32601, or said so in words)."""
    if not isinstance(error, dict):
        return False
    msg = str(error.get("message", "")).lower()
    # Not "header not found" (-32000, geth's transient answer for a block it has not indexed yet).
    return error.get("code") == -32601 or any(w in msg for w in ("method not found", "not supported", "does not exist",
                                                                   "not available", "unsupported"))
