"""fixbridge market data benchmark: a block announced -> the MarketDataIncrementalRefresh (X) for
it at the client, against the block watcher's own read of the same blocks.

    PYTHONPATH=. .venv/bin/python bench/market_data.py [--blocks N]

One run, on this machine: a fresh anvil (automine) with the devnet, the real bridge
(`fixbridge run --no-devnet`) with 5 FIX sessions, and an outside account (anvil #7, none of the
bridge's wallets) that swaps on the WETH/USDC 0.05 % pool once per block. Each block's clock starts
when eth_sendRawTransaction returns (automine: the block exists). Measured per block:

- watcher read: the bridge's own block watcher hands the block to the market feed (the feed's debug
  log line, wall clock; with a subscription live the watcher polls every 5 ms);
- X at the client: each subscribed session's X carrying the swap (its trade's ChainTxHash).

"added" = X at the client − the watcher's read, per block and session: what market data costs on
top of seeing the block. Scenarios: 1, 10 and 50 subscribed instruments (the spec gets aliases of WETH/USDC, each with
all three pools: every block changes every one) on 1 and 5 sessions (each session subscribes to
all of them in one request).

Writes bench/results/market_data.md. Stops everything it started on exit.
"""
from __future__ import annotations

import argparse
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from web3 import Web3  # noqa: E402

from fixbridge.config.spec import load_spec  # noqa: E402
from fixbridge.fix.client import FixClient, market_data_request, md_entries  # noqa: E402
from fixbridge.venues import build_venue  # noqa: E402
from market_support import Outsider  # noqa: E402
from support import COUNTERPARTIES, KEYS, acceptor_cfg, start_bridge, start_devnet  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SESSIONS = ("CLIENT1", "CLIENT2", "CLIENT3", "CLIENT4", "CLIENT5")
E18, E6 = 10**18, 10**6


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


class Timed(queue.Queue):
    """The client's inbox, each message stamped (wall clock) as QuickFIX hands it over."""
    def put(self, item, block=True, timeout=None):
        super().put((time.time(), item), block, timeout)


class BridgeReads:
    """When the bridge's own block watcher handed each block to the market feed: the feed's debug
    line `market block ... block=N ... seen_at=<unix time>` in the bridge's log (same machine, same
    clock as this process)."""
    LINE = re.compile(r"market block.*?block=(\d+).*?seen_at=([\d.]+)")
    DESK = re.compile(r"market data sent.*?block=(\d+).*?took_ms=([\d.]+)")

    def __init__(self, log_path: Path) -> None:
        self.path, self.at, self.desk, self._pos = log_path, {}, {}, 0

    def read(self, block: int, timeout: float = 5.0) -> float:
        end = time.monotonic() + timeout
        while block not in self.at and time.monotonic() < end:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
            cut = chunk.rfind(b"\n") + 1
            self._pos += cut
            text = ANSI.sub("", chunk[:cut].decode(errors="replace"))
            for m in self.LINE.finditer(text):
                self.at[int(m.group(1))] = float(m.group(2))
            for m in self.DESK.finditer(text):
                self.desk[int(m.group(1))] = float(m.group(2))
            if block not in self.at:
                time.sleep(0.005)
        return self.at[block]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def with_aliases(spec_path: Path, n: int) -> Path:
    """The devnet spec plus n aliases of WETH/USDC (same tokens, same venues)."""
    text = spec_path.read_text()
    text += "".join(f'\n[instruments."WETH/USDC.{i}"]\nbase = "WETH"\nquote = "USDC"\nvenues = ["uniswap_v2", "uniswap_v3"]\n'
                    for i in range(1, n + 1))
    out = spec_path.with_name("bench-spec.toml")
    out.write_text(text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=100, help="blocks measured per scenario")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-md-"))
    net = start_devnet(tmp)
    bridge = None
    clients: dict[str, FixClient] = {}
    try:
        spec_path = with_aliases(net.spec_path, 49)
        symbols = ["WETH/USDC"] + [f"WETH/USDC.{i}" for i in range(1, 50)]
        (tmp / "acceptor.cfg").write_text(acceptor_cfg(SESSIONS))
        (tmp / "counterparties.toml").write_text(COUNTERPARTIES.format(k1=KEYS[1], k2=KEYS[2], k3=KEYS[3], k4=KEYS[4]))
        bridge = start_bridge([spec_path], tmp / "counterparties.toml", tmp / "bridge")  # DEBUG: the feed's block lines
        for s in SESSIONS:
            c = FixClient("127.0.0.1", bridge.port, s, "FIXBRIDGE", data_dir=tmp / f"client-{s}")
            c._inbox = Timed()
            clients[s] = c.start()
        spec = load_spec(spec_path)
        w3 = Web3(Web3.HTTPProvider(net.rpc_url))
        v3 = build_venue(spec.venues["uniswap_v3"], w3)
        outsider = Outsider(w3, net.deployment)
        outsider.fund(200 * E18, 1_000_000 * E6, [v3.router])
        reads = BridgeReads(bridge.log_path)
        rows = []
        req = 0
        for n_sessions in (1, 5):
            for n_symbols in (1, 10, 50):
                req += 1
                md_req_id = f"B{req}"
                subs = [clients[s] for s in SESSIONS[:n_sessions]]
                for c in subs:
                    c.send(market_data_request(md_req_id, symbols[:n_symbols], "1", depth=0, entry_types=("0", "1", "2")))
                    got = 0
                    while got < n_symbols:  # the snapshots
                        _, m = c._inbox.get(timeout=30)
                        got += m.msg_type == "W" and m.get(262) == md_req_id
                x_ms, read_ms, added_ms, sizes, blocks_measured = [], [], [], [], []
                for i in range(args.blocks + 3):
                    zero = i % 2 == 0
                    token_in, token_out = (net.deployment.weth, net.deployment.usdc) if zero else (net.deployment.usdc, net.deployment.weth)
                    amount = E18 // 10 if zero else 300 * E6
                    receipt = outsider.swap(v3, token_in, token_out, amount, 500)
                    t0 = outsider.sent_at  # eth_sendRawTransaction returned: automine made the block
                    tx = "0x" + bytes(receipt["transactionHash"]).hex()
                    block = receipt["blockNumber"]
                    arrivals = []
                    for c in subs:
                        while True:
                            at, m = c._inbox.get(timeout=30)
                            if m.msg_type == "X" and m.get(262) == md_req_id and any(e.get(20001) == tx for e in md_entries(m)):
                                arrivals.append(at)
                                sizes.append(len(m.raw))
                                break
                    read = reads.read(block)
                    if i < 3:
                        continue  # warm-up
                    x_ms += [(a - t0) * 1000 for a in arrivals]
                    read_ms.append((read - t0) * 1000)
                    added_ms += [(a - read) * 1000 for a in arrivals]
                    blocks_measured.append(block)
                for c in subs:
                    c.send(market_data_request(md_req_id, symbols[:n_symbols], "2"))
                time.sleep(0.2)
                for c in subs:
                    while not c._inbox.empty():
                        c._inbox.get_nowait()
                desk_ms = [reads.desk[b] for b in blocks_measured if b in reads.desk]
                rows.append((n_symbols, n_sessions, len(x_ms), read_ms, x_ms, added_ms, desk_ms,
                             sum(sizes) // max(1, len(sizes))))
                print(f"{n_symbols:>3} instruments x {n_sessions} sessions: read p50 {pct(read_ms, 50):.1f} "
                      f"X p50 {pct(x_ms, 50):.1f} p99 {pct(x_ms, 99):.1f} added p50 {pct(added_ms, 50):.1f} "
                      f"p99 {pct(added_ms, 99):.1f} ms", flush=True)
        write(rows, args.blocks)
    finally:
        for c in clients.values():
            c.stop()
        if bridge:
            bridge.stop()
        net.anvil.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def goal_line(rows) -> str:
    missed = [f"{n} instruments on {k} sessions (p99 {pct(added, 99):.1f} ms)"
              for n, k, _, _, _, added, _, _ in rows if pct(added, 99) > 50]
    return "Met in every row." if not missed else "Met except: " + "; ".join(missed) + "."


def write(rows, blocks: int) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    lines = [
        "# fixbridge market data latency", "",
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} · {os.cpu_count()} CPU · Python "
        f"{platform.python_version()} · anvil (automine) · commit {commit} · load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (the machine is shared with other engineers' work: "
        "a load over 2 means the numbers include waiting for a core)", "",
        f"One outside swap per block on the WETH/USDC 0.05 % pool, {blocks} blocks per row after 3 warm-up blocks; "
        "every subscribed instrument changes in every block (aliases of WETH/USDC: three pools each, a 3-size "
        "ladder per pool and the best across pools, bid and offer, and the trade). Clock from the moment eth_sendRawTransaction returned (automine: the block is made). "
        "Produced by `PYTHONPATH=. .venv/bin/python bench/market_data.py`.", "",
        "| instruments | sessions | X received | watcher read p50 ms | p99 ms | X at client p50 ms | p99 ms | "
        "**added** p50 ms | **added** p99 ms | desk p50 ms | desk p99 ms | X size bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n_symbols, n_sessions, count, read_ms, x_ms, added_ms, desk_ms, size in rows:
        lines.append(f"| {n_symbols} | {n_sessions} | {count} | {pct(read_ms, 50):.1f} | {pct(read_ms, 99):.1f} | "
                     f"{pct(x_ms, 50):.1f} | {pct(x_ms, 99):.1f} | {pct(added_ms, 50):.1f} | {pct(added_ms, 99):.1f} | "
                     f"{pct(desk_ms, 50):.1f} | {pct(desk_ms, 99):.1f} | {size} |")
    lines += ["", "**Reading it**", "",
              "- *watcher read*: the block made -> the bridge's own block watcher hands it to the market feed "
              "(its log line). With a market data subscription live the watcher polls every 5 ms (50 ms when "
              "nothing waits for a block); market data cannot start before it. *added*: that read -> the X at the "
              "client, per block and session (the engine's own block work, the block's one eth_getLogs, "
              "applying the logs, re-quoting the changed pools' ladders, diffing every subscription, building the "
              "X (once for identical subscriptions), QuickFIX's send and the client's QuickFIX parse).",
              "- *desk*: of that, the bridge's market-data thread for the block: re-quote, diff, build and hand "
              "every X to QuickFIX (its log line). The rest of *added* is the watcher's thread before it (the "
              "engine's block work, the feed's eth_getLogs), QuickFIX's send (each session's store and log "
              "write the message) and the client's QuickFIX parse; the clients run in the benchmark's process, "
              "on the same 2 cores.",
              "- Goal: p99 added ≤ 50 ms. " + goal_line(rows), ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "market_data.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
