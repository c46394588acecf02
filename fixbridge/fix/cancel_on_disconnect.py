"""Cancel on disconnect: a session with `cancel_on_disconnect = true` that logs out or loses its
connection has its working orders canceled once `cancel_on_disconnect_grace_seconds` pass without
it logging on again (a start of the bridge counts as a disconnect: the sessions are away until they
log on). The reports go to QuickFIX like any other: kept in the session's store while it
is away and delivered by FIX resend at its next Logon (the acceptor never resets sequence numbers)."""
from __future__ import annotations

import threading
from typing import Callable

import structlog

from fixbridge.config import SessionsConfig
from fixbridge.engine.execution import session_counterparty

log = structlog.get_logger(__name__)


class CancelOnDisconnect:
    def __init__(self, sessions: SessionsConfig, mass_cancel: Callable[..., list]) -> None:
        self._sessions, self._mass_cancel = sessions, mass_cancel
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        self._suspended = False  # the bridge is stopping: its own Logouts cancel nothing

    def _grace(self, session_id: str) -> float | None:
        cp = self._sessions.sessions.get(session_counterparty(session_id))
        if cp is None or not cp.cancel_on_disconnect:
            return None
        return float(cp.cancel_on_disconnect_grace_seconds)  # a timer's seconds, not money

    def logged_on(self, session_id: str) -> None:
        with self._lock:
            t = self._timers.pop(session_id, None)
        if t is not None:
            t.cancel()
            log.info("cancel on disconnect: logged on again within the grace period", session=session_id)

    def logged_out(self, session_id: str) -> None:
        grace = self._grace(session_id)
        if grace is None or self._suspended:
            return
        t = threading.Timer(grace, self._fire, args=(session_id,))
        t.daemon = True
        t.name = f"cod-{session_counterparty(session_id)}"
        with self._lock:
            old = self._timers.pop(session_id, None)
            self._timers[session_id] = t
        if old is not None:
            old.cancel()
        log.info("cancel on disconnect: armed", session=session_id, grace_s=grace)
        t.start()

    def started(self, session_ids: list[str]) -> None:
        """The bridge (re)started: every session is disconnected until it logs on, so each with
        cancel_on_disconnect has the grace period to log on before its recovered working orders go."""
        for sid in session_ids:
            self.logged_out(sid)

    def suspend(self) -> None:
        """The bridge is stopping: what it leaves working is the next start's to finish."""
        self._suspended = True
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for t in timers:
            t.cancel()

    def _fire(self, session_id: str) -> None:
        with self._lock:
            if self._timers.get(session_id) is not threading.current_thread():
                return  # logged on again (or re-armed) meanwhile
            del self._timers[session_id]
        if self._suspended:
            return
        try:
            orders = self._mass_cancel(session_id, None, requested_by="cancel on disconnect")
            if orders:  # a session that had nothing working (at every start, one not logged on) is no news
                log.warning("cancel on disconnect: the session's working orders canceled", session=session_id,
                            orders=[o.cl_ord_id for o in orders])
        except Exception:
            log.exception("cancel on disconnect failed", session=session_id)
