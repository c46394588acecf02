"""What the metrics cost one order on the hot path (microseconds of the one core), measured on
the hooks themselves: per order the FIX edge counts ~4 messages (D in, two 8s out, and a
heartbeat now and then), the dispatcher observes two latencies (ack, fill), and each RPC request
is counted once (per order: a share of a batch of broadcasts, of a block's receipts and of the
head polls). Run: python bench/metrics_cost.py"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from fixbridge.ops.metrics import BridgeMetrics, _CountingRPC
from fixbridge.orders.model import ExecEvent, ExecutionReport, OrdStatus, Side
from decimal import Decimal

N = 200_000


def per_call(fn, n: int = N) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


class _Nothing:
    def call(self, method, params):
        return {"result": "0x1"}


def main() -> None:
    m = BridgeMetrics()
    received = datetime.now(timezone.utc)
    ack = ExecutionReport(order_id="X", cl_ord_id="c", exec_id="e", event=ExecEvent.NEW, ord_status=OrdStatus.NEW, side=Side.BUY,
                          symbol="WETH/USDC", order_qty=Decimal(1), cash_order_qty=None, price=None, cum_qty=Decimal(0),
                          leaves_qty=Decimal(1), avg_px=Decimal(0))
    rpc = _CountingRPC(_Nothing(), "devnet", m)
    bare = _Nothing()
    msg = per_call(lambda: m.message("out", "8"))
    lat = per_call(lambda: m.reported(ack, received))
    rpc_cost = per_call(lambda: rpc.call("eth_blockNumber", [])) - per_call(lambda: bare.call("eth_blockNumber", []))
    commit = per_call(lambda: m.journal_commit.observe(0.002))
    # bench/results/throughput.md: ~1.1 RPC requests per order; a group commit holds tens of orders.
    per_order = 4 * msg + 2 * lat + 1.1 * rpc_cost + commit / 10
    print(f"message counter   {msg:6.2f} us/call")
    print(f"latency observe   {lat:6.2f} us/call")
    print(f"rpc counting      {rpc_cost:6.2f} us/request (over the call itself)")
    print(f"commit histogram  {commit:6.2f} us/commit (many orders per commit)")
    print(f"per order (4 messages, 2 latencies, 1.1 RPC requests, a tenth of a commit): {per_order:.1f} us")
    print(f"  = {per_order / 3000 * 100:.2f} % of the ~3,000 us of one core an order costs at ~330 orders/s "
          "(bench/results/throughput.md)")


if __name__ == "__main__":
    main()
