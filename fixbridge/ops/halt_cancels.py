"""The kill switch's second half: `fixbridge halt` journals a halt, every bridge on the journal
refuses new orders (orders/risk.py), and this watcher cancels the halted sessions' working orders
through the engine's cancel path (each order's own outcome is its report: Canceled, or a fill that
was already mined). Halts in force at start are new to this instance: their sessions' working
orders are canceled too."""
from __future__ import annotations

import threading
from typing import Callable

import structlog

from fixbridge.journal import Journal

log = structlog.get_logger(__name__)

POLL_S = 0.5  # `fixbridge halt` promises effect within a second


class HaltCanceller:
    def __init__(self, journal: Journal, session_ids: Callable[[], list[str]],
                 mass_cancel: Callable[..., list], counterparty_of: Callable[[str], str]) -> None:
        self._journal, self._session_ids, self._mass_cancel = journal, session_ids, mass_cancel
        self._counterparty_of = counterparty_of
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="halt-cancels", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.check()
            except Exception:
                log.exception("reading halts failed")

    def check(self) -> None:
        for h in self._journal.active_halts():
            if h.id in self._seen:
                continue
            self._seen.add(h.id)
            sessions = [s for s in self._session_ids() if h.scope == "*" or self._counterparty_of(s) == h.scope]
            for sid in sessions:
                orders = self._mass_cancel(sid, None, requested_by=f"halt #{h.id} by {h.halted_by}: {h.reason}")
                if orders:
                    log.warning("halt: working orders canceled", session=sid, halt=h.id,
                                orders=[o.cl_ord_id for o in orders])
