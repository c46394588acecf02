"""Crash points for the fault tests: with FIXBRIDGE_CRASH_AT=<point> (or <point>:<n>, the n-th time
it is reached) the process kills itself with SIGKILL, as a power cut would. Unset, this costs one
comparison."""
from __future__ import annotations

import os
import signal
import threading

POINTS = ("before_ack", "before_sign", "after_write_ahead", "after_broadcast", "after_receipt", "before_report",
          "after_approval")  # after_approval: an approval sent, the swap behind it not signed yet
_spec = os.environ.get("FIXBRIDGE_CRASH_AT", "")
_AT, _, _NTH = _spec.partition(":")
_left = int(_NTH or 1)
_lock = threading.Lock()


def crash_point(name: str) -> None:
    global _left
    if _AT != name:
        return
    with _lock:
        _left -= 1
        if _left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
