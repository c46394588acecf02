"""The FIX edge protecting itself: a message throttle per session and Logon authentication.

Throttle: each session may send `max_messages_per_second` application messages, in bursts of up to
`max_messages_burst` (a token bucket; counterparties.toml). The check is a few arithmetic
operations under a lock, done before anything else in `fromApp`; over the limit the message gets a
reject and touches nothing else.

Logon: a session with `password_hash` must log on with Password (554) (and Username (553) if
`username` is set). Every attempt is journaled (logon_attempts; never the password). After
`max_logon_failures` failures within `logon_failure_window_seconds` the CompID is locked out for
`lockout_seconds`: every Logon, right or wrong, is refused until then. The count lives in the
journal, so it survives a restart and is shared by bridges on one journal. A session without a
password_hash is open (the devnet demo).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from fixbridge.security.passwords import verify_password

if TYPE_CHECKING:
    from fixbridge.config import Counterparty, SessionsConfig
    from fixbridge.journal import Journal

log = structlog.get_logger(__name__)


class TokenBucket:
    """`rate` tokens a second, at most `burst` banked. take() is O(1) and thread-safe."""

    def __init__(self, rate: Decimal, burst: int) -> None:
        self.rate, self.burst = float(rate), float(burst)  # a rate, not money: float is fine here
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass
class ThrottleState:
    bucket: TokenBucket
    throttled: bool = False   # in a throttled spell (journal one security event per spell)
    dropped: int = 0


class Throttle:
    def __init__(self, sessions: "SessionsConfig") -> None:
        self._states: dict[str, ThrottleState | None] = {}
        self._sessions = sessions
        self._lock = threading.Lock()

    def _state(self, session_id: str) -> ThrottleState | None:
        st = self._states.get(session_id, False)
        if st is not False:
            return st  # type: ignore[return-value]
        with self._lock:
            cp = self._sessions.sessions.get(_comp_id(session_id))
            if cp is None or cp.max_messages_per_second is None:
                st = None
            else:
                burst = cp.max_messages_burst or max(1, int(cp.max_messages_per_second))
                st = ThrottleState(TokenBucket(cp.max_messages_per_second, burst))
            self._states[session_id] = st
            return st

    def allow(self, session_id: str) -> tuple[bool, ThrottleState | None]:
        """(allowed, state). A spell of throttling starts when a message is refused and ends at the
        next one allowed."""
        st = self._state(session_id)
        if st is None:
            return True, None
        if st.bucket.take():
            st.throttled = False
            return True, st
        st.dropped += 1
        return False, st

    def limit_text(self, session_id: str) -> str:
        cp = self._sessions.sessions[_comp_id(session_id)]
        burst = cp.max_messages_burst or max(1, int(cp.max_messages_per_second or 1))
        return (f"Throttle limit exceeded: this session may send {cp.max_messages_per_second} messages per second "
                f"(bursts of {burst}); message not processed, send it again later")


class LogonRejected(Exception):
    """The Logon must be refused with this text (QuickFIX sends it in the Logout)."""


class LogonGuard:
    def __init__(self, sessions: "SessionsConfig", journal: "Journal") -> None:
        self.sessions, self.journal = sessions, journal

    def check(self, session_id: str, username: str | None, password: str | None) -> None:
        """Raise LogonRejected(reason) to refuse; journal every decision either way."""
        comp = _comp_id(session_id)
        cp = self.sessions.sessions.get(comp)
        if cp is None:  # QuickFIX only creates sessions from acceptor.cfg, which load_sessions checked
            self._record(session_id, comp, username, "error", "no counterparty configured")
            raise LogonRejected("unknown counterparty")
        if cp.password_hash is None:
            self._record(session_id, comp, username, "accepted", "open session (no password_hash configured)")
            return
        locked = self._locked_until(session_id, comp, cp)
        if locked is not None:
            why = (f"{comp} is locked out until {locked.strftime('%Y-%m-%d %H:%M:%S')}Z after "
                   f"{cp.max_logon_failures} failed logons")
            self._record(session_id, comp, username, "locked_out", why)
            raise LogonRejected(why)
        if not password:
            self._fail(session_id, comp, cp, username, "no_password", "Password (554) is required")
        if cp.username is not None and username != cp.username:
            self._fail(session_id, comp, cp, username, "bad_username", "bad username or password")
        if not verify_password(password, cp.password_hash):  # type: ignore[arg-type]
            self._fail(session_id, comp, cp, username, "bad_password", "bad username or password")
        self._record(session_id, comp, username, "accepted", "password verified")

    def _fail(self, session_id: str, comp: str, cp: "Counterparty", username: str | None, outcome: str,
              why: str) -> None:
        self._record(session_id, comp, username, outcome, why)
        until = self._locked_until(session_id, comp, cp)
        if until is not None:
            msg = (f"{comp} locked out until {until.strftime('%Y-%m-%d %H:%M:%S')}Z: {cp.max_logon_failures} "
                   f"failed logons within {cp.logon_failure_window_seconds}s")
            self.journal.record_security_event("lockout", session_id, msg,
                                               detail={"failures": cp.max_logon_failures,
                                                       "window_seconds": cp.logon_failure_window_seconds,
                                                       "lockout_seconds": cp.lockout_seconds,
                                                       "until": until})
            log.warning("logon lockout", session=session_id, until=until.isoformat())
            why = f"{why}; {msg}"
        raise LogonRejected(why)

    def _locked_until(self, session_id: str, comp: str, cp: "Counterparty") -> datetime | None:
        """Locked when the last max_logon_failures failures (since the last success, and since the
        last lockout began: once it has run out the count starts again) all fall in the window; the
        lock lasts lockout_seconds from the latest of them."""
        n = cp.max_logon_failures
        last = self.journal.last_security_event(session_id, "lockout")
        fails = self.journal.logon_failures_since_success(comp, n, after=last.ts if last else None)
        if last is not None and last.detail and "until" in last.detail:
            until = datetime.fromisoformat(last.detail["until"])
            if datetime.now(timezone.utc) < until:
                return until
        if len(fails) < n or cp.lockout_seconds == 0:
            return None
        newest, oldest = fails[0], fails[-1]
        if newest - oldest > timedelta(seconds=cp.logon_failure_window_seconds):
            return None
        until = newest + timedelta(seconds=cp.lockout_seconds)
        return until if datetime.now(timezone.utc) < until else None

    def _record(self, session_id: str, comp: str, username: str | None, outcome: str, why: str) -> None:
        self.journal.record_logon_attempt(session_id=session_id, comp_id=comp, username=username, outcome=outcome,
                                          reason=why)
        log.info("logon attempt", session=session_id, outcome=outcome)


def _comp_id(session_id: str) -> str:
    return session_id.rsplit("->", 1)[-1]
