"""Keep FIX passwords out of QuickFIX's files.

QuickFIX's FileLog writes every message verbatim as it arrives (before the Application sees it),
and its FileStore keeps every message a side sent, so a Logon's Password (554) would stay on disk
in `<FileLogPath>/*.messages.current.log` (the acceptor's) and the initiator's store `*.body`.
A Python LogFactory in between is not an option with this binding (its callbacks are not safe
from QuickFIX's threads), so the secret values are masked in place instead: the same number of
'*' bytes over the value, so every offset QuickFIX keeps (store index, open append streams) stays
valid. The acceptor scrubs when it has judged a Logon and when a session logs out; nothing else
than those tags is touched.
"""
from __future__ import annotations

import re
from pathlib import Path

SECRET_TAGS = (554, 925, 1402)   # Password, NewPassword, EncryptedPassword
# A value runs to the next SOH, whatever it contains ('|', newlines): mask all of it.
_SECRET = re.compile(rb"\x01(?:" + b"|".join(str(t).encode() for t in SECRET_TAGS) + rb")=([^\x01]*)(?=\x01)")
PATTERNS = ("*.messages.current.log", "*.messages.log", "*.body")


def scrub_file(path: Path, tail: int = 1 << 20) -> int:
    """Overwrite, in place and at the same length, every unmasked secret value in the last `tail`
    bytes of `path`. Returns how many values were masked."""
    count = 0
    try:
        with open(path, "r+b") as f:
            f.seek(0, 2)
            size = f.tell()
            start = max(0, size - tail)
            f.seek(start)
            data = f.read()
            for m in _SECRET.finditer(data):  # a match needs both SOHs: the value is complete
                value = m.group(1)
                if value and value.strip(b"*"):
                    f.seek(start + m.start(1))
                    f.write(b"*" * len(value))
                    count += 1
            f.flush()
    except FileNotFoundError:
        pass
    return count


def scrub_dirs(dirs: list[Path], patterns: tuple[str, ...] = PATTERNS) -> int:
    n = 0
    for d in dirs:
        if d.is_dir():
            for pattern in patterns:
                for p in d.glob(pattern):
                    n += scrub_file(p)
    return n
