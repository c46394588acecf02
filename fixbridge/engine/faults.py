"""Crash points for the fault tests: with FIXBRIDGE_CRASH_AT=<point> the process kills itself
(SIGKILL, as a power cut would) when execution reaches that point. Unset, this costs one dict lookup."""
from __future__ import annotations

import os
import signal

_AT = os.environ.get("FIXBRIDGE_CRASH_AT")
POINTS = ("before_sign", "after_write_ahead", "after_broadcast", "after_receipt", "before_report")


def crash_point(name: str) -> None:
    if _AT == name:
        os.kill(os.getpid(), signal.SIGKILL)
