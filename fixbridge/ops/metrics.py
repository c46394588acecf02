"""Prometheus metrics of one bridge, in a registry of its own (tests and several bridges in one
process never clash).

Two kinds:
- counted as things happen (``BridgeMetrics``): FIX messages, ack and fill latency, replacements,
  RPC requests and errors, journal commit latency. prometheus-client instruments only: a few
  microseconds each, no lock of ours and no journal query on the hot path.
- read at scrape time (``BridgeCollector``): what the journal and the engine already hold —
  orders by status and fills (a count query, so /metrics always matches the journal), sessions,
  transactions in flight by age, chain heads and watcher lag, gas spent, halts, the last
  reconcile. A scrape never touches the hot path's state except to read it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fixbridge.orders.model import ExecEvent

if TYPE_CHECKING:
    from fixbridge.journal import Journal
    from fixbridge.ops.view import BridgeView
    from fixbridge.orders.model import ExecutionReport

# Seconds: an ack takes milliseconds; a fill waits for a block (automine: ms; a real chain: seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
IN_FLIGHT_AGE_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WINDOW_MINUTES = 60  # the status page's charts


class MinuteSeries:
    """Count, sum and max of a value per minute over the last WINDOW_MINUTES, for the status page's
    charts. Written by one thread (the journal's dispatcher, which sends the reports); a rare write
    from another thread can at worst lose one sample, which a chart can afford (no lock)."""

    def __init__(self, minutes: int = WINDOW_MINUTES) -> None:
        self._slots: list[list[float]] = [[-1, 0, 0.0, 0.0] for _ in range(minutes)]

    def add(self, value: float, now: float) -> None:
        minute = int(now // 60)
        s = self._slots[minute % len(self._slots)]
        if s[0] != minute:
            s[0], s[1], s[2], s[3] = minute, 0, 0.0, 0.0
        s[1] += 1
        s[2] += value
        if value > s[3]:
            s[3] = value

    def points(self, now: float) -> list[dict[str, float]]:
        """One point per minute of the window, oldest first: {t (unix s), n, mean, max}."""
        current = int(now // 60)
        out = []
        for m in range(current - len(self._slots) + 1, current + 1):
            s = list(self._slots[m % len(self._slots)])
            n = int(s[1]) if s[0] == m else 0
            out.append({"t": m * 60, "n": n, "mean": (s[2] / n) if n else None, "max": s[3] if n else None})
        return out


class BridgeMetrics:
    """The instruments the bridge's threads update as things happen."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.fix_messages = Counter("fixbridge_fix_messages", "FIX messages by direction (in/out) and MsgType (35)",
                                    ["direction", "msg_type"], registry=r)
        self.ack_latency = Histogram("fixbridge_ack_latency_seconds",
                                     "NewOrderSingle received -> its first ExecutionReport (New or Rejected) sent",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.fill_latency = Histogram("fixbridge_fill_latency_seconds",
                                      "NewOrderSingle received -> its fill report (150=F) sent",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.replacements = Counter("fixbridge_tx_replacements", "same-nonce replacements signed (re-priced swaps "
                                    "and cancel/expiry no-ops)", ["chain", "kind"], registry=r)
        self.rpc_requests = Counter("fixbridge_rpc_requests", "JSON-RPC requests to the chain nodes, by method",
                                    ["chain", "method"], registry=r)
        self.rpc_errors = Counter("fixbridge_rpc_errors", "JSON-RPC requests that failed (no answer, or an error "
                                  "answer), by method", ["chain", "method"], registry=r)
        self.journal_commit = Histogram("fixbridge_journal_commit_seconds", "one group commit of the journal writer",
                                        buckets=COMMIT_BUCKETS, registry=r)
        self.ack_recent = MinuteSeries()
        self.fill_recent = MinuteSeries()
        # Children by label values, made once: labels() takes a lock and builds a tuple each call.
        self._msg: dict[tuple[str, str], Any] = {}

    # ---- hooks (one line each at the call site) ------------------------------------------------
    def message(self, direction: str, msg_type: str) -> None:
        child = self._msg.get((direction, msg_type))
        if child is None:
            child = self._msg[(direction, msg_type)] = self.fix_messages.labels(direction, msg_type)
        child.inc()

    def reported(self, er: "ExecutionReport", received: datetime | None) -> None:
        """An ExecutionReport just left; `received` is when its NewOrderSingle came in, given for
        the order's first report and for fills (None: nothing to measure)."""
        if received is None:
            return
        now = time.time()
        latency = max(0.0, now - received.timestamp())
        if er.event is ExecEvent.TRADE:
            self.fill_latency.observe(latency)
            self.fill_recent.add(latency, now)
        else:
            self.ack_latency.observe(latency)
            self.ack_recent.add(latency, now)

    def replaced(self, chain: str, kind: str) -> None:
        self.replacements.labels(chain, kind).inc()


# ---- instrumenting components from outside (no edits in chain/ or journal/) ---------------------
class _CountingRPC:
    """Stands in for a provider's FastRPC (chain/rpc.py): counts each request by method, and the
    failed ones (an exception, or an answer with "error"), then delegates."""

    def __init__(self, inner: Any, chain: str, metrics: BridgeMetrics) -> None:
        self._inner, self._chain, self._m = inner, chain, metrics
        self._requests: dict[str, Any] = {}  # method -> counter child (labels() costs a lock per call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _count(self, method: str) -> None:
        child = self._requests.get(method)
        if child is None:
            child = self._requests[method] = self._m.rpc_requests.labels(self._chain, method)
        child.inc()

    def _error(self, method: str) -> None:
        self._m.rpc_errors.labels(self._chain, method).inc()

    def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._count(method)
        try:
            res = self._inner.call(method, params)
        except Exception:
            self._error(method)
            raise
        if "error" in res:
            self._error(method)
        return res

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        for m, _ in calls:
            self._count(m)
        try:
            answers = self._inner.batch(calls)
        except Exception:
            for m, _ in calls:
                self._error(m)
            raise
        for (m, _), a in zip(calls, answers):
            if "error" in a:
                self._error(m)
        return answers


def _web3_counter(chain: str, metrics: BridgeMetrics) -> Any:
    """A web3 middleware counting what goes through web3's own request stack (eth_call outside
    pinned reads, estimateGas, sendRawTransaction, ...)."""
    from web3.middleware import Web3Middleware

    class CountRequests(Web3Middleware):
        def wrap_make_request(self, make_request: Callable) -> Callable:
            def counted(method: Any, params: Any) -> Any:
                name = str(method)
                metrics.rpc_requests.labels(chain, name).inc()
                try:
                    res = make_request(method, params)
                except Exception:
                    metrics.rpc_errors.labels(chain, name).inc()
                    raise
                if isinstance(res, dict) and "error" in res:
                    metrics.rpc_errors.labels(chain, name).inc()
                return res
            return counted

    return CountRequests


def instrument_rpc(chain: str, w3: Any, metrics: BridgeMetrics) -> None:
    """Count every JSON-RPC request of `w3`: its fast path (provider.fast) and web3's stack."""
    p = w3.provider
    if getattr(p, "fast", None) is not None and not isinstance(p.fast, _CountingRPC):
        p.fast = _CountingRPC(p.fast, chain, metrics)
    try:
        w3.middleware_onion.add(_web3_counter(chain, metrics), name="fixbridge_metrics")
    except ValueError:
        pass  # already instrumented


def instrument_journal(journal: "Journal", metrics: BridgeMetrics) -> None:
    """Time each group commit. The writer thread runs every commit through ``Journal._execute_ops``
    (journal/batch.py): wrapped on this instance, so the journal's code needs no hook. The
    metrics test fails if that name ever changes (no commit observed)."""
    inner = journal._execute_ops
    observe = metrics.journal_commit.observe

    def timed(ops: list[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(ops)
        finally:
            observe(time.perf_counter() - t0)

    journal._execute_ops = timed  # type: ignore[method-assign]


# ---- read at scrape time -------------------------------------------------------------------------
class BridgeCollector(Collector):
    """Metrics computed when Prometheus scrapes, from the journal and the engine's state."""

    def __init__(self, view: "BridgeView") -> None:
        self.view = view

    def collect(self) -> Iterator[Any]:
        v = self.view
        snap = v.journal_snapshot()
        now = time.time()

        logged = GaugeMetricFamily("fixbridge_session_logged_on", "1 if the FIX session is logged on", labels=["session"])
        for s in v.sessions():
            logged.add_metric([s["counterparty"]], 1.0 if s["logged_on"] else 0.0)
        yield logged

        orders = GaugeMetricFamily("fixbridge_orders", "orders in the journal by status (terminal statuses are "
                                   "final), counted at scrape time", labels=["status"])
        for status, n in sorted(snap.order_counts.items()):
            orders.add_metric([status], n)
        yield orders
        yield GaugeMetricFamily("fixbridge_fills", "fills in the journal, not busted by a reorg", value=snap.fills)

        flights = snap.in_flight
        in_flight = GaugeMetricFamily("fixbridge_tx_in_flight", "nonces with a transaction signed or broadcast and "
                                      "not yet mined, by chain", labels=["chain"])
        for chain in v.chain_names():
            in_flight.add_metric([chain], sum(1 for f in flights if f["chain"] == chain))
        yield in_flight
        ages = [now - f["since"].timestamp() for f in flights]
        buckets = [(str(b), float(sum(1 for a in ages if a <= b))) for b in IN_FLIGHT_AGE_BUCKETS]
        yield GaugeHistogramMetricFamily("fixbridge_tx_in_flight_age_seconds", "transactions in flight by how long "
                                         "since their nonce was first signed", buckets=buckets + [("+Inf", float(len(ages)))],
                                         gsum_value=sum(ages))

        head = GaugeMetricFamily("fixbridge_chain_head", "the block the watcher has processed", labels=["chain"])
        node = GaugeMetricFamily("fixbridge_chain_node_height", "the node's height at the watcher's last poll",
                                 labels=["chain"])
        lag = GaugeMetricFamily("fixbridge_watcher_lag_blocks", "node height minus processed block", labels=["chain"])
        poll_age = GaugeMetricFamily("fixbridge_watcher_poll_age_seconds", "seconds since the watcher last heard the "
                                     "node's height", labels=["chain"])
        up = GaugeMetricFamily("fixbridge_chain_up", "0 while the watcher sees the node as down", labels=["chain"])
        for c in v.chains():
            up.add_metric([c["chain"]], 0.0 if c["outage"] else 1.0)
            if c["head"] is not None:
                head.add_metric([c["chain"]], c["head"])
            if c["node_height"] is not None:
                node.add_metric([c["chain"]], c["node_height"])
                lag.add_metric([c["chain"]], c["lag_blocks"])
            if c["polled_at"] is not None:
                poll_age.add_metric([c["chain"]], max(0.0, now - c["polled_at"]))
        yield from (head, node, lag, poll_age, up)

        gas = CounterMetricFamily("fixbridge_gas_spent_eth", "gas paid by this bridge's wallets since it started, in "
                                  "ETH (a float for dashboards: the journal keeps the exact wei)", labels=["chain"])
        for chain, wei in sorted(v.gas_spent_wei().items()):
            gas.add_metric([chain], wei / 10**18)
        yield gas

        yield GaugeMetricFamily("fixbridge_journal_queue_depth", "units waiting for the group commit or for their "
                                "after-commit actions", value=v.journal_backlog())
        yield GaugeMetricFamily("fixbridge_intake_queue_depth", "orders waiting in the wallets' intake queues",
                                value=v.intake_backlog())

        halts = GaugeMetricFamily("fixbridge_halts_active", "kill-switch halts in force, by scope ('*': all sessions)",
                                  labels=["scope"])
        scopes: dict[str, int] = {}
        for h in snap.halts:
            scopes[h["scope"]] = scopes.get(h["scope"], 0) + 1
        for scope, n in sorted(scopes.items()):
            halts.add_metric([scope], n)
        yield halts
        yield GaugeMetricFamily("fixbridge_halts_in_force", "kill-switch halts in force", value=len(snap.halts))

        breaks = GaugeMetricFamily("fixbridge_reconcile_breaks", "breaks found by the last reconcile run of each chain",
                                   labels=["chain_id", "status"])
        when = GaugeMetricFamily("fixbridge_reconcile_last_run_timestamp_seconds", "when the last reconcile run of "
                                 "each chain finished", labels=["chain_id"])
        for run in snap.reconcile:
            breaks.add_metric([str(run["chain_id"]), run["status"]], run["breaks"])
            when.add_metric([str(run["chain_id"])], run["finished_at"].timestamp())
        yield from (breaks, when)
