"""Group commit: one thread writes the journal, many rows per transaction, and what waits for it.

At hundreds of orders a second a transaction per row is the bottleneck, and so is every thread
of the bridge taking turns at SQLite's single write lock (each turn also waits for the GIL). So:

- ``Journal.batch()`` queues this thread's writes. ``Batch.flush()`` hands them, as one unit,
  to the journal's writer thread, which commits whatever units are waiting in one transaction
  (group commit). A write that fails (a duplicate ClOrdID, say) undoes only itself: the
  transaction is retried with a SAVEPOINT around each write.
- Actions registered with ``Journal.after_commit`` — sending an ExecutionReport, broadcasting a
  transaction, handing an order to its worker — run only once the rows that explain them are
  durable: write-ahead holds for a whole batch at once. They run on the dispatcher thread, in
  commit order, so the thread that queued them goes on with its next order meanwhile. Actions
  collected for the ``broadcast`` lane (transactions to send) run on a thread of their own, also
  in commit order: a backlog of reports never holds a block's swaps back.
- A write whose outcome decides what happens next (a NewOrderSingle's row: a new ClOrdID goes to
  its worker, a used one gets a reject) names both continuations with ``Batch.on_outcome``; they
  run on the dispatcher, so the FIX edge goes on with the next message meanwhile. A caller that
  must hold until it knows flushes with ``wait=True``.
- Copies of outbound FIX messages are plain queued rows with nothing waiting on them: the row
  that says *why* a report was sent is committed before the report leaves; the copy of the wire
  message follows within milliseconds, and QuickFIX's own message store holds it meanwhile.

Each thread's units are committed in the order it flushed them; a unit somebody waits for may
go ahead of other threads' units. A unit nothing waits for (no action, no waiter: the copies of
outbound messages, a broadcast's status) waits up to LAZY_S for one that matters and rides in its
commit: an acknowledgement just sent is not followed at once by a commit of its own copy, which
on a small machine takes the CPU from the message on its way and from the next order's reads.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from .core import JournalCore as Journal

log = structlog.get_logger(__name__)

Op = Callable[[Session], Any]
MAX_OPS_PER_COMMIT = 256  # bounds one transaction, so a unit somebody waits for is not held long
COMMIT_ATTEMPTS = 3       # a group commit that fails this often stops the process (see Writer._commit)
LAZY_S = 0.005            # the longest a unit nothing waits for is held for company (see above)


class Unit:
    """What one flush hands to the writer."""

    __slots__ = ("ops", "actions", "thread", "done", "failures", "error", "lazy", "queued_at")

    def __init__(self, ops: list[Op], actions: list[Callable[[], None]], wait: bool) -> None:
        self.ops, self.actions = ops, actions
        self.thread = threading.get_ident()
        self.done = threading.Event() if wait else None
        self.lazy = not actions and not wait  # nothing waits for its commit
        self.queued_at = time.monotonic()
        self.failures: dict[int, BaseException] = {}
        self.error: BaseException | None = None


class Outcome:
    """An after-commit action that depends on one write of its unit: ``ok()`` if it was committed,
    ``failed(error)`` if it undid itself."""

    __slots__ = ("index", "ok", "failed")

    def __init__(self, index: int, ok: Callable[[], None], failed: Callable[[BaseException], None]) -> None:
        self.index, self.ok, self.failed = index, ok, failed


class Laned:
    """An after-commit action for a lane other than the dispatcher's (unwrapped when dispatched)."""

    __slots__ = ("lane", "action")

    def __init__(self, lane: str, action: Callable[[], None]) -> None:
        self.lane, self.action = lane, action


LANES = ("dispatch", "broadcast")


class Batch:
    """One thread's open unit of work: journal writes queued as operations, and the actions
    that wait for them."""

    def __init__(self, journal: "Journal") -> None:
        self._journal = journal
        self._ops: list[Op] = []
        self._actions: list[Callable[[], None]] = []
        self._collected: dict[str, list] = {}
        self.opened_at: float | None = None

    def add(self, op: Op) -> int:
        """Queue a write; returns its index in this flush (see ``flush``'s result)."""
        if not self._ops:
            self.opened_at = time.monotonic()
        self._ops.append(op)
        return len(self._ops) - 1

    def after_commit(self, action: Callable[[], None]) -> None:
        self._actions.append(action)

    def on_outcome(self, index: int, ok: Callable[[], None], failed: Callable[[BaseException], None]) -> None:
        """After the commit, in order with the other actions: ``ok()`` if write ``index`` (what
        ``add`` returned) was committed, else ``failed(error)``."""
        self._actions.append(Outcome(index, ok, failed))

    def collect(self, key: str, item: Any, action: Callable[[list], None], lane: str = "dispatch") -> None:
        """Add ``item`` to this flush's list ``key``; ``action(list)`` runs once, after the commit,
        on ``lane``'s thread."""
        items = self._collected.get(key)
        if items is None:
            items = self._collected[key] = []
            run = lambda: action(items)  # noqa: E731
            self.after_commit(run if lane == "dispatch" else Laned(lane, run))
        items.append(item)

    def age(self) -> float:
        """Seconds since the oldest queued write (0 if none)."""
        return 0.0 if self.opened_at is None else time.monotonic() - self.opened_at

    def flush(self, wait: bool = False) -> dict[int, BaseException]:
        """Hand the queued writes and their actions to the writer. With wait=True, return once they
        are committed (the actions may still be running), with the writes that failed by index;
        each failure undid only itself."""
        if not self._ops and not self._actions and not wait:
            return {}
        unit = Unit(self._ops, self._actions, wait)
        self._ops, self._actions, self._collected, self.opened_at = [], [], {}, None
        self._journal._writer.submit(unit)
        if unit.done is None:
            return {}
        unit.done.wait()
        if unit.error is not None:
            raise unit.error
        return unit.failures


class Writer:
    """The journal's writing thread and its dispatcher of after-commit actions."""

    def __init__(self, journal: "Journal") -> None:
        self._journal = journal
        self._units: deque[Unit] = deque()
        self._cv = threading.Condition()
        self._unfinished = 0  # units submitted whose actions have not all run
        # Each lane: its queue of (actions, failures of their unit), its condition and its thread.
        self._lanes = {lane: (deque(), threading.Condition()) for lane in LANES}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._dispatchers = [threading.Thread(target=self._dispatch, args=(lane,), name=f"journal-{lane}", daemon=True)
                             for lane in LANES]
        self._thread.start()
        for t in self._dispatchers:
            t.start()

    def submit(self, unit: Unit) -> None:
        with self._cv:
            if self._stopping and threading.current_thread() not in self._dispatchers:
                raise RuntimeError("journal writer is stopped")
            self._units.append(unit)
            self._unfinished += 1
            self._cv.notify_all()

    def backlog(self) -> int:
        """Units waiting for their commit, plus committed units whose reports wait for the dispatcher."""
        return len(self._units) + len(self._lanes["dispatch"][0])

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed and its actions have run."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def stop(self) -> bool:
        drained = self.drain()
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for _, cv in self._lanes.values():
            with cv:
                cv.notify_all()
        self._thread.join(timeout=10)
        for t in self._dispatchers:
            t.join(timeout=10)
        return drained

    # ---- the writer thread -------------------------------------------------------------------
    def _take(self) -> list[Unit] | None:
        with self._cv:
            while True:
                while not self._units:
                    if self._stopping:
                        return None
                    self._cv.wait()
                if self._stopping or not all(u.lazy for u in self._units):
                    break
                left = self._units[0].queued_at + LAZY_S - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)  # only rows nothing waits for: let them ride with the next unit
            units = list(self._units)
            # Someone is waiting on a unit (the FIX edge, before QuickFIX counts a message as
            # received): commit it on its own, ahead of other threads' units, unless its own
            # thread queued earlier ones.
            waited = [u for i, u in enumerate(units)
                      if u.done is not None and all(v.thread != u.thread for v in units[:i])]
            take = waited or units
            for u in take:
                self._units.remove(u)
        return take

    def _run(self) -> None:
        while True:
            units = self._take()
            if units is None:
                return
            group, n = [], 0
            for u in units:
                if group and n + len(u.ops) > MAX_OPS_PER_COMMIT:
                    self._commit(group)
                    group, n = [], 0
                    if self._waiting():
                        break  # the rest waits its turn behind the unit somebody waits for
                group.append(u)
                n += len(u.ops)
            else:
                self._commit(group)
                continue
            with self._cv:  # put back what was not committed, in order
                rest = units[units.index(u):]
                self._units.extendleft(reversed(rest))

    def _waiting(self) -> bool:
        with self._cv:
            return any(u.done is not None for u in self._units)

    def _commit(self, group: list[Unit]) -> None:
        ops = [op for u in group for op in u.ops]
        error: BaseException | None = None
        failures: dict[int, BaseException] = {}
        for attempt in range(COMMIT_ATTEMPTS if ops else 0):
            try:
                failures, error = self._journal._execute_ops(ops), None
                break
            except Exception as e:  # the database did not answer: nobody's rows were written
                error = e
                log.warning("journal commit failed; retrying", units=len(group), ops=len(ops), attempt=attempt,
                            error=f"{type(e).__name__}: {e}"[:300])
                time.sleep(0.2 * (attempt + 1))
        if error is not None and not self._journal._closed:
            # Fail-stop: the workers went on as if these rows were written (nonces taken, swaps
            # signed but not sent). Only a restart, recovering from what the journal and the chain
            # hold, keeps every invariant; nothing that depended on these rows has run.
            log.critical("journal cannot be written: stopping the bridge", error=f"{type(error).__name__}: {error}"[:300])
            os._exit(75)
        base = 0
        for u in group:
            u.failures = {i - base: e for i, e in failures.items() if base <= i < base + len(u.ops)}
            base += len(u.ops)
            u.error = error
            if u.actions and error is None:
                by_lane: dict[str, list] = {}
                for a in u.actions:
                    if type(a) is Laned:
                        by_lane.setdefault(a.lane, []).append(a.action)
                    else:
                        by_lane.setdefault("dispatch", []).append(a)
                if len(by_lane) > 1:
                    with self._cv:
                        self._unfinished += len(by_lane) - 1  # the unit is done when every lane is
                for lane, actions in by_lane.items():
                    q, cv = self._lanes[lane]
                    with cv:
                        q.append((actions, u.failures))
                        cv.notify()
            else:
                self._finished()
            if u.done is not None:
                u.done.set()

    def _finished(self) -> None:
        with self._cv:
            self._unfinished -= 1
            self._cv.notify_all()

    # ---- the dispatcher thread ---------------------------------------------------------------
    def _dispatch(self, lane: str) -> None:
        q, cv = self._lanes[lane]
        while True:
            with cv:
                while not q:
                    if self._stopping:
                        return
                    cv.wait(0.5)
                actions, failures = q.popleft()
            # What the actions write (a transaction's 'broadcast' status, a refusal's report) is
            # itself a unit, flushed when they are done.
            with self._journal.batch():
                for action in actions:
                    try:
                        if type(action) is Outcome:
                            e = failures.get(action.index)
                            action.ok() if e is None else action.failed(e)
                        else:
                            action()
                    except Exception:  # one report that cannot be sent must not cost the others theirs
                        log.exception("after-commit action failed")
            self._finished()
