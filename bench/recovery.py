"""fixbridge recovery benchmark: how long the bridge takes to finish 1,000 in-flight orders after a
kill -9, and whether each of them ends with exactly one mined swap.

    .venv/bin/python bench/recovery.py                 # 1,000 orders, ~3 minutes
    .venv/bin/python bench/recovery.py --orders 200

1. A fresh anvil (`--block-time 1`), the devnet, the bridge (SQLite journal, FIX store in a
   temporary folder), one FIX session with persistent sequence numbers; one buy and one sell per
   wallet first so the router approvals are mined.
2. Interval mining paused (`anvil_setIntervalMining 0`): `--orders` market IOC orders are sent, and
   the benchmark waits until the journal shows that many swap transactions 'broadcast'.
3. `kill -9` of the bridge; the client goes away too. Blocks are mined (`anvil_mine`, one at a time)
   until the mempool is empty; interval mining resumes.
4. The bridge is restarted on the same journal and FIX store. From the moment it is spawned:
   (a) its acceptor listens, (b) the journal holds every order in a terminal state,
   (c) a client reconnecting with its stored sequence numbers (FixClient(reset_seq=False), same
   folder) has received the Trade report of every order (live or by FIX resend).
5. Correctness: every order Filled with exactly one swap transaction (mined, status 1, the hash its
   report carries) and one fill; the wallet's nonce moved by exactly the number of orders; nothing
   left in the mempool; no transaction from the wallet after the kill.

Writes bench/results/recovery.json and .md. Every process it starts is stopped on exit, error,
Ctrl-C or SIGTERM (see bench/latency.py, Procs).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as tp  # noqa: E402  (freezes the bridge source, see throughput._snapshot_source)
from throughput import (RESULTS, Collector, Orders, Procs, Rec, Stack, _log_size, cpu_seconds, loadavg,  # noqa: E402
                        machine_info, rpc_counts, source_info, system_cpu)

TERMINAL_STATUSES = ("Filled", "Canceled", "Expired", "Rejected")


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def count_broadcast(db: Path, prefix: str) -> int:
    con = _ro(db)
    try:
        return con.execute("SELECT count(*) FROM transactions t JOIN orders o ON o.order_id = t.order_id "
                           "WHERE t.purpose = 'swap' AND t.status = 'broadcast' AND o.cl_ord_id LIKE ?",
                           (prefix + "%",)).fetchone()[0]
    finally:
        con.close()


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class TerminalWatch(threading.Thread):
    """Polls the journal (read-only) until `n` orders are terminal; stamps the moment."""

    def __init__(self, db: Path, prefix: str, n: int, every: float = 0.005) -> None:
        super().__init__(name="terminal-watch", daemon=True)
        self.db, self.prefix, self.n, self.every = db, prefix, n, every
        self.done_ns: int | None = None
        self.first_ns: int | None = None
        self.progress: list[tuple[int, int]] = []  # (time ns, terminal count)
        self._halt = threading.Event()

    def run(self) -> None:
        con = None
        q = (f"SELECT count(*) FROM orders WHERE cl_ord_id LIKE ? AND status IN "
             f"({','.join('?' * len(TERMINAL_STATUSES))})")
        while not self._halt.is_set():
            try:
                con = con or _ro(self.db)
                k = con.execute(q, (self.prefix + "%", *TERMINAL_STATUSES)).fetchone()[0]
            except sqlite3.Error:
                k = None  # the bridge may be migrating or holding the lock a moment
            now = time.time_ns()
            if k is not None:
                if not self.progress or self.progress[-1][1] != k:
                    self.progress.append((now, k))
                if k > 0 and self.first_ns is None:
                    self.first_ns = now
                if k >= self.n:
                    self.done_ns = now
                    break
            self._halt.wait(self.every)
        if con is not None:
            con.close()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


def verify(st: Stack, prefix: str, recs: dict[str, Rec], trades: dict[str, list], nonce_before: dict[str, int],
           mined_until: int) -> dict:
    """Every order: Filled, one swap transaction (mined, receipt status 1, the hash of its report), one fill."""
    con = _ro(st.journal_db)
    problems: list[str] = []
    try:
        rows = con.execute("SELECT order_id, cl_ord_id, status FROM orders WHERE cl_ord_id LIKE ?",
                           (prefix + "%",)).fetchall()
        status_counts: dict[str, int] = {}
        tx_hashes: dict[str, str] = {}
        for oid, cl, status in rows:
            status_counts[status] = status_counts.get(status, 0) + 1
            txs = con.execute("SELECT tx_hash, status, purpose FROM transactions WHERE order_id = ? AND purpose IN "
                              "('swap', 'cancel')", (oid,)).fetchall()
            fills = con.execute("SELECT exec_id FROM fills WHERE order_id = ? AND busted_at IS NULL", (oid,)).fetchall()
            if status != "Filled":
                problems.append(f"{cl}: {status}")
            if len(txs) != 1 or txs[0][1] != "mined" or txs[0][2] != "swap":
                problems.append(f"{cl}: transactions {txs}")
            elif txs:
                tx_hashes[cl] = txs[0][0].lower()
            if len(fills) != 1:
                problems.append(f"{cl}: {len(fills)} fills")
        other_txs = con.execute("SELECT count(*) FROM transactions t JOIN orders o ON o.order_id = t.order_id WHERE "
                                "o.cl_ord_id LIKE ? AND t.purpose NOT IN ('swap')", (prefix + "%",)).fetchone()[0]
    finally:
        con.close()
    w3 = st.w3
    receipts_ok = 0
    for cl, h in tx_hashes.items():
        r = w3.eth.get_transaction_receipt(h)
        if r is not None and r["status"] == 1:
            receipts_ok += 1
        else:
            problems.append(f"{cl}: receipt {r and r['status']}")
    report_mismatch = 0
    for cl, h in tx_hashes.items():
        got = {t.get(20001, "").lower() for t in trades.get(cl, [])}
        if got != {h}:
            report_mismatch += 1
            if report_mismatch <= 5:
                problems.append(f"{cl}: reports carry {got}, the journal {h}")
    nonces = {}
    for name, addr in st.wallet_addr.items():
        after = w3.eth.get_transaction_count(addr, "latest")
        nonces[name] = {"before_orders": nonce_before[name], "after": after, "moved": after - nonce_before[name]}
    moved = sum(v["moved"] for v in nonces.values())
    if moved != len(recs):
        problems.append(f"the wallets' nonces moved by {moved}, not {len(recs)}")
    pool = st.node.rpc("txpool_status")
    pending = int(pool.get("pending", "0x0"), 16) + int(pool.get("queued", "0x0"), 16)
    if pending:
        problems.append(f"{pending} transactions still in the mempool")
    ours = {a.lower() for a in st.wallet_addr.values()}
    late = 0
    head = w3.eth.block_number
    for n in range(mined_until + 1, head + 1):  # blocks after the restart: no transaction of ours may appear
        b = w3.eth.get_block(n, full_transactions=True)
        late += sum(1 for t in b["transactions"] if t["from"].lower() in ours)
    return {
        "orders": len(recs), "journal_status": status_counts,
        "orders_with_one_mined_swap": len(tx_hashes), "receipts_status_1": receipts_ok,
        "orders_with_a_trade_report": sum(1 for cl in recs if trades.get(cl)),
        "trade_reports_received": sum(len(v) for v in trades.values()),
        "trade_reports_possdup": sum(1 for v in trades.values() for t in v if t.get(43) == "Y"),
        "reports_naming_another_tx": report_mismatch,
        "non_swap_transactions_for_these_orders": other_txs,
        "wallet_nonces": nonces, "mempool_left": pending,
        "wallet_txs_in_blocks_after_the_restart": late,
        "problems": problems[:30], "problem_count": len(problems),
        "ok": not problems and other_txs == 0 and late == 0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fixbridge recovery benchmark (see bench/README.md)")
    ap.add_argument("--orders", type=int, default=1000, help="orders in flight at the kill")
    ap.add_argument("--wallets", type=int, default=1, help="wallets of the session (orders round-robin over them)")
    ap.add_argument("--qty", default="0.01")
    ap.add_argument("--venue", default="uniswap_v2")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds allowed for each wait")
    ap.add_argument("--late-client", action="store_true", help="reconnect the client only after every order is "
                    "terminal in the journal, so that all the reports come by FIX resend")
    ap.add_argument("--bridge-log-level", default=os.environ.get("FIXBRIDGE_LOG_LEVEL", "INFO"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--worktree", action="store_true", help="measure the working tree as it is (see throughput.py)")
    args = ap.parse_args(argv)

    def on_signal(*_):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="fixbridge-recovery-"))
    procs = Procs()
    started = time.monotonic()
    say = lambda s: print(f"[{time.monotonic() - started:6.1f}s] {s}", flush=True)  # noqa: E731
    st = None
    col = col2 = watch = None
    try:
        info = source_info(machine_info())
        load_start = loadavg()
        say(f"machine: {info['cpu_count']} CPU, load average {load_start}; bridge source: {info['bridge_source']}; "
            f"work dir {tmp}")
        st = Stack(tmp, procs, 1, args.wallets, block_time=1, log_level=args.bridge_log_level)
        st.start_chain()
        node, w3 = st.node, st.w3
        t = time.time_ns()
        st.start_bridge()
        cold_start_ms = (time.time_ns() - t) / 1e6
        col = Collector(st.connect(stamped=True, reset_seq=False))
        col.start()
        orders = Orders(st, col, Decimal(args.qty), args.venue)
        orders.warm_up()
        say(f"anvil {node.rpc_url}, bridge on {st.port} (cold start to listening {cold_start_ms:.0f} ms), approvals mined")

        # ---- 1. orders in flight with mining paused -----------------------------------------------
        node.rpc("anvil_setIntervalMining", [0])
        time.sleep(1.2)  # a block being mined at that moment is done
        nonce_before = {n: w3.eth.get_transaction_count(a, "latest") for n, a in st.wallet_addr.items()}
        prefix = "R"
        t_send = time.time_ns()
        recs = {r.cl: r for r in (orders.next("inflight", prefix=prefix) for _ in range(args.orders))}
        say(f"{args.orders} orders sent with mining paused; waiting for {args.orders} swaps 'broadcast' in the journal")
        end = time.monotonic() + args.timeout
        last = -1
        while True:
            k = count_broadcast(st.journal_db, prefix)
            if k >= args.orders:
                break
            if time.monotonic() > end:
                raise TimeoutError(f"only {k}/{args.orders} swaps broadcast after {args.timeout:.0f} s")
            if st.bridge.poll() is not None:
                raise RuntimeError(f"the bridge exited with {st.bridge.returncode}")
            if k // 100 != last // 100:
                say(f"  {k}/{args.orders} broadcast")
            last = k
            time.sleep(0.2)
        t_all_broadcast = time.time_ns()
        pool = node.rpc("txpool_status")
        in_pool = int(pool.get("pending", "0x0"), 16)
        acks = sum(1 for r in recs.values() if r.ack_ns)
        say(f"all {args.orders} broadcast in {(t_all_broadcast - t_send) / 1e9:.1f} s; mempool holds {in_pool}; "
            f"{acks} ER New received")

        # ---- 2. kill -9, mine ---------------------------------------------------------------------
        kill_block = w3.eth.block_number
        st.bridge.kill()  # SIGKILL
        st.bridge.wait()
        t_kill = time.time_ns()
        procs.stop(st.bridge)
        col.stop()
        st.disconnect()
        say(f"bridge killed (SIGKILL) at block {kill_block}; mining")
        mined_blocks = []
        for _ in range(200):
            pool = node.rpc("txpool_status")
            if int(pool.get("pending", "0x0"), 16) + int(pool.get("queued", "0x0"), 16) == 0:
                break
            node.rpc("anvil_mine", [hex(1)])
            b = w3.eth.get_block("latest")
            mined_blocks.append({"block": int(b["number"]), "txs": len(b["transactions"]), "gas_used": int(b["gasUsed"])})
        mined_until = w3.eth.block_number
        node.rpc("anvil_setIntervalMining", [1])
        mined = sum(b["txs"] for b in mined_blocks)
        say(f"mined {mined} transactions in {len(mined_blocks)} blocks; interval mining resumed")

        # ---- 3. restart and time it -----------------------------------------------------------------
        time.sleep(0.5)
        log0 = _log_size(st.anvil_log)
        sys0, load0 = system_cpu(), loadavg()
        watch = TerminalWatch(st.journal_db, prefix, args.orders)
        t0 = time.time_ns()
        bridge = st.spawn_bridge()
        cpu_b0 = 0.0
        while not listening(st.port):
            if bridge.poll() is not None:
                raise RuntimeError(f"the restarted bridge exited with {bridge.returncode}:\n{st.blog.read_text()[-3000:]}")
            if time.time_ns() - t0 > args.timeout * 1e9:
                raise TimeoutError("the restarted bridge did not listen")
            time.sleep(0.005)
        t_listen = time.time_ns()
        watch.start()
        # (c) the client reconnects with its stored sequence numbers; missed reports come by resend
        client_recs = {cl: Rec(cl, r.session, r.wallet, r.side, "recovered") for cl, r in recs.items()}
        trades: dict[str, list] = {}
        from fixbridge.fix.client import FixClient
        c = FixClient("127.0.0.1", st.port, sender="CLIENT1", data_dir=tmp / "client1", reset_seq=False)
        c._inbox = tp.StampedQueue()
        col2 = Collector([c])
        for r in client_recs.values():
            col2.add(r)
        orig_file = col2._file

        def file_and_keep(ts, m):  # keep every Trade (resends included) for the correctness check
            if m.msg_type == "8" and m.get(150) == "F" and m.get(11) in client_recs:
                trades.setdefault(m.get(11), []).append(m.fields)
            orig_file(ts, m)
        col2._file = file_and_keep
        col2.start()
        if args.late_client:  # reconnect only once recovery is over: every report comes by FIX resend
            watch.join(args.timeout)
        c.start(timeout=args.timeout)
        st.clients = [c]
        t_logon = time.time_ns()
        ok = col2.wait_terminal(args.orders, args.timeout)
        t_reports = max((r.done_ns for r in client_recs.values() if r.done_ns), default=None)
        watch.join(args.timeout)
        t_terminal = watch.done_ns
        cpu_b1 = cpu_seconds(bridge.pid)
        sys1 = system_cpu()
        time.sleep(0.5)
        log1 = _log_size(st.anvil_log)
        say(f"restart: listening after {(t_listen - t0) / 1e6:.0f} ms; all terminal in the journal after "
            f"{(t_terminal - t0) / 1e6 if t_terminal else float('nan'):.0f} ms; all Trade reports at the client after "
            f"{(t_reports - t0) / 1e6 if t_reports and ok else float('nan'):.0f} ms")

        # ---- 4. correctness ----------------------------------------------------------------------------
        time.sleep(2.5)  # a couple more blocks: nothing new may appear
        check = verify(st, prefix, recs, trades, nonce_before, mined_until)
        say(f"correctness: {'OK' if check['ok'] else 'PROBLEMS: ' + '; '.join(check['problems'][:5])}")
        st.disconnect()
        procs.stop(bridge, timeout=40)
        log_text = st.blog.read_text(errors="replace")
        rpc = rpc_counts(st.anvil_log, log0, log1)
        wall = ((t_terminal or time.time_ns()) - t0) / 1e9
        progress = [((ts - t0) / 1e6, k) for ts, k in watch.progress]
        first_terminal_ms = (watch.first_ns - t0) / 1e6 if watch.first_ns else None
        ncpu = os.cpu_count() or 1
        results = {
            "restart_to_listening_ms": round((t_listen - t0) / 1e6, 1),
            "restart_to_first_order_terminal_ms": round(first_terminal_ms, 1) if first_terminal_ms else None,
            "restart_to_all_terminal_in_journal_ms": round((t_terminal - t0) / 1e6, 1) if t_terminal else None,
            "restart_to_client_logged_on_ms": round((t_logon - t0) / 1e6, 1),
            "restart_to_all_trade_reports_at_client_ms": round((t_reports - t0) / 1e6, 1) if t_reports and ok else None,
            "orders_terminal_per_second": round(args.orders / ((t_terminal - t_listen) / 1e9), 1) if t_terminal else None,
            "journal_progress_ms_count": [[round(a, 1), k] for a, k in progress[:: max(1, len(progress) // 40)]]
                                         + ([[round(progress[-1][0], 1), progress[-1][1]]] if progress else []),
        }
        report = {
            "benchmark": "fixbridge recovery (bench/recovery.py)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": info, "loadavg_start": load_start, "loadavg_during_recovery": [load0, loadavg()],
            "config": {"orders": args.orders, "wallets": args.wallets, "qty": args.qty, "venue": args.venue,
                       "chain": "anvil --block-time 1, fresh; interval mining paused while the orders go out",
                       "client_reconnects": "after recovery (all reports by resend)" if args.late_client
                       else "as soon as the acceptor listens",
                       "journal": "SQLite file (WAL, synchronous=FULL)", "bridge_log_level": args.bridge_log_level},
            "before_the_kill": {
                "cold_start_to_listening_ms": round(cold_start_ms, 1),
                "send_to_all_broadcast_s": round((t_all_broadcast - t_send) / 1e9, 2),
                "broadcast_per_second": round(args.orders / ((t_all_broadcast - t_send) / 1e9), 1),
                "mempool_pending_at_kill": in_pool, "er_new_received_before_kill": acks,
                "kill_block": kill_block, "mined_until_block": mined_until, "kill_after_all_broadcast_ms": round((t_kill - t_all_broadcast) / 1e6, 1)},
            "mining_after_the_kill": {"blocks": len(mined_blocks), "transactions": mined, "per_block": mined_blocks},
            "results": results,
            "recovery_cpu": {"bridge_cpu_s_to_all_terminal": round(cpu_b1 - cpu_b0, 2) if cpu_b1 else None,
                             "bridge_cores": round((cpu_b1 - cpu_b0) / wall, 2) if cpu_b1 and wall else None,
                             "machine_busy_cores": round((sys1[0] - sys0[0]) / (sys1[1] - sys0[1]) * ncpu, 2)
                             if sys0 and sys1 else None,
                             "machine_cores": ncpu,
                             "note": "bridge CPU from its spawn (import, migrations, recovery) to the check"},
            "rpc_during_recovery": {"total": sum(rpc.values()), "per_order": round(sum(rpc.values()) / args.orders, 2),
                                    "by_method": rpc},
            "correctness": check,
            "bridge_log": {"recovery_lines": sum(1 for ln in log_text.splitlines() if "recovery" in ln.lower()),
                           "error_lines": sum(1 for ln in log_text.splitlines()
                                              if "error" in ln.lower() or "traceback" in ln.lower())},
        }
        report["config"]["duration_s"] = round(time.monotonic() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "recovery.json").write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(args.out / "recovery.md", report)
        print()
        print((args.out / "recovery.md").read_text())
        return 0 if check["ok"] else 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for x in (watch, col, col2):
            if x is not None:
                try:
                    x.stop()
                except Exception:  # noqa: BLE001
                    pass
        if st is not None:
            st.close()
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


def write_markdown(path: Path, rep: dict) -> None:
    m, r, b, c = rep["machine"], rep["results"], rep["before_the_kill"], rep["correctness"]
    ms = lambda v: f"{v / 1000:.2f} s" if v is not None else "–"  # noqa: E731
    L = [
        "# fixbridge recovery after kill -9",
        "",
        f"{rep['date']} · {m['cpu_count']} CPU ({m['cpu_model']}) · Python {m['python']} · quickfix {m['quickfix']} · "
        f"{m['anvil']} · journal SQLite (WAL, synchronous=FULL) · commit {m['git_commit']} ({m['bridge_source']}) · "
        f"load average {' / '.join(str(x) for x in rep['loadavg_start'])} at the start (a shared machine)",
        "",
        f"{rep['config']['orders']} market IOC orders ({rep['config']['qty']} WETH, WETH/USDC, alternating buy/sell, "
        f"{rep['config']['wallets']} wallet(s)) sent with interval mining paused; once the journal showed all their swaps "
        f"'broadcast' ({b['send_to_all_broadcast_s']} s, {b['broadcast_per_second']} orders/s; "
        f"{b['mempool_pending_at_kill']} in anvil's mempool) the bridge was killed with SIGKILL, "
        f"{rep['mining_after_the_kill']['transactions']} transactions were mined in "
        f"{rep['mining_after_the_kill']['blocks']} blocks, and the bridge was restarted on the same journal and FIX "
        "store. Produced by `.venv/bin/python bench/recovery.py` (see bench/README.md).",
        "",
        "| from the restart (spawn) to | time |",
        "|---|---:|",
        f"| (a) the acceptor listening | {ms(r['restart_to_listening_ms'])} |",
        f"| the first order terminal in the journal | {ms(r['restart_to_first_order_terminal_ms'])} |",
        f"| **(b) all {rep['config']['orders']} orders terminal in the journal** | **{ms(r['restart_to_all_terminal_in_journal_ms'])}** |",
        f"| the reconnecting client logged on (stored sequence numbers; {rep['config']['client_reconnects']}) | "
        f"{ms(r['restart_to_client_logged_on_ms'])} |",
        f"| **(c) every Trade report at the client** | **{ms(r['restart_to_all_trade_reports_at_client_ms'])}** |",
        "",
        f"Recovery settled {r['orders_terminal_per_second']} orders/s once listening; the bridge used "
        f"{rep['recovery_cpu']['bridge_cpu_s_to_all_terminal']} CPU s ({rep['recovery_cpu']['bridge_cores']} cores) and "
        f"made {rep['rpc_during_recovery']['per_order']} JSON-RPC requests per order "
        f"({', '.join(f'{k} {v}' for k, v in rep['rpc_during_recovery']['by_method'].items())}). "
        f"A cold start of the same bridge with nothing to recover listened after {ms(b['cold_start_to_listening_ms'])}.",
        "",
        "## Correctness",
        "",
        f"- orders: {c['orders']}; journal status: {c['journal_status']}",
        f"- exactly one swap transaction, mined, receipt status 1: {c['orders_with_one_mined_swap']} orders "
        f"({c['receipts_status_1']} receipts with status 1); other transactions for these orders: "
        f"{c['non_swap_transactions_for_these_orders']}",
        f"- wallet nonces: " + ", ".join(f"{k} +{v['moved']}" for k, v in c["wallet_nonces"].items())
        + f" (expected +{c['orders']}); mempool left: {c['mempool_left']}; transactions of our wallets in the blocks "
        f"mined after the restart: {c['wallet_txs_in_blocks_after_the_restart']}",
        f"- Trade reports at the client: {c['orders_with_a_trade_report']} orders, {c['trade_reports_received']} "
        f"reports ({c['trade_reports_possdup']} with PossDupFlag), naming another transaction than the journal: "
        f"{c['reports_naming_another_tx']}",
        f"- **{'all correct' if c['ok'] else 'PROBLEMS: ' + '; '.join(c['problems'][:10])}**",
        "",
    ]
    path.write_text("\n".join(L))


if __name__ == "__main__":
    sys.exit(main())
