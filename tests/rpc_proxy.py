"""A hostile node for the tests: a JSON-RPC proxy between the bridge and anvil that injects faults.

The bridge's spec points its `rpc_url` at the proxy; the test owns the proxy object in-process and
says, per test, how the "node" misbehaves:

- receipts late by N blocks (`late_receipts`): eth_getTransactionReceipt answers null and
  eth_getBlockReceipts leaves the receipt out until the chain is N blocks past its block;
- a block announced before its receipts are served (`receipts_delay`): the same, for a time after
  the proxy first showed the block;
- JSON-RPC errors (`error`, -32000 by default) and `unsupported` methods (-32601), per call, also
  inside a batch;
- HTTP 429 / 5xx (`http_status`), a hang longer than the client's timeout (`hang`) and a
  connection reset (`reset`), for the whole HTTP request; `forward=True` lets the request reach the
  node first, so its effect happens and only the answer is lost;
- a stale `latest` (`stale_latest`): eth_blockNumber and eth_getBlockByNumber("latest") lag.

Each fault is scoped by method, by probability (a seeded RNG, `seed`) and by count (`times`).
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

RECEIPT_METHODS = frozenset({"eth_getTransactionReceipt", "eth_getBlockReceipts"})
LATEST_METHODS = frozenset({"eth_blockNumber", "eth_getBlockByNumber"})
WHOLE_REQUEST = frozenset({"http", "hang", "reset"})  # faults of the HTTP exchange, not of one call
PER_CALL = frozenset({"error", "unsupported"})        # answered by the "node" instead of anvil


@dataclass
class Fault:
    """One misbehaviour. `methods` None: every method. `times` None: no limit."""
    kind: str
    methods: frozenset[str] | None = None
    probability: float = 1.0
    times: int | None = None
    code: int = -32000
    message: str = "injected fault"
    status: int = 503
    seconds: float = 0.0
    blocks: int = 0
    forward: bool = False
    addresses: frozenset[str] | None = None  # late receipts: only transactions from these (lower-case)
    fired: int = 0

    def matches(self, method: str) -> bool:
        return self.methods is None or method in self.methods


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a reset or a hang we caused ourselves: nothing to report


class RpcProxy:
    """Forwards JSON-RPC (single calls and batches) to `upstream`, injecting the faults added."""

    def __init__(self, upstream: str, seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        u = urlsplit(upstream)
        self._up_host, self._up_port = u.hostname or "127.0.0.1", u.port or 80
        self.seed = seed
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._tls = threading.local()
        self._stopping = threading.Event()
        self._first_seen: dict[int, float] = {}  # block number -> when a client could first know of it
        self.calls: Counter[str] = Counter()
        self.eth_calls: Counter[tuple[str, str]] = Counter()  # (to, 4-byte selector) of each eth_call
        self.injected: Counter[tuple[str, str]] = Counter()  # (kind, method) -> times
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real node's endpoint

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

        self._server = _Server((host, port), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "RpcProxy":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="rpc-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "RpcProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- the faults ----------------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @staticmethod
    def _scope(methods: str | list[str] | frozenset[str] | None) -> frozenset[str] | None:
        if methods is None:
            return None
        return frozenset([methods] if isinstance(methods, str) else methods)

    def late_receipts(self, blocks: int, probability: float = 1.0, addresses: list[str] | None = None) -> Fault:
        """Receipts served only once the chain is `blocks` past their block. `probability` picks the
        late transactions (by hash, so a transaction is late or not for every asker)."""
        return self.add(Fault("late_receipts", RECEIPT_METHODS, probability, blocks=blocks,
                              addresses=frozenset(a.lower() for a in addresses) if addresses else None))

    def receipts_delay(self, seconds: float, probability: float = 1.0) -> Fault:
        """A block is announced (eth_blockNumber, eth_getBlockByNumber) `seconds` before its receipts are served."""
        return self.add(Fault("receipts_delay", RECEIPT_METHODS, probability, seconds=seconds))

    def error(self, methods: str | list[str] | None = None, probability: float = 1.0, times: int | None = None,
              code: int = -32000, message: str = "injected: header not found") -> Fault:
        """The node answers the call with a JSON-RPC error (the call does not reach anvil)."""
        return self.add(Fault("error", self._scope(methods), probability, times, code=code, message=message))

    def unsupported(self, method: str = "eth_getBlockReceipts") -> Fault:
        return self.add(Fault("unsupported", frozenset([method]), code=-32601,
                              message=f"the method {method} does not exist/is not available"))

    def http_status(self, status: int = 429, methods: str | list[str] | None = None, probability: float = 1.0,
                    times: int | None = None) -> Fault:
        """The HTTP request is answered with `status` (429 Too Many Requests, 502/503/504 …)."""
        return self.add(Fault("http", self._scope(methods), probability, times, status=status))

    def hang(self, seconds: float, methods: str | list[str] | None = None, probability: float = 1.0,
             times: int | None = None, forward: bool = False) -> Fault:
        """No answer for `seconds`, then the connection is closed. forward=True: the node got the
        request (e.g. a broadcast took effect), only its answer is lost."""
        return self.add(Fault("hang", self._scope(methods), probability, times, seconds=seconds, forward=forward))

    def reset(self, methods: str | list[str] | None = None, probability: float = 1.0, times: int | None = None,
              forward: bool = False) -> Fault:
        """The connection is reset (TCP RST) instead of answered; forward=True: after the node got it."""
        return self.add(Fault("reset", self._scope(methods), probability, times, forward=forward))

    def stale_latest(self, blocks: int, probability: float = 1.0) -> Fault:
        """eth_blockNumber and eth_getBlockByNumber("latest") answer `blocks` behind the chain
        (with probability < 1 the answer flips between stale and current, as behind a load balancer)."""
        return self.add(Fault("stale_latest", LATEST_METHODS, probability, blocks=blocks))

    def _fire(self, kinds: frozenset[str], method: str) -> Fault | None:
        """The first fault of `kinds` that applies to `method` and fires this time (seeded RNG)."""
        with self._lock:
            for f in self._faults:
                if f.kind not in kinds or not f.matches(method) or f.times == 0:
                    continue
                if f.probability < 1.0 and self.rng.random() >= f.probability:
                    continue
                if f.times is not None:
                    f.times -= 1
                f.fired += 1
                self.injected[(f.kind, method)] += 1
                return f
        return None

    def _active(self, kind: str) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.kind == kind]

    # ---- the exchange --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            return self._reply(h, 400, b"bad json", "text/plain")
        batch = isinstance(payload, list)
        calls: list[dict] = payload if batch else [payload]
        for c in calls:
            self.calls[c.get("method", "?")] += 1
            if c.get("method") == "eth_call" and c.get("params"):
                tx = c["params"][0] or {}
                data = tx.get("data") or tx.get("input") or ""
                self.eth_calls[(str(tx.get("to", "")).lower(), data[:10])] += 1
        for c in calls:  # faults of the whole HTTP exchange: the first call they apply to decides
            f = self._fire(WHOLE_REQUEST, c.get("method", ""))
            if f is not None:
                return self._whole(h, f, body)
        answers: dict[int, dict] = {}
        forward: list[tuple[int, dict]] = []
        for i, c in enumerate(calls):
            f = self._fire(PER_CALL, c.get("method", ""))
            if f is not None:
                answers[i] = {"jsonrpc": "2.0", "id": c.get("id"), "error": {"code": f.code, "message": f.message}}
            else:
                forward.append((i, self._rewrite(c)))
        if forward:
            try:
                got = self._upstream([c for _, c in forward])
            except (OSError, http.client.HTTPException) as e:
                return self._reply(h, 502, f"upstream: {e}".encode(), "text/plain")
            for (i, c), r in zip(forward, got):
                answers[i] = self._after(c, r)
        out = [answers[i] for i in range(len(calls))]
        self._reply(h, 200, json.dumps(out if batch else out[0]).encode(), "application/json")

    def _whole(self, h: BaseHTTPRequestHandler, f: Fault, body: bytes) -> None:
        if f.forward:
            try:
                self._upstream_raw(body)
            except (OSError, http.client.HTTPException):
                pass
        if f.kind == "http":
            text = {429: b"Too Many Requests", 502: b"Bad Gateway", 503: b"Service Unavailable",
                    504: b"Gateway Timeout"}.get(f.status, b"Internal Server Error")
            return self._reply(h, f.status, text, "text/plain")
        if f.kind == "hang":
            self._stopping.wait(f.seconds)
            h.close_connection = True
            return
        # reset: SO_LINGER 0 makes close() send RST instead of FIN
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            h.close_connection = True

    def _rewrite(self, c: dict) -> dict:
        """A stale `latest`: the block asked for as "latest" is an older one."""
        if c.get("method") == "eth_getBlockByNumber" and (c.get("params") or [None])[0] == "latest":
            f = self._fire(frozenset({"stale_latest"}), "eth_getBlockByNumber")
            if f is not None:
                head = self._head()
                return {**c, "params": [hex(max(0, head - f.blocks)), *c["params"][1:]]}
        return c

    def _after(self, c: dict, r: dict) -> dict:
        method, result = c.get("method"), r.get("result")
        if method == "eth_blockNumber" and isinstance(result, str):
            f = self._fire(frozenset({"stale_latest"}), method)
            n = int(result, 16)
            if f is not None:
                n = max(0, n - f.blocks)
                r = {**r, "result": hex(n)}
            self._seen(n)
        elif method == "eth_getBlockByNumber" and isinstance(result, dict):
            self._seen(int(result["number"], 16))
        elif method == "eth_getTransactionReceipt" and isinstance(result, dict):
            if self._held_back(result, method):
                r = {**r, "result": None}
        elif method == "eth_getBlockReceipts" and isinstance(result, list):
            kept = [x for x in result if not self._held_back(x, method)]
            if len(kept) != len(result):
                r = {**r, "result": kept}
        return r

    def _held_back(self, receipt: dict, method: str) -> bool:
        """Whether the "node" does not serve this receipt yet."""
        block = int(receipt["blockNumber"], 16)
        tx = receipt["transactionHash"].lower()
        for f in self._active("late_receipts"):
            if f.addresses is not None and (receipt.get("from") or "").lower() not in f.addresses:
                continue
            if f.probability < 1.0 and random.Random(f"{self.seed}:{tx}").random() >= f.probability:
                continue
            if self._head() < block + f.blocks:
                self._count(f, method)
                return True
        for f in self._active("receipts_delay"):
            if f.probability < 1.0 and random.Random(f"{self.seed}:{tx}").random() >= f.probability:
                continue
            with self._lock:
                seen = self._first_seen.setdefault(block, time.monotonic())
            if time.monotonic() < seen + f.seconds:
                self._count(f, method)
                return True
        return False

    def _count(self, f: Fault, method: str) -> None:
        with self._lock:
            f.fired += 1
            self.injected[(f.kind, method)] += 1

    def _seen(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            if n not in self._first_seen:
                low = max([k for k in self._first_seen if k < n], default=n - 1)
                for k in range(low + 1, n + 1):
                    self._first_seen.setdefault(k, now)

    # ---- anvil ---------------------------------------------------------------------------------
    def _head(self) -> int:
        return int(self._upstream([{"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}])[0]["result"], 16)

    def _upstream(self, calls: list[dict]) -> list[dict]:
        """The calls sent to anvil as one request; the answers in the same order."""
        if len(calls) == 1:
            return [json.loads(self._upstream_raw(json.dumps(calls[0]).encode()))]
        got = json.loads(self._upstream_raw(json.dumps(calls).encode()))
        if isinstance(got, dict):
            return [got for _ in calls]
        by_id = {json.dumps(x.get("id")): x for x in got}
        return [by_id.get(json.dumps(c.get("id")), {"jsonrpc": "2.0", "id": c.get("id"),
                                                    "error": {"code": -32603, "message": "no answer"}}) for c in calls]

    def _upstream_raw(self, body: bytes) -> bytes:
        for attempt in (0, 1):  # a keep-alive connection anvil closed is reopened once
            conn = getattr(self._tls, "conn", None)
            if conn is None:
                conn = self._tls.conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                return resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._tls.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")
