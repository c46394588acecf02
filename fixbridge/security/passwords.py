"""Salted slow password hashes for FIX Logon (553 Username / 554 Password).

Format (one string, safe to keep in counterparties.toml):

    scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>

`hash_password` makes one with a fresh 16-byte salt; `verify_password` checks a candidate in
constant time. scrypt with n=2**14, r=8, p=1 costs ~16 MiB and tens of milliseconds a try.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

SCHEME = "scrypt"
DEFAULT_LOG2_N, DEFAULT_R, DEFAULT_P = 14, 8, 1
_DKLEN = 32


class BadHashFormat(ValueError):
    """The stored hash is not `scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`."""


@dataclass(frozen=True)
class _Parsed:
    log2_n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii").rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def parse_hash(stored: str) -> _Parsed:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise BadHashFormat("expected scrypt$<log2 n>$<r>$<p>$<salt>$<hash> (make one with `fixbridge hash-password`)")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise BadHashFormat("scrypt parameters must be integers and salt/hash base64") from None
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and len(salt) >= 16 and len(digest) >= 16):
        raise BadHashFormat("scrypt parameters out of range (log2 n 10..20, r 1..32, p 1..16, salt >= 16 bytes)")
    return _Parsed(log2_n, r, p, salt, digest)


def _scrypt(password: str, p: _Parsed | None = None, *, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R,
            par: int = DEFAULT_P, salt: bytes = b"", dklen: int = _DKLEN) -> bytes:
    if p is not None:
        log2_n, r, par, salt, dklen = p.log2_n, p.r, p.p, p.salt, len(p.digest)
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=par, dklen=dklen,
                          maxmem=256 * n * r * par + (1 << 20))


def hash_password(password: str, *, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = os.urandom(16)
    digest = _scrypt(password, log2_n=log2_n, r=r, par=p, salt=salt)
    return f"{SCHEME}${log2_n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`. Constant-time comparison; never raises on a bad candidate."""
    parsed = parse_hash(stored)
    try:
        candidate = _scrypt(password, parsed)
    except (UnicodeError, ValueError):
        return False
    return hmac.compare_digest(candidate, parsed.digest)
