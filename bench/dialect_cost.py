"""What choosing the session's FIX dialect costs a report (microseconds of the one core): a Trade
report built as before (translate.execution_report), through `dialects.for_session` for a FIX 4.4
session, and for a FIX 4.2 session (quickfix42's typed message). Writes bench/results/dialect_cost.md.
Run: python bench/dialect_cost.py"""
from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from fixbridge.fix import dialects
from fixbridge.fix import translate as t
from fixbridge.orders.model import ExecEvent, ExecutionReport, OrdStatus, Side

N = 20_000
ROUNDS = 7


def best_of(fns: list, n: int = N) -> list[float]:
    """Microseconds per call of each fn: the best of ROUNDS runs, the fns taking turns within each
    round so that load from other work on the shared machine falls on all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(ROUNDS):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    fill = ExecutionReport(order_id="FB0123456789ABCDEF", cl_ord_id="C-1", exec_id="0x" + "ab" * 32 + ":3",
                           event=ExecEvent.TRADE, ord_status=OrdStatus.FILLED, side=Side.BUY, symbol="WETH/USDC",
                           order_qty=Decimal("0.5"), cash_order_qty=None, price=Decimal("3100"), cum_qty=Decimal("0.5"),
                           leaves_qty=Decimal(0), avg_px=Decimal("3001.5"), last_qty=Decimal("0.5"),
                           last_px=Decimal("3001.5"), fee_eth=Decimal("0.000123456789"), tx_hash="0x" + "ab" * 32,
                           block_number=42, chain_id=31337, venue="uniswap_v2", account="w1",
                           transact_time=datetime(2026, 1, 15, tzinfo=timezone.utc))
    before, fix44, fix42 = best_of([
        lambda: t.execution_report(fill),
        lambda: dialects.for_session("FIX.4.4:FIXBRIDGE->CLIENT1").execution_report(fill),
        lambda: dialects.for_session("FIX.4.2:FIXBRIDGE->CLIENT42").execution_report(fill)])
    (pick,) = best_of([lambda: dialects.for_session("FIX.4.4:FIXBRIDGE->CLIENT1")], n=N * 20)
    rows = [("translate.execution_report (before)", before), ("dialect of a FIX 4.4 session", fix44),
            ("dialect of a FIX 4.2 session (quickfix42)", fix42), ("choosing the dialect alone (for_session)", pick)]
    lines = ["# What the per-session FIX dialect costs a report", "",
             f"`python bench/dialect_cost.py` on {platform.python_implementation()} {platform.python_version()}, "
             f"best of {ROUNDS} runs of {N:,} Trade reports (the machine is shared by other work).", "",
             "| report built by | us per report |", "|---|---|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in rows]
    load = os.getloadavg()[0]
    lines += ["", f"Differences: {fix44 - before:+.2f} us for a 4.4 report through the dialect, {fix42 - fix44:+.2f} us "
              f"for a 4.2 report against a 4.4 one, with a load average of {load:.1f} on {os.cpu_count()} cores "
              "while measuring: compare them with the spread between runs before reading them as a cost. "
              "The dialect itself is a string split and a dict lookup per report; an order sends two or three "
              "reports and costs ~3,000 us of the core (bench/results/throughput.md)."]
    out = Path(__file__).parent / "results" / "dialect_cost.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
