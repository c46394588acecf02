"""Helpers for the security and hostile-input tests: a bridge with its own counterparties.toml and
acceptor.cfg, and a raw FIX sender that writes exactly the bytes a test wants (good or bad
BodyLength and CheckSum) and reads what the acceptor answers."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import support
from support import KEYS, BridgeProcess, acceptor_cfg

SOH = "\x01"


# ---- a bridge with its own sessions -----------------------------------------------------------

def write_sessions(d: Path, counterparties: str, *, acceptor_default: str = "", comp_ids=("CLIENT1", "CLIENT2",
                   "CLIENT3", "CLIENT4")) -> Path:
    """sessions/ with an acceptor.cfg for comp_ids (extra [DEFAULT] lines allowed) and the given toml.
    `counterparties` may use {k1}..{k4} for anvil's keys #1..#4."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "acceptor.cfg").write_text(acceptor_cfg(comp_ids, extra=acceptor_default))
    (d / "counterparties.toml").write_text(counterparties.format(k1=KEYS[1], k2=KEYS[2], k3=KEYS[3], k4=KEYS[4]))
    return d / "counterparties.toml"


def start_bridge(devnet, counterparties_toml: Path, state: Path, env: dict | None = None) -> BridgeProcess:
    return support.start_bridge([devnet.spec_path], counterparties_toml, state, env=env)


# ---- raw FIX -------------------------------------------------------------------------------

def checksum(data: bytes) -> str:
    return f"{sum(data) % 256:03d}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def frame(body_fields: list[tuple[int | str, str]], *, begin: str = "FIX.4.4", body_length: int | None = None,
          check: str | None = None) -> bytes:
    """8=..|9=..|<body>|10=.. with the right BodyLength and CheckSum unless told otherwise."""
    body = "".join(f"{t}={v}{SOH}" for t, v in body_fields).encode()
    head = f"8={begin}{SOH}9={len(body) if body_length is None else body_length}{SOH}".encode()
    msg = head + body
    return msg + f"10={checksum(msg) if check is None else check}{SOH}".encode()


@dataclass
class Msg:
    fields: list[tuple[int, str]]
    raw: bytes

    @property
    def type(self) -> str:
        return self[35]

    def __getitem__(self, tag: int) -> str:
        for t, v in self.fields:
            if t == tag:
                return v
        raise KeyError(tag)

    def get(self, tag: int, default=None):
        try:
            return self[tag]
        except KeyError:
            return default


class RawFix:
    """One TCP connection to the acceptor, speaking FIX byte by byte."""

    def __init__(self, port: int, sender: str, target: str = "FIXBRIDGE", host: str = "127.0.0.1") -> None:
        self.sender, self.target = sender, target
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq = 1
        self._buf = b""
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawFix":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sending
    def build(self, msg_type: str, fields: list[tuple[int | str, str]] = (), *, seq: int | None = None,
              sender: str | None = None, header: list[tuple[int, str]] = (), **kw) -> bytes:
        hdr = [(35, msg_type), (49, sender or self.sender), (56, self.target),
               (34, str(self.seq if seq is None else seq)), (52, utc_now()), *header]
        return frame(hdr + list(fields), **kw)

    def send(self, msg_type: str, fields: list[tuple[int | str, str]] = (), *, seq: int | None = None,
             advance: bool = True, **kw) -> int:
        """Send one message; the next MsgSeqNum is used (and consumed) unless seq is given."""
        used = self.seq if seq is None else seq
        self.send_bytes(self.build(msg_type, fields, seq=used, **kw))
        if seq is None and advance:
            self.seq += 1
        return used

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logon(self, *, username: str | None = None, password: str | None = None, reset: bool = True,
              timeout: float = 10) -> Msg:
        fields: list[tuple[int | str, str]] = [(98, "0"), (108, "30")]
        if reset:
            fields.append((141, "Y"))
        if username is not None:
            fields.append((553, username))
        if password is not None:
            fields.append((554, password))
        self.send("A", fields)
        return self.recv(timeout)

    # -- receiving
    def recv(self, timeout: float = 10) -> Msg:
        end = time.monotonic() + timeout
        while True:
            m = self._parse()
            if m is not None:
                return m
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                raise TimeoutError("no message" + (" (connection closed)" if self.eof else ""))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            self._buf += chunk

    def recv_until(self, pred, timeout: float = 10, skip=("0",)) -> Msg:
        """The first message for which pred(msg) holds; Heartbeats (and other `skip` types) skipped."""
        end = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.05, end - time.monotonic()))
            if pred(m):
                return m
            if m.type not in skip and time.monotonic() > end:
                raise TimeoutError(f"last message {m.raw!r}")

    def expect_silence(self, seconds: float) -> list[Msg]:
        """Messages that arrive within `seconds` (a test asserts there are none, or only Heartbeats)."""
        got = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                got.append(self.recv(max(0.05, end - time.monotonic())))
            except TimeoutError:
                break
        return got

    def closed_by_peer(self, timeout: float = 10) -> bool:
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            try:
                self.recv(max(0.05, end - time.monotonic()))
            except TimeoutError:
                pass
        return self.eof

    def _parse(self) -> Msg | None:
        b = self._buf
        start = b.find(b"8=")
        if start < 0:
            return None
        b = b[start:]
        i = b.find(b"\x019=")
        if i < 0:
            return None
        j = b.find(b"\x01", i + 1)
        if j < 0:
            return None
        n = int(b[i + 3:j])
        end = j + 1 + n + 7  # body, then "10=xxx\x01"
        if len(b) < end:
            return None
        raw = b[:end]
        self._buf = b[end:]
        fields = []
        for part in raw.split(b"\x01"):
            if b"=" in part:
                t, v = part.split(b"=", 1)
                fields.append((int(t), v.decode(errors="replace")))
        return Msg(fields, raw)
