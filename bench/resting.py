"""fixbridge resting-orders benchmark: N resting GTC buys that one block makes marketable -> their
swaps broadcast, and the share of them mined in the very next block; against raw signed sends of N
swaps from a script, on the same chain, into the next block.

    .venv/bin/python bench/resting.py                      # N = 1, 10, 100; ~3 minutes
    .venv/bin/python bench/resting.py --n 100 --wallets 4  # the 100 spread over 4 wallets (Account, tag 1)

Per N, a FRESH anvil with `--block-time 1` (interval mining: the next block comes when the chain's
clock says, not when the bench decides, so "the very next block" is the one a real 1 s chain would
make, ~1 s after the trigger's block, whatever the bridge is doing), the devnet, the real bridge
(`fixbridge run --no-devnet`, SQLite journal, DEBUG log: the market feed's `market block ... seen_at=`
line) and one FIX client (CLIENT1, its wallets w1..wW):

1. warm-up: a market buy and sell on every wallet (the router approvals, mined before anything is timed);
2. N GTC limit buys of 0.01 WETH on the V2 pair (ExDestination uniswap_v2), limits 3.0-4.0 % below the
   price of a 0.01 buy, round-robin over the wallets; all acknowledged (150=0) before going on;
3. one outside account (an anvil account that is none of the bridge's wallets) sells WETH into the pair
   in one swap, taking the price ~8 % down: that block (T) makes every order marketable at once, and
   the N fills together (1 WETH at N = 100) leave the price below every limit;
4. every order terminal (Filled), then the bridge is stopped;
5. raw: on the same chain, another funded account with its approvals done, calldata, gas limit and
   nonce ready: at the next block announced (newHeads), N swaps are signed (eth-account) and posted in
   one JSON-RPC batch of eth_sendRawTransaction; then mined.

Measured per order, from the bridge's journal and log (same machine, same wall clock):
- block announced: anvil's newHeads for T (websocket, this script) and the bridge's own watcher read of T
  (the market feed's debug line);
- watcher read -> fired (the RestingBook's `fired:` journal event), -> signed (the swap's write-ahead row),
  -> broadcast (the `swap tx broadcast` event: when the bridge handed the batch to the node);
- the block its swap was mined in; the share in T+1; reverts; swaps per order (a double fire shows here).

Writes bench/results/resting.json and .md. The bridge measured is HEAD plus untracked files (see
bench/throughput.py, _snapshot_source); `--worktree` measures the working tree.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # noqa: E402  (freezes the bridge's source first: see its _snapshot_source)

from fixbridge.fix.client import new_order_single  # noqa: E402
from fixbridge.venues.base import Exact  # noqa: E402
from latency import Procs, machine_info, summary  # noqa: E402

sys.path.insert(1, str(tp.ROOT / "tests"))
from market_support import Outsider  # noqa: E402

RESULTS = tp.ROOT / "bench" / "results"
SYMBOL, VENUE, QTY = "WETH/USDC", "uniswap_v2", Decimal("0.01")
E18, E6 = 10**18, 10**6
ANSI = re.compile(r"\x1b\[[0-9;]*m")
READ = re.compile(r"market block.*?block=(\d+).*?seen_at=([\d.]+)")


def watcher_reads(log: Path) -> dict[int, int]:
    """block -> when the bridge's own watcher handed it to the market feed (ns, wall clock)."""
    text = ANSI.sub("", log.read_text(errors="replace"))
    out: dict[int, int] = {}
    for m in READ.finditer(text):
        out.setdefault(int(m.group(1)), int(float(m.group(2)) * 1e9))
    return out


def v2_buy_price(w3, dep, size: int = E18 // 100) -> Decimal:
    """USDC per WETH that buying `size` WETH on the V2 pair costs now (Router02.getAmountsIn)."""
    out = w3.eth.call({"to": dep.router, "data": tp._sel("getAmountsIn(uint256,address[])") + tp.encode(
        ["uint256", "address[]"], [size, [dep.usdc, dep.weth]])})
    cost = tp.decode(["uint256[]"], bytes(out))[0][0]
    return Decimal(cost) / E6 / (Decimal(size) / E18)


def v2_weth_reserve(w3, dep) -> int:
    pair = w3.to_checksum_address(dep.pairs[SYMBOL])
    r = tp.decode(["uint112", "uint112", "uint32"], bytes(w3.eth.call({"to": pair, "data": tp._sel("getReserves()")})))
    return r[0] if int(dep.weth, 16) < int(dep.usdc, 16) else r[1]


def run_bridge(n: int, wallets: int, tmp: Path, procs: Procs, say) -> dict:
    d = tmp / f"n{n}"
    d.mkdir(parents=True)
    # anvil accounts: #1..#W the bridge's wallets, then the raw sender, then the outside account
    stack = tp.Stack(d, procs, 1, wallets, block_time=1, log_level="DEBUG", extra_accounts=2).start_chain()
    raw_acct, out_acct = stack.extra
    w3, dep = stack.w3, stack.dep
    clock = tp.BlockClock(stack.node.rpc_url).start_and_wait()
    try:
        stack.start_bridge()
        [client] = stack.connect()
        col = tp.Collector([client])
        col.start()
        sent = 0

        def send(cl: str, side: str, wallet: str, **kw) -> tp.Rec:
            nonlocal sent
            r = tp.Rec(cl, 0, wallet, side, "resting")
            col.add(r)
            r.send_ns = time.time_ns()
            client.send(new_order_single(cl, SYMBOL, side, QTY, account=wallet, ex_destination=VENUE, **kw))
            sent += 1
            return r

        warm = [send(f"W{i}-{side}", side, w) for i, w in enumerate(stack.wallet_names) for side in ("1", "2")]
        if not col.wait_terminal(len(warm), 60) or any(r.status != "2" for r in warm):
            raise RuntimeError(f"warm-up failed: {[(r.cl, r.status, r.text) for r in warm]}")
        # the outside account: its router approvals (not timed)
        outsider = Outsider(w3, dep, index=wallets + 2)
        assert outsider.address == out_acct.address
        outsider.fund(0, 0, [dep.router])

        px0 = v2_buy_price(w3, dep)
        orders, limits = [], []
        for i in range(n):
            limit = (px0 * (Decimal("0.97") - Decimal("0.01") * i / max(1, n))).quantize(Decimal("0.01"))
            limits.append(limit)
            orders.append(send(f"R{n}-{i}", "1", stack.wallet_names[i % wallets], limit=limit, tif="1"))
        end = time.monotonic() + 60
        while any(r.ack_ns is None for r in orders):
            if time.monotonic() > end or any(r.done_ns for r in orders):
                raise RuntimeError(f"not all acknowledged / some ended: {[(r.cl, r.status, r.text) for r in orders if r.done_ns or not r.ack_ns][:5]}")
            time.sleep(0.01)
        time.sleep(1.5)  # a block with nothing in it: every order has been looked at, none fired
        if any(r.done_ns or r.fill_ns for r in orders):
            raise RuntimeError("an order traded before the trigger")

        # the trigger: one swap, the price ~8 % down (V2: price ~ 1/(R+x)^2 at constant k)
        reserve = v2_weth_reserve(w3, dep)
        x = int(reserve * (1 / 0.92 ** 0.5 - 1))
        say(f"[N={n}] {n} resting below {px0:.2f}; the trigger sells {x / E18:.1f} WETH")
        receipt = outsider.swap(_V2(dep), dep.weth, dep.usdc, x)
        trigger = receipt["blockNumber"]
        after = v2_buy_price(w3, dep)
        ok = col.wait_terminal(sent, 90)
        time.sleep(1.2)  # the last report's block announced; the journal's rows committed
        blocks = {b: clock.seen[b] for b in sorted(clock.seen) if b >= trigger}
        stack.procs.stop(stack.bridge)
        reads = watcher_reads(stack.blog)
        res = analyse(stack.journal_db, orders, trigger, clock, reads)
        res.update(n=n, wallets=wallets, all_terminal=ok, price_before=str(px0), price_after_trigger=str(after),
                   lowest_limit=str(min(limits)), trigger_sold_weth=str(Decimal(x) / E18),
                   statuses={s: sum(r.status == s for r in orders) for s in {r.status for r in orders}},
                   not_filled=[(r.cl, r.status, r.text) for r in orders if r.status != "2"],
                   block_gap_ms=round((blocks.get(trigger + 1, 0) - blocks.get(trigger, 0)) / 1e6, 1) if trigger + 1 in blocks else None)
        say(f"[N={n}] bridge: read->broadcast p50 {res['read_to_broadcast'].get('p50_ms')} p99 "
            f"{res['read_to_broadcast'].get('p99_ms')} max {res['read_to_broadcast'].get('max_ms')} ms; next block "
            f"{res['in_next_block']}/{n}; swaps per order {res['swaps_per_order']}")
        res["raw"] = raw_run(n, stack, raw_acct, clock, say)
        return res
    finally:
        clock.stop()
        stack.close()


class _V2:
    """Router02's swapExactTokensForTokens for the outside account (market_support.Outsider.swap's venue)."""

    def __init__(self, dep) -> None:
        self.dep = dep

    def build_swap(self, intent):
        from types import SimpleNamespace
        data = tp._sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)") + tp.encode(
            ["uint256", "uint256", "address[]", "address", "uint256"],
            [intent.amount, 0, [intent.token_in, intent.token_out], intent.recipient, intent.deadline])
        return SimpleNamespace(to=self.dep.router, data=data)


def analyse(db: Path, orders: list, trigger: int, clock, reads: dict[int, int]) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = dict(con.execute("SELECT cl_ord_id, order_id FROM orders"))
        fired: dict[str, list[int]] = {}
        for oid, ts in con.execute("SELECT order_id, ts FROM order_events WHERE kind='note' AND reason LIKE 'fired:%' "
                                   "ORDER BY id"):
            fired.setdefault(oid, []).append(tp._ts_ns(ts))
        txs: dict[str, list[tuple]] = {}
        for oid, h, created in con.execute("SELECT order_id, tx_hash, created_at FROM transactions WHERE purpose='swap' "
                                           "ORDER BY id"):
            txs.setdefault(oid, []).append((h.lower(), tp._ts_ns(created)))
        bcast = {}
        for reason, ts in con.execute("SELECT reason, ts FROM order_events WHERE kind='tx' AND reason LIKE 'swap tx broadcast:%'"):
            bcast.setdefault(reason.split(": ", 1)[1].lower(), tp._ts_ns(ts))
        rcpt = {h.lower(): (b, s) for h, b, s in con.execute("SELECT tx_hash, block_number, status FROM receipts")}
    finally:
        con.close()
    read = reads.get(trigger)
    heads = clock.seen.get(trigger)
    st = {k: [] for k in ("read_to_fired", "read_to_signed", "read_to_broadcast", "heads_to_broadcast")}
    by_block: dict[int, int] = {}
    swaps, reverted, in_next = [], 0, 0
    for r in orders:
        oid = ids.get(r.cl)
        mine = txs.get(oid, [])
        swaps.append(len(mine))
        for h, _ in mine:
            b, s = rcpt.get(h, (None, None))
            reverted += s == 0
        if not mine:
            continue
        h, signed = mine[0]
        b, s = rcpt.get(h, (None, None))
        if b is not None:
            by_block[b - trigger] = by_block.get(b - trigger, 0) + 1
        in_next += b == trigger + 1 and s == 1
        if read:
            if fired.get(oid):
                st["read_to_fired"].append(fired[oid][0] - read)
            st["read_to_signed"].append(signed - read)
            if h in bcast:
                st["read_to_broadcast"].append(bcast[h] - read)
        if heads and h in bcast:
            st["heads_to_broadcast"].append(bcast[h] - heads)
    out = {k: summary(v) for k, v in st.items()}
    out.update(trigger_block=trigger, heads_to_watcher_read_ms=round((read - heads) / 1e6, 3) if read and heads else None,
               in_next_block=in_next, share_in_next_block=round(in_next / len(orders), 3),
               first_swaps_by_block_after_trigger={f"T+{k}": v for k, v in sorted(by_block.items())},
               swaps_per_order={str(k): swaps.count(k) for k in sorted(set(swaps))}, reverted_swaps=reverted,
               fires_per_order={str(k): v for k, v in _counts([len(fired.get(ids.get(r.cl), [])) for r in orders]).items()})
    return out


def _counts(xs: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def raw_run(n: int, stack, acct, clock, say) -> dict:
    """N swaps from a script the moment a block is announced: the physical limit on this machine."""
    key = "0x" + bytes(acct.key).hex()
    rp = tp.RawPipelined(stack.node.rpc_url, stack.dep, key)  # its router approvals, mined (not timed)
    deadline = int(time.time()) + 900
    data = rp._calldata("1", int(QTY * E18), deadline)
    # the bound of each buy must hold after the N-1 before it in the same block: 50 bps is enough for 1 WETH
    est = int(rp.w3.eth.estimate_gas({"from": acct.address, "to": rp.router, "data": data}))
    gas = est + est * tp.RAW_GAS_HEADROOM_PCT // 100 + tp.RAW_GAS_MARGIN
    nonce0 = int(rp.w3.eth.get_transaction_count(acct.address, "pending"))
    base_fee = int(rp.w3.eth.get_block("latest")["baseFeePerGas"])
    last = max(clock.seen)
    while max(clock.seen) == last:  # the next announcement: the trigger
        time.sleep(0.0005)
    trig = max(clock.seen)
    t0 = clock.seen[trig]
    seen_ns = time.time_ns()
    raws = [rp.acct.sign_transaction({"to": rp.router, "data": data, "value": 0, "nonce": nonce0 + i, "gas": gas,
                                      "chainId": rp.chain_id, "maxFeePerGas": 4 * base_fee + 2 * 10**9,
                                      "maxPriorityFeePerGas": 10**9, "type": 2}).raw_transaction.to_0x_hex()
            for i in range(n)]
    signed_ns = time.time_ns()
    replies = rp._post([("eth_sendRawTransaction", [r]) for r in raws])
    sent_ns = time.time_ns()
    hashes = [r.get("result") for r in replies]
    errors = [r.get("error") for r in replies if "error" in r]
    blocks: dict[int, int] = {}
    reverted = 0
    for h in hashes:
        if h is None:
            continue
        rc = rp.w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.05)
        blocks[rc["blockNumber"] - trig] = blocks.get(rc["blockNumber"] - trig, 0) + 1
        reverted += rc["status"] != 1
    res = {"trigger_block": trig, "heads_to_script_ms": round((seen_ns - t0) / 1e6, 3),
           "heads_to_signed_ms": round((signed_ns - t0) / 1e6, 3), "heads_to_all_sent_ms": round((sent_ns - t0) / 1e6, 3),
           "in_next_block": blocks.get(1, 0), "share_in_next_block": round(blocks.get(1, 0) / n, 3),
           "by_block_after_trigger": {f"T+{k}": v for k, v in sorted(blocks.items())}, "reverted": reverted,
           "send_errors": errors[:3]}
    say(f"[N={n}] raw: heads->all sent {res['heads_to_all_sent_ms']} ms; next block {res['in_next_block']}/{n}")
    return res


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "resting.json").write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    lines = ["# fixbridge resting orders: one block makes N marketable", "",
             f"{report['date']} · {m.get('cpu_count')} CPU · bridge {m.get('bridge_source')} · anvil --block-time 1 · "
             f"load average {report['loadavg_start']} at the start, {report['loadavg_end']} at the end (2 cores shared "
             "with other engineers' work). Produced by `bench/resting.py`; method in bench/README.md.", "",
             "Per row: N GTC limit buys of 0.01 WETH resting on the V2 pair, "
             f"{report['config']['wallets']} wallet(s), one outside swap (block T) makes all of them marketable. "
             "Times in ms from the bridge's own watcher read of T (*read*) unless said; *next block* = first swaps "
             "mined in T+1 with status 1.", "",
             "| N | newHeads → read | read → fired p50 / p99 / max | read → signed p50 / p99 / max | "
             "**read → broadcast** p50 / p99 / max | newHeads → broadcast max | **in next block** | by block | "
             "swaps/order | raw: newHeads → all sent | **raw in next block** |",
             "|---:|---:|---|---|---|---:|---:|---|---|---:|---:|"]
    f = lambda s: f"{s.get('p50_ms', '–')} / {s.get('p99_ms', '–')} / {s.get('max_ms', '–')}"  # noqa: E731
    for r in report["runs"]:
        raw = r["raw"]
        lines.append(f"| {r['n']} | {r['heads_to_watcher_read_ms']} | {f(r['read_to_fired'])} | {f(r['read_to_signed'])} | "
                     f"{f(r['read_to_broadcast'])} | {r['heads_to_broadcast'].get('max_ms')} | "
                     f"{r['in_next_block']}/{r['n']} ({r['share_in_next_block']:.0%}) | "
                     f"{r['first_swaps_by_block_after_trigger']} | {r['swaps_per_order']} | "
                     f"{raw['heads_to_all_sent_ms']} | {raw['in_next_block']}/{r['n']} ({raw['share_in_next_block']:.0%}) |")
    lines += ["", "**Reading it**", ""] + [f"- {s}" for s in report.get("reading", [])] + [""]
    (out / "resting.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fixbridge resting-orders benchmark (see bench/README.md)")
    ap.add_argument("--n", type=int, action="append", default=None, help="resting orders per run (repeatable; "
                    "default 1, 10, 100)")
    ap.add_argument("--wallets", type=int, default=1, help="the session's wallets; orders round-robin over them")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--worktree", action="store_true", help="measure the working tree (see bench/throughput.py)")
    args = ap.parse_args(argv)

    def on_signal(*_):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="fixbridge-resting-"))
    procs = Procs()
    started = time.monotonic()
    say = lambda s: print(f"[{time.monotonic() - started:6.1f}s] {s}", flush=True)  # noqa: E731
    try:
        info = tp.source_info(machine_info())
        load_start = tp.loadavg()
        runs = [run_bridge(n, args.wallets, tmp, procs, say) for n in (args.n or [1, 10, 100])]
        report = {"benchmark": "fixbridge resting orders (bench/resting.py)",
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": info,
                  "loadavg_start": load_start, "loadavg_end": tp.loadavg(),
                  "config": {"wallets": args.wallets, "qty": str(QTY), "venue": VENUE, "block_time_s": 1,
                             "bridge_log_level": "DEBUG", "duration_s": round(time.monotonic() - started, 1)},
                  "runs": runs}
        report["reading"] = reading(runs)
        write(report, args.out)
        print((args.out / "resting.md").read_text())
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def reading(runs: list[dict]) -> list[str]:
    out = []
    for r in runs:
        rb, fired, signed = r["read_to_broadcast"], r["read_to_fired"], r["read_to_signed"]
        out.append(f"N = {r['n']}: the RestingBook fired the last order {fired.get('max_ms')} ms after the watcher read, "
                   f"the intake signed the last swap at {signed.get('max_ms')} ms and the bridge handed the last one to "
                   f"the node at {rb.get('max_ms')} ms (newHeads → read {r['heads_to_watcher_read_ms']} ms; the next "
                   f"block came {r['block_gap_ms']} ms after T): {r['in_next_block']} of {r['n']} in T+1. The raw "
                   f"script had all {r['n']} sent {r['raw']['heads_to_all_sent_ms']} ms after newHeads: "
                   f"{r['raw']['in_next_block']} of {r['n']} in T+1. Reverted swaps {r['reverted_swaps']}, not filled "
                   f"{len(r['not_filled'])}, swaps per order {r['swaps_per_order']}.")
    big = max(runs, key=lambda r: r["n"])
    per = (big["read_to_signed"].get("max_ms", 0) - big["read_to_fired"].get("min_ms", 0)) / big["n"]
    out.append("newHeads → read is the watcher's polling: while orders rest (or market data is subscribed) it polls "
               "the height every few ms, not every 50 ms as when idle, so a trigger's block is read within milliseconds. "
               "On a 1 s chain everything "
               "fits in the next block with room to spare up to 100 orders on one wallet; the bridge's part is the "
               f"intake (quote, funds, gas, sign: {per:.1f} ms an order on one wallet's worker at N = {big['n']}), the raw "
               "script's: its signing and one batch post.")
    return out


if __name__ == "__main__":
    sys.exit(main())
