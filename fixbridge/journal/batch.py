"""Group commit: many journal writes in one database transaction, and what must wait for them.

At hundreds of orders a second a commit per row is the bottleneck (each one is an fsync on
SQLite at synchronous=FULL, a round trip on PostgreSQL). Two tools cut it:

- ``Journal.batch()`` queues every write of this thread and commits them in one transaction when
  the batch flushes. A write that fails (a duplicate ClOrdID, say) undoes only itself: the batch
  is retried with a SAVEPOINT around each write. Actions registered with ``Journal.after_commit`` — sending an
  ExecutionReport, broadcasting a transaction — run only once the rows that explain them are
  durable: write-ahead holds for a whole batch at once.
- ``Appender`` journals copies of outbound FIX messages from its own thread, many rows per
  commit. The row that says *why* a report was sent is committed before the report leaves (the
  batch above); the copy of the wire message follows within milliseconds, and QuickFIX's own
  message store holds it durably meanwhile.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from .store import Journal

log = structlog.get_logger(__name__)


class Batch:
    """One thread's open unit of work: journal writes queued as operations, executed and committed
    together at ``flush()`` (so the writer lock is held only while SQL runs, never across the
    RPC calls between writes), and the actions that wait for them."""

    def __init__(self, journal: "Journal") -> None:
        self._journal = journal
        self._ops: list[Callable[[Session], Any]] = []
        self._actions: list[Callable[[], None]] = []
        self.opened_at: float | None = None

    def add(self, op: Callable[[Session], Any]) -> int:
        """Queue a write; returns its index in this flush (see ``flush``'s result)."""
        if not self._ops:
            self.opened_at = time.monotonic()
        self._ops.append(op)
        return len(self._ops) - 1

    @property
    def pending(self) -> bool:
        return bool(self._ops or self._actions)

    def after_commit(self, action: Callable[[], None]) -> None:
        if not self.pending:
            action()  # everything written so far is committed
        else:
            self._actions.append(action)

    def age(self) -> float:
        """Seconds since the oldest queued write (0 if none)."""
        return 0.0 if self.opened_at is None else time.monotonic() - self.opened_at

    def flush(self) -> dict[int, BaseException]:
        """Execute and commit the queued writes in one transaction, then run what waited for them
        (and commit what those actions write in turn). Returns the writes that failed, by index;
        each failure undid only itself."""
        failures: dict[int, BaseException] = {}
        first = True
        while self._ops or self._actions:
            ops, self._ops, self.opened_at = self._ops, [], None
            if ops:
                failed = self._journal._execute_ops(ops)
                if first:
                    failures = failed
            first = False
            actions, self._actions = self._actions, []
            for action in actions:
                try:
                    action()
                except Exception:  # one report that cannot be sent must not cost the others theirs
                    log.exception("after-commit action failed")
        return failures

    def discard(self) -> None:
        self._ops.clear()
        self._actions.clear()  # nothing they depended on was written


class Appender:
    """Inserts rows of one table from a background thread, as many per transaction as are waiting."""

    def __init__(self, journal: "Journal", table: Any, name: str) -> None:
        self._journal, self._table = journal, table
        self._q: queue.Queue = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, row: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._q.put(row)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every row put so far is committed."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            row = self._q.get()
            rows, stop = ([] if row is None else [row]), row is None
            while True:
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    rows.append(more)
            if rows:
                self._insert(rows)
            if stop:
                return

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        for attempt in range(3):
            try:
                with self._journal._write_plain() as s:
                    s.execute(insert(self._table), rows)
                break
            except Exception:
                if self._journal._closed:
                    break
                log.exception("journaling outbound rows failed; retrying", rows=len(rows), attempt=attempt)
                time.sleep(0.05 * (attempt + 1))
        with self._idle:
            self._pending -= len(rows)
            self._idle.notify_all()
