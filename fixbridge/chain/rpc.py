"""One way to reach a node: a Web3 over HTTP, trimmed for a hot path that signs its own
transactions. web3's default 'validation' middleware asks the node for eth_chainId around every
call (three HTTP requests per eth_call); the bridge checks the chain id once at start instead.
ENS resolution is dropped too: every address the bridge uses comes from a spec, never a name.

Pinned reads: an intake worker that takes a batch of orders reads the chain at one block for all
of them (``pinned_reads``). Its ``eth_call``s (through ``eth_call`` below) go to that block number,
and the same call is answered once: a hundred orders of one pair cost one quote, one balanceOf,
one allowance. A call at a fixed block is a pure function of its arguments, so the cache is exact;
it is kept, on the worker's own thread, while the node's head has not moved.

A node that is slow or failing: every request, web3's included (`PinnableHTTPProvider.make_request`
goes through `FastRPC`), is asked again with backoff when the node's trouble is transient — a reset
or refused connection, a timeout, HTTP 429 or 5xx, a JSON-RPC error that is neither a revert nor a
refusal of the transaction itself (e.g. -32000 "header not found"). What is still failing after
RETRY_ATTEMPTS raises `NodeError`, or, for a JSON-RPC error, is answered to the caller as such. An
error answer to eth_sendRawTransaction is the node's refusal and is never asked again; a broadcast
whose answer was lost is (the same signed bytes: a node that has it says "already known")."""
from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from web3 import Web3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.providers.rpc import HTTPProvider


class _Pin:
    """The block one batch reads at, and the answers read there. A new batch asks the node for its
    head again (one eth_blockNumber); the answers are kept while the head has not moved."""

    def __init__(self) -> None:
        self.block: str | None = None
        self.cache_block: str | None = None
        self.cache: dict[str, Any] = {}

    def next_batch(self, head: int | None = None) -> None:
        """A new batch reads at the node's head: `head` if the caller knows it is current (no
        request then), else asked for on the first read."""
        self.block = None
        if head is not None and self.cache_block is not None and int(self.cache_block, 16) == head:
            self.block = self.cache_block

    def use(self, block: str) -> None:
        self.block = block
        if block != self.cache_block:
            self.cache, self.cache_block = {}, block

    def refresh(self) -> None:
        """The chain moved under us (e.g. we waited for an approval): read at the new head."""
        self.block, self.cache_block, self.cache = None, None, {}


RETRY_ATTEMPTS = 4         # tries of one request before its failure is the caller's
RETRY_BACKOFF_S = 0.05     # before the 2nd try; doubled each time, with jitter
RETRY_AFTER_MAX_S = 2.0    # the longest a 429's Retry-After is honoured
MAX_TIMEOUTS = 2           # a node that hangs is not helped by waiting a third time
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# JSON-RPC error codes that are the node's own trouble (server error, internal, limit exceeded,
# resource unavailable), unless the message says the call reverted or the transaction is refused.
TRANSIENT_CODES = frozenset({-32000, -32002, -32005, -32603})
REFUSAL_WORDS = ("revert", "insufficient funds", "nonce too", "underpriced", "already known", "intrinsic gas",
                 "exceeds block gas limit", "gas required exceeds", "invalid", "not supported", "does not exist")
NEVER_ASKED_AGAIN = frozenset({"eth_sendRawTransaction"})  # an error answer to a broadcast is a refusal


class NodeError(ConnectionError):
    """The node did not answer after the retries: its connection failed, it timed out, or it answered
    with an HTTP error."""


def default_timeout() -> float:
    """Seconds one request may take (FIXBRIDGE_RPC_TIMEOUT, default 15): a node that hangs longer
    is given up on and asked again."""
    return float(os.environ.get("FIXBRIDGE_RPC_TIMEOUT") or 15.0)


def transient_error(error: object) -> bool:
    """A JSON-RPC error worth asking again: the node's trouble, not a revert or a refusal."""
    if not isinstance(error, dict):
        return False
    msg = str(error.get("message", "")).lower()
    return error.get("code") in TRANSIENT_CODES and not any(w in msg for w in REFUSAL_WORDS)


def describe(e: BaseException) -> str:
    """A node error in one short line, for a report's Text."""
    s = str(e) or type(e).__name__
    s = s if isinstance(e, NodeError) else f"{type(e).__name__}: {s}"
    return s if len(s) <= 160 else s[:160] + "…"


class _Transient(Exception):
    def __init__(self, why: str, wait: float = 0.0, timeout: bool = False) -> None:
        super().__init__(why)
        self.wait, self.timeout = wait, timeout


class FastRPC:
    """A bare JSON-RPC client, one keep-alive HTTP connection per thread, for what the hot path asks
    many times a second (the head's number, a batch of broadcasts, a block's receipts). web3's
    request stack (middleware, requests, urllib3) costs several times more CPU per call; the
    answers here are the node's raw JSON, which these callers read as such."""

    def __init__(self, url: str, timeout: float | None = None) -> None:
        u = urlsplit(url)
        self._https = u.scheme == "https"
        self._host, self._port = u.hostname or "127.0.0.1", u.port
        self._path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self._timeout = default_timeout() if timeout is None else timeout
        self._tls = threading.local()
        self._ids = itertools.count(1)

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._tls, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            c = self._tls.conn = cls(self._host, self._port, timeout=self._timeout)
        return c

    def _post_once(self, body: bytes) -> Any:
        """One exchange; a transient failure raises _Transient."""
        for attempt in (0, 1):
            c = self._conn()
            reused = getattr(c, "_fb_used", False)
            try:
                c.request("POST", self._path, body, {"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
            except (http.client.HTTPException, OSError) as e:
                c.close()
                self._tls.conn = None
                timed_out = isinstance(e, TimeoutError)
                if reused and not attempt and not timed_out:
                    continue  # a keep-alive connection the node closed meanwhile: reopen at once
                raise _Transient(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, timeout=timed_out) from None
            c._fb_used = True  # type: ignore[attr-defined]
            if r.status == 200:
                try:
                    return json.loads(data)
                except ValueError:
                    raise _Transient(f"unreadable answer: {data[:80]!r}") from None
            why = f"HTTP {r.status}: {data[:120].decode(errors='replace')}"
            if r.status in RETRY_STATUS:
                try:
                    wait = min(float(r.getheader("Retry-After") or 0), RETRY_AFTER_MAX_S)
                except ValueError:
                    wait = 0.0
                raise _Transient(why, wait)
            raise NodeError(why)
        raise AssertionError("unreachable")

    def _post(self, body: bytes, again: Any = None) -> Any:
        """POST with retries: transient failures, and answers `again(answer)` says to ask again,
        are retried with backoff; what still fails after RETRY_ATTEMPTS raises NodeError (or, for
        an answer, is returned)."""
        pause, timeouts = RETRY_BACKOFF_S, 0
        for attempt in range(RETRY_ATTEMPTS):
            last = attempt == RETRY_ATTEMPTS - 1
            wait = 0.0
            try:
                out = self._post_once(body)
                if again is None or last or not again(out):
                    return out
            except _Transient as e:
                timeouts += e.timeout
                if last or timeouts >= MAX_TIMEOUTS:
                    raise NodeError(f"{e} (after {attempt + 1} attempts)") from None
                wait = e.wait
            time.sleep(max(wait, pause * (0.5 + random.random())))
            pause *= 2
        raise AssertionError("unreachable")

    def send(self, body: bytes, method: str) -> Any:
        """An encoded JSON-RPC request (web3's), answered as decoded JSON, retried as above."""
        return self._post(body, None if method in NEVER_ASKED_AGAIN else _asks_again)

    def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        return self.send(body, method)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """Several calls in one request; a call answered with a transient error is asked again (in a
        smaller batch), a broadcast's error answer never."""
        answers: list[dict[str, Any]] = [{"error": {"message": "no response"}}] * len(calls)
        todo = list(range(len(calls)))
        pause = RETRY_BACKOFF_S
        for attempt in range(RETRY_ATTEMPTS):
            payload = [{"jsonrpc": "2.0", "id": i, "method": calls[i][0], "params": calls[i][1]} for i in todo]
            body = self._post(json.dumps(payload).encode())
            if isinstance(body, dict):  # the node refused the batch as a whole
                for i in todo:
                    answers[i] = body
            else:
                by_id = {r.get("id"): r for r in body}
                for i in todo:
                    answers[i] = by_id.get(i, {"error": {"message": "no response"}})
            todo = [i for i in todo if calls[i][0] not in NEVER_ASKED_AGAIN and _asks_again(answers[i])]
            if not todo or attempt == RETRY_ATTEMPTS - 1:
                break
            time.sleep(pause * (0.5 + random.random()))
            pause *= 2
        return answers


def _asks_again(answer: Any) -> bool:
    return isinstance(answer, dict) and transient_error(answer.get("error"))


class PinnableHTTPProvider(HTTPProvider):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tls = threading.local()
        self.fast = FastRPC(str(self.endpoint_uri), (kwargs.get("request_kwargs") or {}).get("timeout"))

    def make_request(self, method: Any, params: Any) -> Any:
        """web3's requests go through FastRPC too: one connection per thread, one retry policy."""
        return self.fast.send(self.encode_rpc_request(method, params), str(method))

    def pinned_call(self, pin: _Pin, call: dict[str, Any]) -> dict[str, Any] | None:
        """eth_call of `call` at the pin's block, answered once per block (None: no head to pin to)."""
        if pin.block is None:
            head = self.fast.call("eth_blockNumber", [])
            if "result" not in head:
                return None
            pin.use(head["result"])
        key = json.dumps(call, sort_keys=True, default=str)
        hit = pin.cache.get(key)
        if hit is None:
            hit = self.fast.call("eth_call", [call, pin.block])
            if "error" not in hit:
                pin.cache[key] = hit
        return hit

    @contextmanager
    def pinned(self, pin: _Pin) -> Iterator[_Pin]:
        prev = getattr(self._tls, "pin", None)
        self._tls.pin = pin
        try:
            yield pin
        finally:
            self._tls.pin = prev

    def current_pin(self) -> _Pin | None:
        return getattr(self._tls, "pin", None)


def eth_call(w3: Web3, to: str, data: bytes) -> bytes:
    """eth_call at 'latest'. Inside `pinned_reads`: at the pinned block, answered once, as raw JSON
    without web3's request formatting (the intake's quotes and balance reads); otherwise web3's."""
    p = w3.provider
    pin = p.current_pin() if isinstance(p, PinnableHTTPProvider) else None
    res = p.pinned_call(pin, {"to": to, "data": "0x" + bytes(data).hex()}) if pin is not None else None
    if res is None:
        try:
            return bytes(w3.eth.call({"to": to, "data": data}))
        except ContractLogicError:
            raise
        except Web3RPCError as e:  # not a revert: the node's trouble, never a venue's answer
            raise NodeError(f"eth_call failed: {e}") from None
    if "error" in res:
        raise_contract_logic_error_on_revert(res)  # a revert: ContractLogicError with its reason
        raise NodeError(f"eth_call failed: {res['error']}")
    return bytes.fromhex(res["result"][2:])


def new_pin(w3: Web3) -> _Pin | None:
    p = w3.provider
    return _Pin() if isinstance(p, PinnableHTTPProvider) else None


@contextmanager
def pinned_reads(w3: Web3, pin: _Pin | None) -> Iterator[None]:
    """Within the block, this thread's eth_calls at 'latest' read `pin`'s block (see above)."""
    if pin is None or not isinstance(w3.provider, PinnableHTTPProvider):
        yield
        return
    with w3.provider.pinned(pin):
        yield


def refresh_pin(w3: Web3) -> None:
    """Forget this thread's pinned block and answers, if any: the next read takes the new head."""
    p = w3.provider
    if isinstance(p, PinnableHTTPProvider):
        pin = p.current_pin()
        if pin is not None:
            pin.refresh()


def connect(rpc_url: str, timeout: float | None = None) -> Web3:
    # No request caching: web3's cache keeps blocks by number, which a reorg makes wrong.
    w3 = Web3(PinnableHTTPProvider(rpc_url, request_kwargs={"timeout": timeout or default_timeout()}))
    for name in ("validation", "ens_name_to_address"):
        try:
            w3.middleware_onion.remove(name)
        except ValueError:
            pass
    return w3


def batch_call(w3: Web3, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Several JSON-RPC requests in one HTTP round trip; one response dict per call, in order
    (each with "result" or "error")."""
    if not calls:
        return []
    p = w3.provider
    if isinstance(p, PinnableHTTPProvider):
        return p.fast.batch(calls)
    return [p.make_request(m, params) for m, params in calls]


def raw_call(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """One JSON-RPC request, answered as the node's raw JSON (no web3 formatting)."""
    p = w3.provider
    return p.fast.call(method, params) if isinstance(p, PinnableHTTPProvider) else p.make_request(method, params)


class RpcError(NodeError):
    """A node did not answer, or answered a request with an error."""


BATCH_SIZE = 100     # requests per HTTP batch (nodes cap batches; anvil takes far more)
LOG_CHUNK = 5_000    # blocks per eth_getLogs (nodes cap the range of one query)


def _url(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", w3.provider))


def results(w3: Web3, calls: list[tuple[str, list[Any]]], batch_size: int = BATCH_SIZE,
            on_batch: Callable[[int], None] | None = None) -> list[Any]:
    """The results of several requests, in order, batch_size per HTTP round trip; RpcError naming
    the first request the node failed (or the node, when it did not answer at all)."""
    out: list[Any] = []
    for i in range(0, len(calls), batch_size):
        part = calls[i:i + batch_size]
        try:
            answers = batch_call(w3, part)
        except (OSError, http.client.HTTPException, ValueError) as e:  # refused, reset, not JSON
            raise RpcError(f"node at {_url(w3)}: {type(e).__name__}: {e}") from None
        for (method, _), a in zip(part, answers):
            if "error" in a:
                raise RpcError(f"{method} failed at {_url(w3)}: {a['error']}")
            out.append(a.get("result"))
        if on_batch is not None:
            on_batch(len(part))  # progress: requests answered so far
    return out


def result(w3: Web3, method: str, params: list[Any]) -> Any:
    """One request's result (raw JSON); RpcError if the node fails it."""
    return results(w3, [(method, params)])[0]


def get_logs(w3: Web3, from_block: int, to_block: int, topics: list[Any], address: str | list[str] | None = None,
             chunk: int = LOG_CHUNK, on_batch: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """eth_getLogs over from_block..to_block (inclusive) in chunks of blocks, one batch for all
    chunks; the node's raw JSON logs, in block order."""
    calls = []
    for a in range(from_block, to_block + 1, chunk):
        f: dict[str, Any] = {"fromBlock": hex(a), "toBlock": hex(min(to_block, a + chunk - 1)), "topics": topics}
        if address is not None:
            f["address"] = address
        calls.append(("eth_getLogs", [f]))
    return [log for part in results(w3, calls, on_batch=on_batch) for log in part or []]


def block_by_number(w3: Web3, which: int | str) -> dict[str, Any] | None:
    """A block header with its transaction hashes, as the node's raw JSON (hex strings), or None if
    the node has no such block. web3's formatting of a full block (a HexBytes per transaction hash)
    costs more than the request itself once blocks hold a few hundred of our swaps."""
    res = raw_call(w3, "eth_getBlockByNumber", [which if isinstance(which, str) else hex(which), False])
    if "result" not in res:
        raise ConnectionError(f"eth_getBlockByNumber: {res.get('error')}")
    return res["result"]


def latest_base_fee(w3: Web3) -> int:
    """The latest block's base fee per gas, in wei."""
    b = block_by_number(w3, "latest")
    if b is None:
        raise ConnectionError("eth_getBlockByNumber: the node has no latest block")
    return int(b["baseFeePerGas"], 16)
