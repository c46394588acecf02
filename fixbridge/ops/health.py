"""Liveness and readiness of a running bridge (/healthz, /readyz).

Ready means the bridge can take an order and carry it through: the FIX acceptor is listening;
every chain's node answers and is fresh (its latest block recent enough for the chain's block
time, and the watcher following it); the journal is writable; this instance holds its leases.
Each check that fails says what is wrong, naming the chain, the port or the lease.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fixbridge.chain.rpc import FastRPC
from fixbridge.fix.acceptor import listening_addresses

if TYPE_CHECKING:
    from fixbridge.journal import Journal
    from fixbridge.ops.view import BridgeView

PROBE_TIMEOUT_S = 2.0
WATCHER_SILENT_S = 10.0    # the watcher polls every 50 ms at most: this long without an answer is an outage
STALE_BLOCK_TIMES = 5      # a chain with a block time is stale once its head is this many blocks' time old
STALE_MIN_S = 30.0         # ... and at least this old (a missed slot or two is normal)
LEASE_RENEW_GRACE_S = 12.0  # leases are renewed every 5 s (bridge.py): two missed renewals


@dataclass(frozen=True)
class Ownership:
    """What readiness needs to know of this instance's leases (see Bridge._claim_ownership)."""
    instance: str
    owned: list[tuple[str, str]]
    renewed_at: Callable[[], float | None]   # monotonic time of the last successful renewal (a journal write)
    lost: Callable[[], str | None]           # why the last renewal failed, or None


class Health:
    def __init__(self, view: "BridgeView", journal: "Journal", acceptor_host: str, acceptor_port: int,
                 ownership: Ownership | None) -> None:
        self.view, self.journal = view, journal
        self.host, self.port = acceptor_host, acceptor_port
        self.ownership = ownership
        self.started = time.time()
        self._probes: dict[str, FastRPC] = {}
        self._probe_lock = threading.Lock()

    def live(self) -> dict[str, Any]:
        return {"status": "alive", "uptime_s": round(time.time() - self.started, 1),
                "threads": threading.active_count()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the answer): every check with ok and, when not ok, what is wrong."""
        checks: dict[str, dict[str, Any]] = {"acceptor": self._acceptor()}
        for c in self.view.chains():
            checks[f"chain:{c['chain']}"] = self._chain(c)
        checks["journal"] = self._journal()
        checks["leases"] = self._leases()
        problems = [f"{name}: {c['error']}" for name, c in checks.items() if not c["ok"]]
        return not problems, {"status": "ready" if not problems else "not ready", "problems": problems,
                              "checks": checks}

    # ---- the checks --------------------------------------------------------------------------
    def _acceptor(self) -> dict[str, Any]:
        where = f"{self.host}:{self.port}"
        bound = listening_addresses(self.port)
        if bound:
            return {"ok": True, "listening": where}
        try:  # no /proc (not Linux): try the port
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return {"ok": True, "listening": where}
        except OSError as e:
            return {"ok": False, "error": f"FIX acceptor not listening on {where} ({type(e).__name__})"}

    def _probe(self, chain: str, url: str) -> FastRPC:
        with self._probe_lock:
            p = self._probes.get(chain)
            if p is None:
                p = self._probes[chain] = FastRPC(url, timeout=PROBE_TIMEOUT_S)
            return p

    def _chain(self, c: dict[str, Any]) -> dict[str, Any]:
        name = c["chain"]
        spec = self.view.engine.spec.chains[name]
        out: dict[str, Any] = {"ok": False, "chain_id": c["chain_id"], "head": c["head"]}
        try:
            res = self._probe(name, spec.rpc_url).call("eth_getBlockByNumber", ["latest", False])
            block = res.get("result")
            if not block:
                raise ConnectionError(f"no latest block ({res.get('error')})")
        except Exception as e:
            out["error"] = f"node of chain {name} ({c['rpc_url']}) not reachable: {type(e).__name__}: {str(e)[:160]}"
            return out
        number, ts = int(block["number"], 16), int(block["timestamp"], 16)
        age = time.time() - ts
        out.update(node_height=number, latest_block_age_s=round(age, 1))
        block_time = getattr(spec, "block_time_seconds", None)
        if block_time is not None:
            limit = max(STALE_BLOCK_TIMES * float(block_time), STALE_MIN_S)
            if age > limit:
                out["error"] = (f"chain {name} is stale: its latest block {number} is {age:.0f}s old, more than "
                                f"{limit:.0f}s for a {block_time}s block time")
                return out
        if c["watched"]:
            if c["outage"]:
                out["error"] = f"the watcher of chain {name} sees its node down ({c['outage']})"
                return out
            silent = time.time() - c["polled_at"] if c["polled_at"] else None
            if silent is None or silent > WATCHER_SILENT_S:
                out["error"] = f"the watcher of chain {name} has not heard the node's height for {silent or 0:.0f}s"
                return out
            lag = number - (c["head"] or 0)
            if lag > max(spec.replace_after_blocks, 3):
                out["error"] = f"the watcher of chain {name} is {lag} blocks behind the node (at {c['head']}, node {number})"
                return out
        out["ok"] = True
        return out

    def _journal(self) -> dict[str, Any]:
        writer = self.journal._writer._thread  # the group commit's thread (journal/batch.py)
        if not writer.is_alive():
            return {"ok": False, "error": "the journal writer thread has stopped"}
        if self.ownership is None:
            return {"ok": True}
        renewed = self.ownership.renewed_at()
        # The lease renewal is a journal write transaction every 5 s: it proves the journal writable.
        since = None if renewed is None else time.monotonic() - renewed
        if since is None or since > LEASE_RENEW_GRACE_S:
            why = self.ownership.lost() or "no successful write"
            return {"ok": False, "error": f"journal not writable: the lease renewal (a write) has failed for "
                                          f"{since or 0:.0f}s: {why[:200]}"}
        return {"ok": True, "last_write_s_ago": round(since, 1), "backlog": self.journal.backlog()}

    def _leases(self) -> dict[str, Any]:
        if self.ownership is None:
            return {"ok": True}
        o = self.ownership
        now = datetime.now(timezone.utc)
        try:
            held = {(k, n): (owner, until) for k, n, owner, until in self.journal.leases()}
        except Exception as e:
            return {"ok": False, "error": f"cannot read the leases: {type(e).__name__}"}
        missing = [f"{k} {n}" + (f" (owned by {held[(k, n)][0]})" if (k, n) in held and held[(k, n)][0] != o.instance
                                 else " (expired)" if (k, n) in held else " (no lease)")
                   for k, n in o.owned if (k, n) not in held or held[(k, n)][0] != o.instance or held[(k, n)][1] <= now]
        if missing:
            return {"ok": False, "error": "leases not held: " + ", ".join(missing)}
        return {"ok": True, "held": len(o.owned)}
