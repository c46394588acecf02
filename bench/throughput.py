"""fixbridge throughput benchmark: how many swaps per second the pipelined bridge gets onto a chain
that mines a block every second, how full it keeps the blocks, and what it adds to inclusion.

    .venv/bin/python bench/throughput.py                      # the default scenarios, ~6 minutes
    .venv/bin/python bench/throughput.py --scenario 1x1:paced --orders 1500
    .venv/bin/python bench/throughput.py --scenario 1x4:gas=3000000

Every scenario gets a FRESH anvil (`--block-time 1`; anvil slows down as its chain grows), the
devnet (`deploy_devnet`), and the bridge as a subprocess (`fixbridge run --no-devnet`, SQLite
journal in a temporary folder). Scenario `SxW` has S FIX sessions with W wallets each; orders go
round-robin over the sessions and, within a session, over its wallets (FIX Account, tag 1), each
wallet alternating buy and sell. Options after the name:

    :gas=N      lower the block gas limit to N (anvil_setBlockGasLimit, after the deployment)
    :orders=N   the burst's size for this scenario (default --orders)
    :paced      run the paced phases (--paced) before the burst
    :profile    sample the bridge with py-spy during the burst
    :shm        the journal on tmpfs (/dev/shm): commits without fsync, an experiment

Per scenario:

1. warm-up: a buy, then a sell, on every wallet (the router approvals; not measured);
2. paced (`:paced`): `--paced RATE:SECONDS` phases, latency with no queue in front of the bridge;
3. burst: the orders sent as fast as the client can (all of them before the first block);
4. baseline: `--baseline-swaps` plain web3 swaps from another funded account, one in flight
   (getTransactionCount, sign, send, wait for the receipt, next);
5. the physical limit (RawPipelined), once the bridge is stopped: the same swaps from a third funded
   account, nonces counted locally, signed with eth-account and sent in JSON-RPC batches of
   `--raw-batch` eth_sendRawTransaction as fast as possible, then the blocks watched until all are
   mined; `--raw-swaps` of them (default: the burst size, or enough for six full blocks if that is
   more). Its steady swaps per block and swaps/s are what the chain and a Python client can do here.

Block times are measured, not taken from block headers: a websocket `newHeads` subscription stamps
each block when anvil announces it. Inclusion = that stamp minus the order's send time; "added by
the bridge" = the ExecutionReport Trade's arrival at the client minus that stamp.

The bridge measured is the committed HEAD plus the untracked files, frozen in a temporary folder
(see _snapshot_source); `--worktree` measures the working tree instead.

Writes bench/results/throughput.json and .md. Every process it starts is stopped on exit, error,
Ctrl-C or SIGTERM, and gets SIGTERM if this script is killed (see bench/latency.py, Procs).
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _snapshot_source() -> tuple[Path, str]:
    """The bridge code to measure, frozen for the run. Default: the committed HEAD (`git archive`)
    plus the files of fixbridge/, specs/, sessions/, contracts/ that git does not track yet (the
    commits import some of them); files modified but not committed are left out, because the
    working tree may be half-way through someone's edit. `--worktree` measures the working tree
    as it is instead."""
    import subprocess
    if "--worktree" in sys.argv:
        return ROOT, "worktree"
    run = lambda *a, **k: subprocess.run(list(a), capture_output=True, cwd=ROOT, check=True, **k).stdout  # noqa: E731
    sha = run("git", "rev-parse", "HEAD", text=True).strip()
    dst = Path(tempfile.mkdtemp(prefix=f"fixbridge-src-{sha[:8]}-"))
    subprocess.run(["tar", "-x", "-C", str(dst)], input=run("git", "archive", "--format=tar", sha), check=True)
    untracked = [f for f in run("git", "ls-files", "--others", "--exclude-standard", "-z", "--", "fixbridge", "specs",
                                "sessions", "contracts").split(b"\0") if f and b"__pycache__" not in f]
    for f in untracked:
        target = dst / f.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f.decode(), target)
    return dst, f"{sha}+{len(untracked)} untracked"


if os.environ.get("FIXBRIDGE_BENCH_SRC"):  # set by a parent run (recovery.py imports this module)
    SRC, SRC_REV = Path(os.environ["FIXBRIDGE_BENCH_SRC"]), os.environ.get("FIXBRIDGE_BENCH_REV", "?")
else:
    SRC, SRC_REV = _snapshot_source()
    if SRC != ROOT:
        import atexit
        atexit.register(shutil.rmtree, SRC, True)
    os.environ["FIXBRIDGE_BENCH_SRC"], os.environ["FIXBRIDGE_BENCH_REV"] = str(SRC), SRC_REV
# node_modules (anvil, the Uniswap artifacts) stay in the repository
os.environ.setdefault("FIXBRIDGE_NODE_MODULES", str(ROOT / "node_modules"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(SRC))  # fixbridge is imported from SRC, ahead of the editable install

from eth_abi import decode, encode  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_utils import function_signature_to_4byte_selector  # noqa: E402
from web3 import Web3  # noqa: E402

from fixbridge.devnet.anvil import DEFAULT_MNEMONIC, Anvil  # noqa: E402
from fixbridge.devnet.deploy import deploy_devnet, write_spec  # noqa: E402
from fixbridge.fix.client import FixClient, Received, new_order_single  # noqa: E402
from fixbridge.engine.confirmation import SETTLE_FLUSH_EVERY  # noqa: E402
from latency import Procs, free_port, machine_info, summary, wait_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SYMBOL = "WETH/USDC"
TERMINAL = ("2", "4", "8", "C")
SLIPPAGE_BPS = 50
MAX_UINT = 2**256 - 1
DEFAULT_SCENARIOS = ["1x1:paced", "1x1:profile", "1x4", "4x1", "1x1:shm", "1x1:gas=1350000:orders=300"]


def _sel(sig: str) -> bytes:
    return function_signature_to_4byte_selector(sig)


def anvil_account(i: int):
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")


def source_info(info: dict) -> dict:
    """machine_info() names the repository's HEAD; say which code actually ran."""
    if SRC_REV != "worktree":
        sha, _, extra = SRC_REV.partition("+")
        info["git_commit"] = sha[:7]
        info["bridge_tree_dirty"] = False
        info["bridge_source"] = (f"git archive {sha} plus the {extra} files of the working tree (fixbridge/, specs/, "
                                 "sessions/, contracts/); uncommitted modifications left out")
    else:
        info["bridge_source"] = "working tree"
    return info


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), in seconds."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def system_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return float(sum(v) - idle), float(sum(v))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# measuring: when each block appears, and what the client receives
# ---------------------------------------------------------------------------------------------
class BlockClock(threading.Thread):
    """Stamps each block when anvil announces it (websocket eth_subscribe newHeads)."""

    def __init__(self, rpc_url: str) -> None:
        super().__init__(name="block-clock", daemon=True)
        self.url = rpc_url.replace("http://", "ws://")
        self.seen: dict[int, int] = {}  # block number -> time.time_ns() when announced
        self._halt = threading.Event()
        self._ready = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        from websockets.sync.client import connect
        try:
            with connect(self.url, max_size=2**24) as ws:
                ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
                json.loads(ws.recv(timeout=10))
                self._ready.set()
                while not self._halt.is_set():
                    try:
                        raw = ws.recv(timeout=0.25)
                    except TimeoutError:
                        continue
                    now = time.time_ns()
                    msg = json.loads(raw)
                    head = (msg.get("params") or {}).get("result") or {}
                    if "number" in head:
                        self.seen.setdefault(int(head["number"], 16), now)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = e
            self._ready.set()

    def start_and_wait(self) -> "BlockClock":
        self.start()
        self._ready.wait(15)
        if self.error:
            raise RuntimeError(f"newHeads subscription failed: {self.error}")
        return self

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


class StampedQueue(queue.Queue):
    """Replaces FixClient's inbox: each message is stamped (wall clock, ns) as QuickFIX delivers it."""

    def put(self, item, block=True, timeout=None):  # noqa: D401
        super().put((time.time_ns(), item), block, timeout)


@dataclass
class Rec:
    cl: str
    session: int
    wallet: str
    side: str
    phase: str
    send_ns: int = 0
    ack_ns: int | None = None
    fill_ns: int | None = None
    done_ns: int | None = None
    status: str | None = None
    text: str | None = None
    block: int | None = None
    tx: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class Collector(threading.Thread):
    """Reads every client's stamped inbox and files the ExecutionReports by ClOrdID."""

    def __init__(self, clients: list[FixClient]) -> None:
        super().__init__(name="collector", daemon=True)
        self.inboxes = [c._inbox for c in clients]
        self.recs: dict[str, Rec] = {}
        self.other: list[str] = []
        self._halt = threading.Event()
        self.terminal = 0
        self._cond = threading.Condition()

    def add(self, r: Rec) -> None:
        self.recs[r.cl] = r

    def run(self) -> None:
        while not self._halt.is_set():
            got = False
            for q in self.inboxes:
                while True:
                    try:
                        ts, m = q.get_nowait()
                    except queue.Empty:
                        break
                    got = True
                    self._file(ts, m)
            if not got:
                time.sleep(0.0005)

    def _file(self, ts: int, m: Received) -> None:
        if m.msg_type != "8":
            self.other.append(m.raw[:300])
            return
        r = self.recs.get(m.get(11) or "")
        if r is None:
            return
        et = m.get(150)
        if et == "0" and r.ack_ns is None:
            r.ack_ns = ts
        elif et == "F" and r.fill_ns is None:
            r.fill_ns = ts
            r.block = int(m[20002]) if m.get(20002) else None
            r.tx = (m.get(20001) or "").lower() or None
        if m[39] in TERMINAL and r.done_ns is None:
            r.done_ns, r.status, r.text = ts, m[39], m.get(58)
            with self._cond:
                self.terminal += 1
                self._cond.notify_all()
            r.done.set()

    def wait_terminal(self, count: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while self.terminal < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


# ---------------------------------------------------------------------------------------------
# the bridge's configuration for a scenario
# ---------------------------------------------------------------------------------------------
def write_sessions(tmp: Path, n_sessions: int, wallet_keys: dict[str, str], per_session: list[list[str]]) -> Path:
    """acceptor.cfg (sessions/acceptor.cfg's [DEFAULT], one [SESSION] per client) and counterparties.toml."""
    from fixbridge.fix.settings import PATH_KEYS, parse, render
    src = SRC / "sessions"
    default = dict(parse((src / "acceptor.cfg").read_text())[0][1])
    for k, v in list(default.items()):
        if k in PATH_KEYS and not Path(v).is_absolute():
            default[k] = str((src / v).resolve())
    sections = [("DEFAULT", default)] + [
        ("SESSION", {"BeginString": "FIX.4.4", "SenderCompID": "FIXBRIDGE", "TargetCompID": f"CLIENT{i + 1}"})
        for i in range(n_sessions)]
    d = tmp / "sessions"
    d.mkdir(parents=True, exist_ok=True)
    (d / "acceptor.cfg").write_text(render(sections))
    lines = []
    for name, key in wallet_keys.items():
        lines += [f"[wallets.{name}]", 'chain = "devnet"', f'private_key = "{key}"', ""]
    for i, wallets in enumerate(per_session):
        lines += [f"[sessions.CLIENT{i + 1}]", "wallets = [" + ", ".join(f'"{w}"' for w in wallets) + "]",
                  f"max_slippage_bps = {SLIPPAGE_BPS}", 'approval_policy = "standing"', "deadline_seconds = 120", ""]
    (d / "counterparties.toml").write_text("\n".join(lines))
    return d / "counterparties.toml"


def bridge_cmd(spec: Path, sessions: Path, journal: Path, state: Path, port: int) -> list[str]:
    exe = Path(sys.executable).with_name("fixbridge")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fixbridge.cli"]
    return cmd + ["run", "--no-devnet", "--spec", str(spec), "--sessions", str(sessions),
                  "--journal", f"sqlite:///{journal}", "--state-dir", str(state), "--port", str(port)]


# ---------------------------------------------------------------------------------------------
# the one-in-flight baseline: a plain web3 loop
# ---------------------------------------------------------------------------------------------
class PlainLoop:
    """What a script without a pipeline does: nonce from getTransactionCount, sign, send, wait, next."""

    def __init__(self, rpc_url: str, dep, key: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self.acct = Account.from_key(key)
        self.chain_id, self.router, self.weth, self.usdc = dep.chain_id, dep.router, dep.weth, dep.usdc
        for token in (self.weth, self.usdc):  # set-up, not timed
            self._send(token, _sel("approve(address,uint256)") + encode(["address", "uint256"], [self.router, MAX_UINT]),
                       100_000)

    def _send(self, to: str, data: bytes, gas: int) -> dict:
        nonce = self.w3.eth.get_transaction_count(self.acct.address)
        base_fee = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
        signed = self.acct.sign_transaction({"to": to, "data": data, "value": 0, "nonce": nonce, "gas": gas,
                                             "chainId": self.chain_id, "maxFeePerGas": 2 * base_fee + 10**9,
                                             "maxPriorityFeePerGas": 10**9, "type": 2})
        h = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        r = self.w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.01)
        if r["status"] != 1:
            raise RuntimeError(f"baseline transaction {h.to_0x_hex()} reverted")
        return r

    def swap(self, side: str, qty: Decimal) -> dict:
        wei = int(qty * 10**18)
        deadline = int(time.time()) + 120
        if side == "1":  # buy WETH for USDC, exact output, bound = max in
            out = self.w3.eth.call({"to": self.router, "data": _sel("getAmountsIn(uint256,address[])") + encode(
                ["uint256", "address[]"], [wei, [self.usdc, self.weth]])})
            q = decode(["uint256[]"], bytes(out))[0][0]
            data = _sel("swapTokensForExactTokens(uint256,uint256,address[],address,uint256)") + encode(
                ["uint256", "uint256", "address[]", "address", "uint256"],
                [wei, q + -(-q * SLIPPAGE_BPS // 10_000), [self.usdc, self.weth], self.acct.address, deadline])
        else:
            out = self.w3.eth.call({"to": self.router, "data": _sel("getAmountsOut(uint256,address[])") + encode(
                ["uint256", "address[]"], [wei, [self.weth, self.usdc]])})
            q = decode(["uint256[]"], bytes(out))[0][-1]
            data = _sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)") + encode(
                ["uint256", "uint256", "address[]", "address", "uint256"],
                [wei, q - q * SLIPPAGE_BPS // 10_000, [self.weth, self.usdc], self.acct.address, deadline])
        gas = self.w3.eth.estimate_gas({"from": self.acct.address, "to": self.router, "data": data})
        return self._send(self.router, data, gas + gas // 2 + 50_000)


# ---------------------------------------------------------------------------------------------
# the physical limit: raw transactions, pipelined, no bridge
# ---------------------------------------------------------------------------------------------
# the raw swaps get the median gas limit of the bridge's burst swaps, so that blocks pack alike; without any,
# the bridge's formula (fixbridge.chain.submitter: estimate + 25 % + 50,000) on the raw sender's own estimate
RAW_GAS_HEADROOM_PCT, RAW_GAS_MARGIN = 25, 50_000
# by default the raw run is the scenario's burst size, or enough swaps for this many full blocks if that is more:
# fewer fit into one or two blocks, which leaves no steady part to measure
RAW_MIN_FULL_BLOCKS = 6


class RawPipelined(PlainLoop):
    """The chain's limit with a Python client in the same run: one funded account, nonces owned
    locally (getTransactionCount once, then +1), every swap signed with eth-account and sent with
    JSON-RPC batches of eth_sendRawTransaction over one keep-alive HTTP connection, as fast as
    possible; then the blocks are watched until every swap is mined. The same 0.01 WETH swaps as the
    bridge's orders (buys swapTokensForExactTokens, sells swapExactTokensForTokens, alternating), the
    same gas limit per swap. Quotes and gas estimates are taken once, before the clock starts; signing
    (main thread) overlaps sending (a sender thread)."""

    def __init__(self, rpc_url: str, dep, key: str) -> None:
        super().__init__(rpc_url, dep, key)  # the router approvals, mined before anything is timed
        import requests
        self.url = rpc_url
        self.http = requests.Session()

    def _calldata(self, side: str, wei: int, deadline: int) -> bytes:
        me = self.acct.address
        if side == "1":  # buy WETH for USDC, exact output, bound = max in
            out = self.w3.eth.call({"to": self.router, "data": _sel("getAmountsIn(uint256,address[])") + encode(
                ["uint256", "address[]"], [wei, [self.usdc, self.weth]])})
            q = decode(["uint256[]"], bytes(out))[0][0]
            return _sel("swapTokensForExactTokens(uint256,uint256,address[],address,uint256)") + encode(
                ["uint256", "uint256", "address[]", "address", "uint256"],
                [wei, q + -(-q * SLIPPAGE_BPS // 10_000), [self.usdc, self.weth], me, deadline])
        out = self.w3.eth.call({"to": self.router, "data": _sel("getAmountsOut(uint256,address[])") + encode(
            ["uint256", "address[]"], [wei, [self.weth, self.usdc]])})
        q = decode(["uint256[]"], bytes(out))[0][-1]
        return _sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)") + encode(
            ["uint256", "uint256", "address[]", "address", "uint256"],
            [wei, q - q * SLIPPAGE_BPS // 10_000, [self.weth, self.usdc], me, deadline])

    def _post(self, calls: list[tuple[str, list]]) -> list[dict]:
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        reply = self.http.post(self.url, json=body, timeout=60).json()
        if isinstance(reply, dict):  # the whole batch refused
            return [reply] * len(calls)
        return sorted(reply, key=lambda r: r.get("id", 0))

    def run(self, n: int, qty: Decimal, clock: BlockClock, gas_limit: int, *, min_blocks: int = 0, batch: int = 50,
            tx_gas: int | None = None, gas_used_guess: int | None = None, timeout: float = 120.0,
            pids: dict[str, int | None] | None = None) -> dict:
        """n swaps, or (min_blocks) enough for that many full blocks if that is more. tx_gas: the gas limit of
        every swap (the bridge's, so that blocks pack alike); default: the bridge's formula on our estimate.
        gas_used_guess: a swap's gas used, to size min_blocks (default: the estimate, which is higher)."""
        wei = int(qty * 10**18)
        deadline = int(time.time()) + 900
        data = {side: self._calldata(side, wei, deadline) for side in ("1", "2")}
        est = {side: int(self.w3.eth.estimate_gas({"from": self.acct.address, "to": self.router, "data": d}))
               for side, d in data.items()}
        # an estimate against a block without our swaps includes the write of the pool's price accumulators
        # (~15k gas) that the bridge's estimates against its own pending swaps do not: its formula on our
        # estimate gives ~179k instead of ~160k, and the last slot of a 30M block would not fit
        gas = {side: tx_gas or e + e * RAW_GAS_HEADROOM_PCT // 100 + RAW_GAS_MARGIN for side, e in est.items()}
        asked = n
        if min_blocks:
            n = max(n, min_blocks * (gas_limit // (gas_used_guess or max(est.values()))))
        nonce0 = int(self.w3.eth.get_transaction_count(self.acct.address, "pending"))
        base_fee = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
        # full blocks raise the base fee 12.5 % a block: leave room for many of them
        max_fee, tip = 8 * base_fee + 2 * 10**9, 10**9
        start_block = int(self.w3.eth.block_number)
        hashes: set[str] = set()
        q: queue.Queue = queue.Queue()
        sent: list[tuple[int, int, int]] = []  # (post start ns, reply ns, transactions) per batch
        errors: list[str] = []

        def sender() -> None:
            while (raws := q.get()) is not None:
                t = time.time_ns()
                try:
                    replies = self._post([("eth_sendRawTransaction", [r]) for r in raws])
                except Exception as e:  # noqa: BLE001 - reported
                    errors.append(f"batch: {e!r}"[:300])
                    continue
                sent.append((t, time.time_ns(), len(raws)))
                errors.extend(str(r["error"])[:300] for r in replies if "error" in r)
        th = threading.Thread(target=sender, name="raw-sender", daemon=True)
        th.start()
        cpu0 = {k: cpu_seconds(p) for k, p in (pids or {}).items() if p}
        bench0 = sum(os.times()[:2])
        t0 = time.time_ns()
        sign_ns = 0
        for lo in range(0, n, batch):
            s0 = time.perf_counter_ns()
            raws = []
            for i in range(lo, min(n, lo + batch)):
                side = "1" if i % 2 == 0 else "2"
                signed = self.acct.sign_transaction({
                    "to": self.router, "data": data[side], "value": 0, "nonce": nonce0 + i, "gas": gas[side],
                    "chainId": self.chain_id, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2})
                hashes.add("0x" + bytes(signed.hash).hex())
                raws.append("0x" + bytes(signed.raw_transaction).hex())
            sign_ns += time.perf_counter_ns() - s0
            q.put(raws)
        t_signed = time.time_ns()
        q.put(None)
        th.join(timeout)
        t_sent = time.time_ns()
        # watch the chain until every swap is mined (or the node says it will never be)
        end, done, progress_at = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < end and time.monotonic() - progress_at < 10:  # 10 s without a swap mined: stuck
            now_done = int(self.w3.eth.get_transaction_count(self.acct.address, "latest")) - nonce0
            if now_done >= n:
                break
            if now_done != done:
                done, progress_at = now_done, time.monotonic()
            time.sleep(0.05)
        t_mined = time.time_ns()
        wall = (t_mined - t0) / 1e9
        cpu1 = {k: cpu_seconds(p) for k, p in (pids or {}).items() if p}
        bench1 = sum(os.times()[:2])
        time.sleep(0.3)  # the block clock's stamp of the last block
        last_block = int(self.w3.eth.block_number)

        # ---- read the blocks ---------------------------------------------------------------
        per_block: dict[int, int] = {}
        gas_used: list[int] = []
        reverted = 0
        blocks = []
        for b in range(start_block, last_block + 1):
            rcpts = self._post([("eth_getBlockReceipts", [hex(b)]), ("eth_getBlockByNumber", [hex(b), False])])
            mine = [r for r in (rcpts[0].get("result") or []) if r["transactionHash"].lower() in hashes]
            hdr = rcpts[1].get("result") or {}
            if mine:
                per_block[b] = len(mine)
                gas_used += [int(r["gasUsed"], 16) for r in mine]
                reverted += sum(1 for r in mine if int(r["status"], 16) != 1)
                blocks.append({"block": b, "txs": len(hdr.get("transactions", [])), "raw_swaps": len(mine),
                               "gas_used": int(hdr.get("gasUsed", "0x0"), 16),
                               "gas_limit": int(hdr.get("gasLimit", "0x0"), 16),
                               "base_fee_gwei": round(int(hdr.get("baseFeePerGas", "0x0"), 16) / 1e9, 4),
                               "seen_ms_after_previous": round((clock.seen[b] - clock.seen[b - 1]) / 1e6, 1)
                               if clock.seen.get(b) and clock.seen.get(b - 1) else None})
        mined = sum(per_block.values())
        out: dict = {
            "swaps": n, "swaps_asked": asked, "min_full_blocks": min_blocks, "mined": mined, "reverted": reverted,
            "send_errors": len(errors),
            "send_error_examples": errors[:5], "batch_size": batch,
            "gas_limit_per_swap": sorted(set(gas.values())),
            "gas_limit_per_swap_from": "the bridge's burst swaps (median)" if tx_gas else
            f"estimate + {RAW_GAS_HEADROOM_PCT} % + {RAW_GAS_MARGIN:,}", "gas_estimate": est,
            "max_fee_gwei": round(max_fee / 1e9, 3), "base_fee_at_start_gwei": round(base_fee / 1e9, 4),
            "sign_ms_per_swap": round(sign_ns / 1e6 / max(1, n), 3),
            "signed_per_second": round(n / max(1e-9, sign_ns / 1e9), 1),
            "all_signed_s": round((t_signed - t0) / 1e9, 3),
            "all_sent_s": round((t_sent - t0) / 1e9, 3),
            "sent_per_second": round(n / max(1e-9, (t_sent - t0) / 1e9), 1),
            "send_batch_reply_ms": _ms([b - a for a, b, _ in sent]),
            "all_mined_s": round(wall, 3),
            "overall_swaps_per_second": round(mined / wall, 2) if wall > 0 else None,
            "cpu_cores": {k: _rate(cpu0.get(k), cpu1.get(k), wall) for k in cpu1} | {
                "bench_client": _rate(bench0, bench1, wall)},
        }
        if not per_block:
            return out | {"blocks_detail": blocks}
        bl = list(range(min(per_block), max(per_block) + 1))
        counts = [per_block.get(b, 0) for b in bl]
        med_gas = int(statistics.median(gas_used))
        capacity = gas_limit // med_gas
        out.update({"blocks": [bl[0], bl[-1]], "swaps_per_block": counts, "gas_per_swap_median": med_gas,
                    "block_capacity_swaps": capacity})
        steady = steady_blocks(bl)
        if steady and all(clock.seen.get(b) for b in [steady[0] - 1] + steady):
            span = (clock.seen[steady[-1]] - clock.seen[steady[0] - 1]) / 1e9
            n_steady = sum(per_block.get(b, 0) for b in steady)
            fills = [per_block.get(b, 0) / capacity for b in steady]
            by_n = {x["block"]: x for x in blocks}
            out["steady"] = {"blocks": [steady[0], steady[-1]], "block_count": len(steady), "swaps": n_steady,
                             "seconds": round(span, 3), "swaps_per_second": round(n_steady / span, 2),
                             "swaps_per_block_mean": round(n_steady / len(steady), 2),
                             "swaps_per_block_min": min(per_block.get(b, 0) for b in steady),
                             "swaps_per_block_max": max(per_block.get(b, 0) for b in steady),
                             "block_capacity_swaps": capacity,
                             "pct_of_capacity_mean": round(100 * sum(fills) / len(fills), 1),
                             "pct_of_capacity_min": round(100 * min(fills), 1),
                             "block_gas_used_pct_mean": round(100 * statistics.mean(
                                 by_n[b]["gas_used"] / by_n[b]["gas_limit"] for b in steady if b in by_n), 1),
                             # a block is full when the gas left is less than one more swap's gas limit
                             "full_blocks": sum(1 for b in steady if b in by_n and
                                                by_n[b]["gas_limit"] - by_n[b]["gas_used"] < min(gas.values()))}
        out["blocks_detail"] = blocks
        return out


# ---------------------------------------------------------------------------------------------
# one scenario
# ---------------------------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    sessions: int
    wallets_per_session: int
    gas_limit: int | None = None
    orders: int | None = None
    profile: bool = False
    shm: bool = False
    paced: bool = False

    @classmethod
    def parse(cls, text: str) -> "Scenario":
        m = re.fullmatch(r"(\d+)x(\d+)((?::(?:gas=\d+|orders=\d+|profile|shm|paced))*)", text.strip())
        if not m:
            raise SystemExit(f"--scenario expects SxW[:gas=N][:orders=N][:profile][:shm][:paced], got {text!r}")
        sc = cls(text.strip(), int(m.group(1)), int(m.group(2)))
        for opt in filter(None, m.group(3).split(":")):
            k, _, v = opt.partition("=")
            if k == "gas":
                sc.gas_limit = int(v)
            elif k == "orders":
                sc.orders = int(v)
            elif k == "profile":
                sc.profile = True
            elif k == "shm":
                sc.shm = True
            elif k == "paced":
                sc.paced = True
        return sc


RPC_LINE = re.compile(r"^(eth|anvil|net|web3|debug|evm|txpool)_[A-Za-z]+$")


def rpc_counts(log: Path, start: int, end: int) -> dict[str, int]:
    """JSON-RPC methods anvil logged between two byte offsets of its log (anvil runs without --silent)."""
    out: dict[str, int] = {}
    with open(log, "rb") as f:
        f.seek(start)
        chunk = f.read(max(0, end - start)).decode(errors="replace")
    for line in chunk.splitlines():
        line = line.strip()
        if RPC_LINE.match(line):
            out[line] = out.get(line, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _log_size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _rate(a, b, wall) -> float | None:
    return round((b - a) / wall, 2) if a is not None and b is not None and wall > 0 else None


class Stack:
    """A fresh devnet + the bridge for one scenario (used by recovery.py as well)."""

    def __init__(self, tmp: Path, procs: Procs, n_sessions: int, wallets_per_session: int, *, block_time: float | None,
                 log_level: str, journal_dir: Path | None = None, silent_anvil: bool = False,
                 extra_accounts: int = 1) -> None:
        self.tmp, self.procs = tmp, procs
        self.n_sessions, self.wps = n_sessions, wallets_per_session
        n_wallets = n_sessions * wallets_per_session
        # anvil accounts: #0 deploys; #1..#n are the bridge's wallets; then `extra_accounts` more, funded
        self.accts = {i: anvil_account(i) for i in range(1, n_wallets + 1 + extra_accounts)}
        self.wallet_names = [f"w{i}" for i in range(1, n_wallets + 1)]
        self.keys = {f"w{i}": "0x" + bytes(self.accts[i].key).hex() for i in range(1, n_wallets + 1)}
        self.wallet_addr = {f"w{i}": self.accts[i].address for i in range(1, n_wallets + 1)}
        self.extra = [self.accts[i] for i in range(n_wallets + 1, n_wallets + 1 + extra_accounts)]
        self.per_session = [self.wallet_names[s * wallets_per_session:(s + 1) * wallets_per_session]
                            for s in range(n_sessions)]
        self.anvil_log = tmp / "anvil.log"
        self.node = Anvil("127.0.0.1", 0, block_time=block_time, silent=silent_anvil,
                          accounts=max(10, n_wallets + 1 + extra_accounts), log_path=self.anvil_log)
        self.log_level = log_level
        self.jdir = Path(tempfile.mkdtemp(prefix="fb-journal-", dir=journal_dir)) if journal_dir else tmp
        self.journal_db = self.jdir / "j.db"
        self.bridge = None
        self.port = None
        self.clients: list[FixClient] = []

    def start_chain(self):
        self.node.start()
        self.dep = deploy_devnet(self.node.rpc_url, fund=[a.address for a in self.accts.values()])
        self.spec = self.tmp / "devnet.toml"
        write_spec(self.dep, self.spec)
        self.sessions = write_sessions(self.tmp, self.n_sessions, self.keys, self.per_session)
        self.w3 = Web3(Web3.HTTPProvider(self.node.rpc_url, request_kwargs={"timeout": 30}))
        return self

    def spawn_bridge(self):
        """Start the bridge (same journal, FIX store and port every time); do not wait for it."""
        if self.port is None:
            self.port = free_port()
        self.blog = self.tmp / f"bridge-{int(time.time() * 1000)}.log"
        path = [str(SRC)] + ([os.environ["FIXBRIDGE_BENCH_PYTHONPATH"]] if os.environ.get("FIXBRIDGE_BENCH_PYTHONPATH") else [])
        env = {**os.environ, "FIXBRIDGE_LOG_LEVEL": self.log_level, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(path)}
        self.bridge = self.procs.spawn("bridge", bridge_cmd(self.spec, self.sessions, self.journal_db,
                                                            self.tmp / "state", self.port), self.blog, env=env)
        return self.bridge

    def start_bridge(self, timeout: float = 90.0):
        self.spawn_bridge()
        wait_port(self.port, self.bridge, "bridge", self.blog, timeout=timeout)
        return self.bridge

    def connect(self, stamped: bool = True, reset_seq: bool = True, timeout: float = 30.0) -> list[FixClient]:
        self.clients = []
        for s in range(self.n_sessions):
            c = FixClient("127.0.0.1", self.port, sender=f"CLIENT{s + 1}", data_dir=self.tmp / f"client{s + 1}",
                          reset_seq=reset_seq)
            if stamped:
                c._inbox = StampedQueue()  # before logon: every message is stamped on arrival
            self.clients.append(c.start(timeout=timeout))
        return self.clients

    def disconnect(self) -> None:
        for c in self.clients:
            try:
                c.stop()
            except Exception:  # noqa: BLE001
                pass
        self.clients = []

    def close(self, keep: bool = False) -> None:
        self.disconnect()
        self.procs.stop_all()
        self.node.stop()
        if self.jdir != self.tmp and not keep:
            shutil.rmtree(self.jdir, ignore_errors=True)


class Orders:
    """Makes and sends orders: round-robin over sessions, then over each session's wallets (Account);
    each wallet alternates buy and sell."""

    def __init__(self, stack: Stack, collector: "Collector", qty: Decimal, venue: str) -> None:
        self.stack, self.col, self.qty, self.venue = stack, collector, qty, venue
        self.seq = 0
        self.rr = 0
        self.count = {w: 0 for w in stack.wallet_names}

    def send(self, s: int, wallet: str, side: str, phase: str, prefix: str = "") -> Rec:
        self.seq += 1
        r = Rec(f"{prefix}{phase[0].upper()}{self.seq}", s, wallet, side, phase)
        self.col.add(r)
        msg = new_order_single(r.cl, SYMBOL, side, self.qty, tif="3", account=wallet,
                               ex_destination=None if self.venue == "auto" else self.venue)
        r.send_ns = time.time_ns()
        self.stack.clients[s].send(msg)
        return r

    def next(self, phase: str, prefix: str = "") -> Rec:
        st = self.stack
        s = self.rr % st.n_sessions
        w = st.per_session[s][(self.rr // st.n_sessions) % st.wps]
        self.rr += 1
        side = "1" if self.count[w] % 2 == 0 else "2"
        self.count[w] += 1
        return self.send(s, w, side, phase, prefix)

    def warm_up(self, timeout: float = 60.0) -> list[Rec]:
        """A buy on every wallet, then a sell on every wallet: the router approvals (USDC, then WETH),
        mined before the measurement."""
        warm = []
        for side in ("1", "2"):
            batch = []
            for s, wallets in enumerate(self.stack.per_session):
                for w in wallets:
                    batch.append(self.send(s, w, side, "warmup"))
                    self.count[w] += 1
            for r in batch:
                if not r.done.wait(timeout):
                    raise TimeoutError(f"warm-up order {r.cl} got no terminal report in {timeout:.0f} s")
            warm += batch
        bad = [r for r in warm if r.status != "2"]
        if bad:
            raise RuntimeError(f"warm-up orders did not fill: {[(r.cl, r.status, r.text) for r in bad]}")
        return warm


def run_scenario(sc: Scenario, args, tmp_root: Path, procs: Procs, say) -> dict:
    tmp = tmp_root / re.sub(r"[^A-Za-z0-9x]+", "_", sc.name)
    tmp.mkdir(parents=True)
    n_orders = sc.orders or args.orders
    # extra accounts: #1 the one-in-flight loop, #2 the raw pipelined sender
    st = Stack(tmp, procs, sc.sessions, sc.wallets_per_session, block_time=1, log_level=args.bridge_log_level,
               journal_dir=Path("/dev/shm") if sc.shm else args.journal_dir, extra_accounts=2)
    clock = collector = None
    try:
        st.start_chain()
        w3, node = st.w3, st.node
        if sc.gas_limit:  # after the deployment, whose contract creations need more than a small block holds
            node.rpc("anvil_setBlockGasLimit", [hex(sc.gas_limit)])
            n0 = w3.eth.block_number
            while w3.eth.block_number < n0 + 2:
                time.sleep(0.1)
        gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
        if sc.gas_limit and gas_limit != sc.gas_limit:
            raise RuntimeError(f"anvil_setBlockGasLimit({sc.gas_limit}) did not take: blocks have {gas_limit}")
        say(f"[{sc.name}] anvil {node.rpc_url} (block time 1 s, gas limit {gas_limit:,}), devnet deployed, at block "
            f"{w3.eth.block_number}; {sc.sessions} session(s) x {sc.wallets_per_session} wallet(s)")
        bridge = st.start_bridge()
        clock = BlockClock(node.rpc_url).start_and_wait()
        collector = Collector(st.connect())
        collector.start()
        orders = Orders(st, collector, Decimal(args.qty), args.venue)
        warm = orders.warm_up()
        say(f"[{sc.name}] warm-up: {len(warm)} orders filled (router approvals done)")
        done_before = len(warm)

        # ---- paced phases: latency with no queue in front of the bridge -------------------------
        phases: dict[str, list[Rec]] = {}
        for rate, secs in (args.paced if sc.paced else []):
            name = f"paced {rate:g}/s"
            recs: list[Rec] = []
            t0 = time.monotonic()
            for i in range(int(rate * secs)):
                while time.monotonic() < t0 + i / rate:
                    time.sleep(0.0005)
                recs.append(orders.next("paced"))
            done_before += len(recs)
            if not collector.wait_terminal(done_before, 60):
                say(f"[{sc.name}] {name}: not every order ended within 60 s")
            phases[name] = recs
            time.sleep(1.5)
            say(f"[{sc.name}] {name}: {len(recs)} orders")

        # ---- burst: as fast as the client can send ---------------------------------------------
        time.sleep(1.0)
        log_start = _log_size(st.anvil_log)
        spy = start_profiler(bridge.pid, tmp / "bridge.pyspy.txt", procs) if sc.profile else None
        cpu0 = {"bridge": cpu_seconds(bridge.pid), "anvil": cpu_seconds(node.pid), "bench": sum(os.times()[:2]),
                "py-spy": cpu_seconds(spy.pid) if spy else None}
        sys0, wall0, load0 = system_cpu(), time.time(), loadavg()
        burst: list[Rec] = []
        t_send0 = time.time_ns()
        for _ in range(n_orders):
            burst.append(orders.next("burst"))
        t_send1 = time.time_ns()
        say(f"[{sc.name}] burst: {n_orders} orders sent in {(t_send1 - t_send0) / 1e9:.2f} s; waiting for fills")
        expected = done_before + len(burst)
        deadline = time.monotonic() + args.timeout
        last_report = time.monotonic()
        while not collector.wait_terminal(expected, 2.0):
            if time.monotonic() > deadline:
                say(f"[{sc.name}] timeout: {sum(1 for r in burst if r.done_ns)}/{len(burst)} terminal")
                break
            if bridge.poll() is not None:
                raise RuntimeError(f"the bridge exited with {bridge.returncode}")
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                say(f"[{sc.name}]   {sum(1 for r in burst if r.done_ns)}/{len(burst)} terminal")
        wall1 = time.time()
        cpu1 = {"bridge": cpu_seconds(bridge.pid), "anvil": cpu_seconds(node.pid), "bench": sum(os.times()[:2]),
                "py-spy": cpu_seconds(spy.pid) if spy else None}
        profile = stop_profiler(spy, tmp / "bridge.pyspy.txt", procs) if spy else None
        sys1, load1 = system_cpu(), loadavg()
        log_end = _log_size(st.anvil_log)
        phases["burst"] = burst
        say(f"[{sc.name}] burst done in {wall1 - wall0:.1f} s")

        # ---- baseline: one transaction in flight, a plain web3 loop -------------------------------
        time.sleep(1.5)
        loop = PlainLoop(node.rpc_url, st.dep, "0x" + bytes(st.extra[0].key).hex())
        t0 = time.perf_counter()
        base_receipts = [loop.swap("1" if i % 2 == 0 else "2", Decimal(args.qty)) for i in range(args.baseline_swaps)]
        base_elapsed = time.perf_counter() - t0
        say(f"[{sc.name}] baseline: {args.baseline_swaps} swaps one at a time in {base_elapsed:.1f} s")

        # ---- stop the bridge, then read the chain and the journal --------------------------------
        st.disconnect()
        procs.stop(bridge, timeout=40)
        collector.stop()  # its polling loop would take CPU from the raw sender

        # ---- the physical limit: raw swaps, pipelined, from a third funded account, bridge stopped ------
        raw = None
        if args.raw_swaps != 0:
            time.sleep(1.5)
            rp = RawPipelined(node.rpc_url, st.dep, "0x" + bytes(st.extra[1].key).hex())
            sample = [r.tx for r in burst if r.tx][:50]  # the bridge's swaps: their gas limit, their gas used
            tx_gas = [int(w3.eth.get_transaction(h)["gas"]) for h in sample]
            used = [int(w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in sample]
            raw = rp.run(args.raw_swaps or n_orders, Decimal(args.qty), clock, gas_limit,
                         min_blocks=0 if args.raw_swaps else RAW_MIN_FULL_BLOCKS, batch=args.raw_batch,
                         tx_gas=int(statistics.median(tx_gas)) if tx_gas else None,
                         gas_used_guess=int(statistics.median(used)) if used else None, pids={"anvil": node.pid})
            say(f"[{sc.name}] raw pipelined: {raw['mined']}/{raw['swaps']} swaps mined in {raw['all_mined_s']:.1f} s "
                f"(all sent after {raw['all_sent_s']:.2f} s); steady {_get(raw, 'steady', 'swaps_per_second')} swaps/s "
                f"= {_get(raw, 'steady', 'pct_of_capacity_mean')} % of capacity; per block "
                f"{raw.get('swaps_per_block')}")
        clock.stop()
        result = analyse(sc, w3, st.dep, clock, collector, warm, phases, st.wallet_addr, st.journal_db, gas_limit)
        result["baseline_one_in_flight"] = {
            "swaps": len(base_receipts), "seconds": round(base_elapsed, 2),
            "swaps_per_second": round(len(base_receipts) / base_elapsed, 3) if base_elapsed else None,
            "gas_per_swap_median": int(statistics.median(int(r["gasUsed"]) for r in base_receipts)) if base_receipts
            else None,
            "how": "web3 HTTPProvider; per swap: getTransactionCount, quote, estimateGas, latest block, sign, "
                   "sendRawTransaction, wait_for_transaction_receipt (10 ms polls)"}
        if raw is not None:
            raw["how"] = (f"one account, nonces counted locally, eth-account signing, JSON-RPC batches of "
                          f"{args.raw_batch} eth_sendRawTransaction over one HTTP keep-alive connection (requests), a sender thread "
                          "overlapping the signing; quotes and gas estimates taken once before the clock; same swaps "
                          "and gas limit per swap as the bridge; run on this scenario's chain after the bridge stopped")
            result["raw_pipelined"] = raw
            b_rate = _get(result, "phases", "burst", "steady", "swaps_per_second")
            r_rate = _get(raw, "steady", "swaps_per_second")
            result["bridge_pct_of_raw_limit"] = round(100 * b_rate / r_rate, 1) if b_rate and r_rate else None
        wall = wall1 - wall0
        ncpu = os.cpu_count() or 1
        busy = round((sys1[0] - sys0[0]) / (sys1[1] - sys0[1]) * ncpu, 2) if sys0 and sys1 else None
        ours = [x for x in (_rate(cpu0["bridge"], cpu1["bridge"], wall), _rate(cpu0["anvil"], cpu1["anvil"], wall),
                            _rate(cpu0["bench"], cpu1["bench"], wall),
                            _rate(cpu0["py-spy"], cpu1["py-spy"], wall) if spy else 0.0) if x is not None]
        result["cpu"] = {
            "window_s": round(wall, 2),
            "bridge_cores": _rate(cpu0["bridge"], cpu1["bridge"], wall),
            "anvil_cores": _rate(cpu0["anvil"], cpu1["anvil"], wall),
            "bench_client_cores": _rate(cpu0["bench"], cpu1["bench"], wall),
            "py_spy_cores": _rate(cpu0["py-spy"], cpu1["py-spy"], wall) if spy else None,
            "machine_busy_cores": busy,
            "others_cores": round(busy - sum(ours), 2) if busy is not None else None,
            "machine_cores": ncpu,
            "loadavg_before": load0, "loadavg_after": load1,
            "note": "cores = CPU seconds / wall seconds over the burst (first send to last terminal report); "
                    "others_cores = the rest of the machine (other people's tests on this shared machine)",
        }
        rpc = rpc_counts(st.anvil_log, log_start, log_end)
        n_burst = max(1, len(burst))
        result["rpc_during_burst"] = {
            "total": sum(rpc.values()), "per_order": round(sum(rpc.values()) / n_burst, 2),
            "by_method_per_order": {k: round(v / n_burst, 2) for k, v in rpc.items()},
            "note": "every JSON-RPC request anvil logged during the burst window (bridge intake, block watcher, "
                    "settlement); the benchmark makes none then (its block clock is a websocket push)",
        }
        if profile:
            result["bridge_profile"] = profile
        log_text = st.blog.read_text(errors="replace")
        result["bridge_log_error_lines"] = sum(1 for ln in log_text.splitlines()
                                               if "error" in ln.lower() or "traceback" in ln.lower())
        result["bridge_log_replacements"] = sum(1 for ln in log_text.splitlines()
                                                if "re-pric" in ln.lower() or "replacement" in ln.lower())
        return result
    finally:
        if collector is not None:
            collector.stop()
        if clock is not None:
            clock.stop()
        st.close(keep=args.keep)


# ---------------------------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------------------------
def _ts_ns(s: str) -> int:
    d = datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def _ms(ns_list: list[int]) -> dict:
    s = summary([v for v in ns_list if v is not None])
    return {k: v for k, v in s.items() if k in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "min_ms")}


def steady_blocks(bl: list[int]) -> list[int]:
    """The steady part of a run: its blocks without the first and last tenth (at least one block each:
    the ramp-up while the FIX thread journals the burst, and the drain)."""
    k = max(1, -(-len(bl) // 10))
    return bl[k:-k] if len(bl) > 2 * k else []


def analyse(sc, w3, dep, clock, col, warm, phases: dict[str, list[Rec]], wallet_addr, db, gas_limit) -> dict:
    ours = {a.lower() for a in wallet_addr.values()}
    router = dep.router.lower()
    measured = [r for recs in phases.values() for r in recs]
    first = min((r.block for r in measured if r.block), default=None)
    last = max((r.block for r in measured if r.block), default=None)
    blocks: dict[int, dict] = {}
    if first is not None:
        for n in range(first - 1, last + 2):
            b = w3.eth.get_block(n, full_transactions=True)
            if b is None:
                continue
            rcpts = w3.provider.make_request("eth_getBlockReceipts", [hex(n)])["result"] or []
            gas_by_tx = {r["transactionHash"].lower(): int(r["gasUsed"], 16) for r in rcpts}
            swaps = [t for t in b["transactions"] if t["from"].lower() in ours and (t["to"] or "").lower() == router]
            blocks[n] = {"block": n, "seen_ns": clock.seen.get(n), "timestamp": int(b["timestamp"]),
                         "txs": len(b["transactions"]), "our_swaps": len(swaps),
                         "our_swap_gas": [gas_by_tx[t["hash"].to_0x_hex().lower()] for t in swaps],
                         "gas_used": int(b["gasUsed"]), "gas_limit": int(b["gasLimit"]),
                         "base_fee_gwei": round(int(b.get("baseFeePerGas", 0)) / 1e9, 4)}
    all_gas = [g for b in blocks.values() for g in b["our_swap_gas"]]
    gas_per_swap = int(statistics.median(all_gas)) if all_gas else None
    capacity = gas_limit // gas_per_swap if gas_per_swap else None

    def phase(recs: list[Rec]) -> dict:
        filled = [r for r in recs if r.status == "2" and r.fill_ns and r.block is not None]
        bl = sorted({r.block for r in filled})
        out: dict = {"orders": len(recs), "filled": len(filled),
                     "not_filled_count": sum(1 for r in recs if r.status != "2"),
                     "not_filled": [{"cl": r.cl, "status": r.status, "text": r.text} for r in recs
                                    if r.status != "2"][:20]}
        if not filled:
            return out
        per_block = {n: sum(1 for r in filled if r.block == n) for n in range(bl[0], bl[-1] + 1)}
        out["blocks"] = [bl[0], bl[-1]]
        out["swaps_per_block"] = [per_block[n] for n in range(bl[0], bl[-1] + 1)]
        steady = steady_blocks(list(range(bl[0], bl[-1] + 1)))
        if steady and all(clock.seen.get(n) for n in [steady[0] - 1] + steady):
            span = (clock.seen[steady[-1]] - clock.seen[steady[0] - 1]) / 1e9
            n_steady = sum(per_block[n] for n in steady)
            out["steady"] = {"blocks": [steady[0], steady[-1]], "block_count": len(steady), "swaps": n_steady,
                             "seconds": round(span, 3), "swaps_per_second": round(n_steady / span, 2),
                             "swaps_per_block_mean": round(n_steady / len(steady), 2),
                             "swaps_per_block_min": min(per_block[n] for n in steady),
                             "swaps_per_block_max": max(per_block[n] for n in steady)}
            if capacity:
                fills = [per_block[n] / capacity for n in steady]
                gas_fill = [blocks[n]["gas_used"] / blocks[n]["gas_limit"] for n in steady if n in blocks]
                out["steady"]["block_capacity_swaps"] = capacity
                out["steady"]["pct_of_capacity_mean"] = round(100 * sum(fills) / len(fills), 1)
                out["steady"]["pct_of_capacity_min"] = round(100 * min(fills), 1)
                out["steady"]["block_gas_used_pct_mean"] = round(100 * sum(gas_fill) / len(gas_fill), 1)
        t_first_send = min(r.send_ns for r in recs)
        t_last_fill = max(r.fill_ns for r in filled)
        out["overall_swaps_per_second"] = round(len(filled) / ((t_last_fill - t_first_send) / 1e9), 2)
        e2e = [r.fill_ns - r.send_ns for r in filled]
        incl = [clock.seen[r.block] - r.send_ns for r in filled if clock.seen.get(r.block)]
        added = [r.fill_ns - clock.seen[r.block] for r in filled if clock.seen.get(r.block)]
        ack = [r.ack_ns - r.send_ns for r in recs if r.ack_ns]
        out["latency_ms"] = {"ack": _ms(ack), "send_to_trade": _ms(e2e), "inclusion": _ms(incl),
                             "added_beyond_inclusion": _ms(added)}
        out["added_breakdown_ms"] = added_breakdown(db, filled, clock)
        out["intake"] = intake_rates(db, recs)
        out["intake_breakdown_ms"] = intake_breakdown(db, recs)
        return out

    return {
        "scenario": sc.name, "sessions": sc.sessions, "wallets_per_session": sc.wallets_per_session,
        "block_gas_limit": gas_limit, "gas_limit_lowered_to": sc.gas_limit,
        "journal": "tmpfs (/dev/shm): no fsync" if sc.shm else "disk",
        "gas_per_swap_median": gas_per_swap, "gas_per_swap_min": min(all_gas) if all_gas else None,
        "gas_per_swap_max": max(all_gas) if all_gas else None,
        "block_capacity_swaps": capacity,
        "warmup_orders": len(warm),
        "phases": {name: phase(recs) for name, recs in phases.items()},
        "blocks": [{k: v for k, v in b.items() if k not in ("our_swap_gas", "seen_ns")} | {
            "seen_ms_after_previous": round((b["seen_ns"] - blocks[n - 1]["seen_ns"]) / 1e6, 1)
            if b["seen_ns"] and n - 1 in blocks and blocks[n - 1]["seen_ns"] else None}
            for n, b in sorted(blocks.items())],
        "fix_other_messages": col.other[:10],
    }


def added_breakdown(db: Path, filled: list[Rec], clock: BlockClock) -> dict:
    """block announced -> receipt row (the watcher sees the block, fetches receipts, journals them one by one)
    -> ER Trade row (settle: fill, transition, report) -> client."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stages: dict[str, list[int]] = {"block_to_receipt_row": [], "receipt_row_to_er_trade_row": [],
                                        "er_trade_row_to_client": []}
        rows = {tx_hash.lower(): _ts_ns(ts) for tx_hash, ts in con.execute("SELECT tx_hash, ts FROM receipts")}
        ers: dict[str, int] = {}
        for cl, ts in con.execute("SELECT cl_ord_id, ts FROM fix_messages WHERE direction='out' AND msg_type='8' "
                                  "AND exec_type='F'"):
            ers.setdefault(cl, _ts_ns(ts))
        for r in filled:
            seen, rc, er = clock.seen.get(r.block), rows.get(r.tx or ""), ers.get(r.cl)
            if seen and rc:
                stages["block_to_receipt_row"].append(rc - seen)
            if rc and er:
                stages["receipt_row_to_er_trade_row"].append(er - rc)
            if er and r.fill_ns:
                stages["er_trade_row_to_client"].append(r.fill_ns - er)
        return {k: _ms(v) for k, v in stages.items()}
    finally:
        con.close()
def start_profiler(pid: int, out: Path, procs: Procs):
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("  (py-spy not installed: no profile)", flush=True)
        return None
    return procs.spawn("py-spy", [str(exe), "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "200",
                                  "--nonblocking", "--threads", "--nolineno", os.environ.get("FIXBRIDGE_BENCH_SPY_MODE", "--idle")], out.with_suffix(".log"))


def stop_profiler(spy, out: Path, procs: Procs) -> dict | None:
    """py-spy's collapsed stacks (idle samples included, so a thread's samples are its wall time) ->
    for each thread, the share of its time spent in (under) each frame."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(20)
    except Exception:  # noqa: BLE001
        pass
    procs.stop(spy)
    if not out.exists():
        return None
    per_thread: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for line in out.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = stack.split(";")
        m = re.match(r"thread \(\d+\):?\s*(.*)", frames[0])
        tname = (m.group(1).strip() if m else frames[0]) or "quickfix (native thread)"
        tname = re.sub(r"-w\d+$", "-w*", tname)  # all intake workers together
        totals[tname] = totals.get(tname, 0) + n
        d = per_thread.setdefault(tname, {})
        for key in dict.fromkeys(re.sub(r"\s+", " ", f) for f in frames[1:] if f):
            d[key] = d.get(key, 0) + n
    interesting = re.compile(r"fixbridge/|execution\.py|tracking\.py|watcher\.py|do_commit|make_request \(web3/providers|"
                             r"acquire|sendToTarget|Condition\.wait|sign_transaction|Queue\.get|_fsync|sleep")
    out_threads = {}
    for t, d in sorted(totals.items(), key=lambda kv: -kv[1]):
        if d is None or totals[t] < 50:
            continue
        rows = sorted(((f, c) for f, c in per_thread[t].items() if interesting.search(f)), key=lambda kv: -kv[1])
        out_threads[t] = {"samples": totals[t],
                          "frames": [{"frame": f, "pct_of_thread": round(100 * c / totals[t], 1)} for f, c in rows[:40]]}
    return {"rate_hz": 200, "threads": out_threads,
            "note": "py-spy --idle, bridge process, during the burst: a frame's pct_of_thread is the share of that "
                    "thread's wall time spent in it or below it (waiting included: HTTP to anvil, SQLite commit with "
                    "its fsync, the engine lock); intake workers are merged"}


INTAKE_STAGES = [  # (key, label, from, to); journal timestamps say when each step happened (the rows are
    # group-committed after it, see fixbridge/journal/batch.py)
    ("fix_in_to_order_row", "inbound 35=D journaled, parsed (FIX thread)", "fix_in", "created"),
    ("queued", "commit of the order row, wait in the wallet's queue", "created", "quote"),
    ("quote_to_new", "route, risk, funds (reads pinned to one block)", "quote", "new"),
    ("new_to_signed", "gas (reused or simulated), sign, queue the write-ahead row", "new", "signed"),
    ("signed_to_er_new", "group commit, dispatch, ER New on the wire", "signed", "er_new"),
]


def intake_breakdown(db: Path, recs: list[Rec]) -> dict:
    """Where the intake worker's time goes per order, and its service time (the gap between one
    order's signed transaction and the next one's, per wallet)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cl = {r.cl: r for r in recs}
        pts: dict[str, dict[str, int]] = {}
        for c, oid, created in con.execute("SELECT cl_ord_id, order_id, created_at FROM orders"):
            if c in cl:
                pts[oid] = {"created": _ts_ns(created), "_cl": c}
        fix_in = {c: _ts_ns(ts) for c, ts in con.execute(
            "SELECT cl_ord_id, ts FROM fix_messages WHERE direction='in' AND msg_type='D'") if c in cl}
        er_new = {oid: _ts_ns(ts) for oid, ts in con.execute(
            "SELECT order_id, MIN(ts) FROM fix_messages WHERE direction='out' AND exec_type='0' GROUP BY order_id")}
        quote = {oid: _ts_ns(ts) for oid, ts in con.execute(
            "SELECT order_id, MIN(ts) FROM order_events WHERE kind='quote' GROUP BY order_id")}
        new = {oid: _ts_ns(ts) for oid, ts in con.execute(
            "SELECT order_id, MIN(ts) FROM order_events WHERE kind='transition' AND to_status='New' GROUP BY order_id")}
        signed = {}
        for oid, ts, wallet in con.execute("SELECT order_id, created_at, wallet FROM transactions WHERE purpose='swap' "
                                           "ORDER BY id"):
            signed.setdefault(oid, (_ts_ns(ts), wallet))  # the order's first swap, not a re-priced copy
        stages: dict[str, list[int]] = {k: [] for k, *_ in INTAKE_STAGES}
        by_wallet: dict[str, list[int]] = {}
        for oid, p in pts.items():
            p = dict(p)
            if p["_cl"] in fix_in:
                p["fix_in"] = fix_in[p["_cl"]]
            for key, src in (("er_new", er_new), ("quote", quote), ("new", new)):
                if oid in src:
                    p[key] = src[oid]
            if oid in signed:
                p["signed"] = signed[oid][0]
                by_wallet.setdefault(signed[oid][1], []).append(signed[oid][0])
            for key, _, a, b in INTAKE_STAGES:
                if a in p and b in p:
                    stages[key].append(p[b] - p[a])
        out = {key: {"label": label, **_ms(stages[key])} for key, label, *_ in INTAKE_STAGES}
        gaps = []
        for ts in by_wallet.values():
            ts.sort()
            gaps += [b - a for a, b in zip(ts, ts[1:])]
        out["service_time_per_order"] = {"label": "signed -> next order's signed, same wallet", **_ms(gaps)}
        return out
    finally:
        con.close()


def intake_rates(db: Path, recs: list[Rec]) -> dict:
    """How fast the bridge took orders in and signed their swaps (journal timestamps; each order's first
    swap transaction), and how many more transactions it signed for them (re-priced copies, no-ops)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cl = {r.cl for r in recs}
        created, first_swap, txs_per_order, replaced = [], {}, {}, 0
        q = ("SELECT o.cl_ord_id, o.created_at, t.created_at, t.status FROM orders o "
             "LEFT JOIN transactions t ON t.order_id = o.order_id AND t.purpose IN ('swap', 'cancel') ORDER BY t.id")
        seen = set()
        for c, oc, tc, tstatus in con.execute(q):
            if c not in cl:
                continue
            if c not in seen:
                seen.add(c)
                created.append(_ts_ns(oc))
            if tc:
                first_swap.setdefault(c, _ts_ns(tc))
                txs_per_order[c] = txs_per_order.get(c, 0) + 1
                replaced += tstatus == "replaced"
        send = [r.send_ns for r in recs]
        out: dict = {}
        for name, ts in (("sent_by_client", send), ("order_rows_journaled", created),
                         ("swaps_signed", list(first_swap.values()))):
            ts = sorted(ts)
            if len(ts) >= 20:
                a, b = ts[len(ts) // 10], ts[len(ts) * 9 // 10]  # the middle 80%
                out[f"{name}_per_second"] = round((len(ts) * 8 // 10) / max(1e-9, (b - a) / 1e9), 1)
        out["transactions_signed"] = sum(txs_per_order.values())
        out["replaced_transactions"] = replaced
        out["orders_with_more_than_one_transaction"] = sum(1 for v in txs_per_order.values() if v > 1)
        return out
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------------
def _get(d: dict | None, *path, default=None):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def verdicts(runs: list[dict]) -> dict:
    out: dict = {}

    def best(rs):
        rs = [r for r in rs if _get(r, "phases", "burst", "steady", "pct_of_capacity_mean") is not None]
        return max(rs, key=lambda r: r["phases"]["burst"]["steady"]["pct_of_capacity_mean"]) if rs else None
    for key, rs in (("capacity_default_gas_limit", [r for r in runs if not r["gas_limit_lowered_to"] and r["journal"] == "disk"]),
                    ("capacity_lowered_gas_limit", [r for r in runs if r["gas_limit_lowered_to"] and r["journal"] == "disk"])):
        b = best(rs)
        if b:
            st = b["phases"]["burst"]["steady"]
            out[key] = {"scenario": b["scenario"], "gas_limit": b["block_gas_limit"],
                        "capacity_swaps_per_block": b["block_capacity_swaps"], "pct": st["pct_of_capacity_mean"],
                        "swaps_per_second": st["swaps_per_second"], "target_pct": 90,
                        "met": st["pct_of_capacity_mean"] >= 90}
            raw = _get(b, "raw_pipelined", "steady")
            if raw and raw.get("pct_of_capacity_mean") is not None:
                out[key] |= {"raw_limit_pct": raw["pct_of_capacity_mean"],
                             "raw_limit_swaps_per_second": raw["swaps_per_second"],
                             "reachable_on_this_machine": raw["pct_of_capacity_mean"] >= 90,
                             "bridge_pct_of_raw_limit": b.get("bridge_pct_of_raw_limit")}
    out["added_beyond_inclusion_p99"] = [
        {"scenario": r["scenario"], "phase": ph, "p99_ms": a["p99_ms"], "target_ms": 50, "met": a["p99_ms"] <= 50}
        for r in runs for ph, p in r["phases"].items()
        if (a := _get(p, "latency_ms", "added_beyond_inclusion")) and a.get("count")]
    return out


def reading(report: dict) -> list[str]:
    """Sentences drawn from the numbers of this run."""
    out = []
    runs = report["runs"]

    def rate(r):
        return _get(r, "phases", "burst", "steady", "swaps_per_second")
    base = next((r for r in runs if r["sessions"] == 1 and r["wallets_per_session"] == 1 and r["journal"] == "disk"
                 and not r["gas_limit_lowered_to"]), None)
    if base and rate(base):
        b = base["phases"]["burst"]
        ib = b.get("intake_breakdown_ms", {})
        out.append(
            f"One session, one wallet ({base['scenario']}): {rate(base)} swaps/s reach the chain, "
            f"{b['steady']['pct_of_capacity_mean']} % of the {base['block_capacity_swaps']} swaps a "
            f"{base['block_gas_limit']:,}-gas block holds ({base['gas_per_swap_median']:,} gas per swap), against "
            f"{base['baseline_one_in_flight']['swaps_per_second']} swaps/s for one transaction in flight "
            f"({rate(base) / base['baseline_one_in_flight']['swaps_per_second']:.0f}x). The bridge signs as fast as it "
            f"takes orders in: its intake worker spends {_get(ib, 'service_time_per_order', 'p50_ms')} ms per order "
            f"(p50; mean {_get(ib, 'service_time_per_order', 'mean_ms')}), with "
            f"{base['rpc_during_burst']['per_order']} JSON-RPC requests per order in the bridge as a whole; its "
            "journal rows are group-committed by one writer thread, the FIX edge's too (it does not wait for "
            "them; past 256 orders waiting inside it holds new ones in the socket). The bridge "
            f"process used {base['cpu']['bridge_cores']} of "
            f"{base['cpu']['machine_cores']} cores, anvil {base['cpu']['anvil_cores']}, other people's work on the "
            f"machine {base['cpu']['others_cores']}"
            + (": the bridge is one Python process, and with the GIL one core is what it can use — the limit is "
               "its CPU per order, not the chain or the journal's fsync." if base['cpu']['bridge_cores'] >= 0.9 else "."))
    lim = [r for r in runs if _get(r, "raw_pipelined", "steady", "swaps_per_second")]
    if lim:
        r0 = next((r for r in lim if not r["gas_limit_lowered_to"]), lim[0])
        x, st = r0["raw_pipelined"], r0["raw_pipelined"]["steady"]
        verdict = ("so the chain and a Python client on this machine keep a block of this size full at one block a "
                   "second: ≥ 90 % of capacity is within the machine's reach, and the gap to it is the bridge's own"
                   if st["pct_of_capacity_mean"] >= 90 else
                   "so even without the bridge this machine does not reach 90 % of capacity: the target is out of "
                   "reach here whatever the bridge does")
        out.append(
            f"The physical limit, in the same run ({r0['scenario']}'s chain after the bridge stopped): "
            f"{x['swaps']} raw swaps from one account, nonces counted locally, signed at {x['signed_per_second']:.0f}/s and all sent "
            f"after {x['all_sent_s']} s (batches of {x['batch_size']}, p50 reply {x['send_batch_reply_ms']['p50_ms']:.0f} "
            f"ms), filled the steady blocks with {st['swaps_per_block_mean']} swaps each ({st['full_blocks']} of "
            f"{st['block_count']} full), {st['swaps_per_second']} swaps/s = {st['pct_of_capacity_mean']} % of the "
            f"{st['block_capacity_swaps']} a {r0['block_gas_limit']:,}-gas block holds, with anvil at "
            f"{_get(x, 'cpu_cores', 'anvil')} cores and the client at {_get(x, 'cpu_cores', 'bench_client')}; {verdict}. "
            "Bridge against the limit (steady swaps/s): " + ", ".join(
                f"{r['scenario']} {r['bridge_pct_of_raw_limit']} %" if r.get("bridge_pct_of_raw_limit") is not None
                else f"{r['scenario']} – (no steady part)" for r in lim) + ".")
    more = [r for r in runs if (r["sessions"] > 1 or r["wallets_per_session"] > 1) and rate(r)]
    at_cap = bool(base and rate(base) and base.get("bridge_pct_of_raw_limit") and base["bridge_pct_of_raw_limit"] >= 95)
    if base and more:
        out.append(("More wallets or sessions cannot add throughput where one already fills the blocks: "
                    if at_cap else "More wallets or sessions do not add throughput: ") + ", ".join(
            f"{r['scenario']} {rate(r)} swaps/s (each intake worker "
            f"{_get(r, 'phases', 'burst', 'intake_breakdown_ms', 'service_time_per_order', 'mean_ms')} ms per order)"
            for r in more) + f" against {rate(base)} with one. Where they get less, the per-order work is "
            "serialised on what the workers share — the GIL above all (one Python process), then the journal's one "
            "writer thread and the engine lock the block watcher holds while it settles a block.")
    shm = next((r for r in runs if r["journal"] != "disk" and rate(r)), None)
    if base and shm and rate(base):
        out.append(f"With the journal on tmpfs (no fsync; {shm['scenario']}) the same bridge reaches {rate(shm)} "
                   f"swaps/s ({100 * (rate(shm) / rate(base) - 1):+.0f} %): "
                   + ("both fill the blocks, so fsync costs no throughput here." if at_cap and
                      (shm.get("bridge_pct_of_raw_limit") or 0) >= 95 else
                      "fsync is a part of the cost, not most of it."))
    low = next((r for r in runs if r["gas_limit_lowered_to"] and rate(r)), None)
    if low:
        st = low["phases"]["burst"]["steady"]
        it = low["phases"]["burst"].get("intake", {})
        out.append(
            f"With the block gas limit lowered to {low['block_gas_limit']:,} ({low['block_capacity_swaps']} swaps) the "
            f"bridge keeps every block full: {st['swaps_per_block_mean']} of our swaps per block, "
            f"{st['pct_of_capacity_mean']} % of capacity. The last slot stays empty because a block takes a "
            "transaction only if its gas limit fits in what is left, and the bridge signs swaps with the estimate "
            "+25 % +50,000 gas (~160,000). "
            + (f"The backlog this builds is re-priced needlessly: {it.get('replaced_transactions')} re-priced copies "
               f"were signed, journaled and broadcast for {low['phases']['burst']['orders']} orders "
               f"({it.get('orders_with_more_than_one_transaction')} orders had more than one), although nothing but "
               "the wallet's own earlier nonces held them back." if it.get("replaced_transactions") else
               f"The backlog this builds is not re-priced: only a wallet's lowest pending nonce is ever bumped, and "
               f"none of the {low['phases']['burst']['orders']} orders had more than one transaction."))
    lat = [(r["scenario"], ph, _get(p, "latency_ms", "added_beyond_inclusion"), p.get("added_breakdown_ms", {}))
           for r in runs for ph, p in r["phases"].items()]
    lat = [x for x in lat if x[2] and x[2].get("count")]
    if lat:
        out.append("Added beyond inclusion (block announced → Trade at the client): " + "; ".join(
            f"{sc} {ph}: p50 {a['p50_ms']:.0f}, p99 {a['p99_ms']:.0f} ms (block → receipt row p50 "
            f"{_get(bd, 'block_to_receipt_row', 'p50_ms', default=float('nan')):.0f}, receipt → report p50 "
            f"{_get(bd, 'receipt_row_to_er_trade_row', 'p50_ms', default=float('nan')):.0f})"
            for sc, ph, a, bd in lat[:4]) + ". The watcher polls the height every 2 ms once a block is due, fetches "
            "the block's receipts in one call and settles our orders in it one after another (their rows and reports "
            f"leave in groups of {SETTLE_FLUSH_EVERY}): the more of our swaps a block holds, the later its last report — paced, a "
            "block holds a few and the report follows within milliseconds; in a burst it holds a couple of hundred.")
    return out


def _f3(s: dict) -> str:
    return f"{s['p50_ms']:.0f} / {s['p90_ms']:.0f} / {s['p99_ms']:.0f}" if s and s.get("count") else "–"


def _f2(s: dict) -> str:
    return f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f}" if s and s.get("count") else "–"


def write_markdown(path: Path, report: dict) -> None:
    m, cfg = report["machine"], report["config"]
    L = [
        "# fixbridge throughput",
        "",
        f"{report['date']} · {m['cpu_count']} CPU ({m['cpu_model']}) · Python {m['python']} · quickfix {m['quickfix']} · "
        f"{m['anvil']} · journal SQLite (WAL, synchronous=FULL) · commit {m['git_commit']} ({m['bridge_source']}) · "
        f"load average {' / '.join(str(x) for x in report['loadavg_start'])} at the start, "
        f"{' / '.join(str(x) for x in report['loadavg_end'])} at the end (a shared machine: other people's tests ran too)",
        "",
        f"anvil `--block-time 1`, a fresh chain per scenario; {cfg['qty']} WETH market IOC orders on WETH/USDC "
        f"(ExDestination {cfg['venue']}), each wallet alternating buy and sell. Produced by "
        "`.venv/bin/python bench/throughput.py` in "
        f"{cfg['duration_s']:.0f} s (see bench/README.md). Scenario `SxW` = S FIX sessions × W wallets each; "
        "`:gas=N` = block gas limit lowered to N with `anvil_setBlockGasLimit` after the deployment.",
        "",
        "## Throughput and block capacity (burst: all orders sent at once)",
        "",
        "| scenario | block gas limit | gas/swap | capacity swaps/block | orders | filled | steady swaps/s | our swaps per steady block, mean (min–max) | **% of capacity** | orders signed/s | re-priced copies | bridge CPU cores | anvil cores | others' cores | RPC requests/order | one in flight swaps/s | raw pipelined swaps/s (limit) | raw pipelined % of capacity | **bridge % of raw limit** |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        b = r["phases"]["burst"]
        st = b.get("steady", {})
        L.append(
            f"| {r['scenario']} | {r['block_gas_limit']:,} | {r['gas_per_swap_median']:,} | {r['block_capacity_swaps']} | "
            f"{b['orders']} | {b['filled']} | {st.get('swaps_per_second', '–')} | "
            f"{st.get('swaps_per_block_mean', '–')} ({st.get('swaps_per_block_min', '–')}–{st.get('swaps_per_block_max', '–')}) | "
            f"**{st.get('pct_of_capacity_mean', '–')} %** | {_get(b, 'intake', 'swaps_signed_per_second', default='–')} | "
            f"{_get(b, 'intake', 'replaced_transactions', default='–')} | "
            f"{r['cpu']['bridge_cores']} | {r['cpu']['anvil_cores']} | {r['cpu']['others_cores']} | "
            f"{r['rpc_during_burst']['per_order']} | {r['baseline_one_in_flight']['swaps_per_second']} | "
            f"{_get(r, 'raw_pipelined', 'steady', 'swaps_per_second', default='–')} | "
            f"{_get(r, 'raw_pipelined', 'steady', 'pct_of_capacity_mean', default='–')} % | "
            f"**{r.get('bridge_pct_of_raw_limit') or '–'} %** |")
    L += ["", "Our swaps in each block of the burst (steady blocks between the brackets):", ""]
    for r in report["runs"]:
        b = r["phases"]["burst"]
        if not b.get("swaps_per_block"):
            continue
        first = b["blocks"][0]
        sb = _get(b, "steady", "blocks", default=[None, None])
        cells = []
        for i, n in enumerate(b["swaps_per_block"]):
            blk = first + i
            cells.append(("[" if blk == sb[0] else "") + str(n) + ("]" if blk == sb[1] else ""))
        L.append(f"- {r['scenario']} (capacity {r['block_capacity_swaps']}): " + " ".join(cells))
    raws = [(r["scenario"], r["raw_pipelined"]) for r in report["runs"] if r.get("raw_pipelined")]
    if raws:
        L += ["", "## The physical limit: raw pipelined transactions, same run, same chain", "",
              "After the bridge stopped, on each scenario's chain: one account, nonces counted locally, the same swaps "
              "signed with eth-account and sent in JSON-RPC batches of "
              f"{cfg.get('raw_batch', 50)} `eth_sendRawTransaction` as fast as the client can, then the blocks watched "
              "until all are mined. What a chain and a Python client on this machine can do without the bridge; "
              "steady blocks as for the bridge.", "",
              "| scenario | swaps | gas limit per swap | client signed/s | all sent after s | batch reply p50 / p99 ms | "
              "all mined after s | steady swaps/s | swaps per steady block, mean (min–max) | % of capacity | full steady "
              "blocks | anvil cores | client cores | send errors / reverted |",
              "|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for name, x in raws:
            st = x.get("steady", {})
            L.append(f"| {name} | {x['swaps']} | {', '.join(f'{g:,}' for g in x['gas_limit_per_swap'])} | "
                     f"{x['signed_per_second']} | {x['all_sent_s']} | {_f2(x['send_batch_reply_ms'])} | "
                     f"{x['all_mined_s']} | {st.get('swaps_per_second', '–')} | {st.get('swaps_per_block_mean', '–')} "
                     f"({st.get('swaps_per_block_min', '–')}–{st.get('swaps_per_block_max', '–')}) | "
                     f"{st.get('pct_of_capacity_mean', '–')} % | {st.get('full_blocks', '–')}/{st.get('block_count', '–')} | "
                     f"{_get(x, 'cpu_cores', 'anvil', default='–')} | {_get(x, 'cpu_cores', 'bench_client', default='–')} | "
                     f"{x['send_errors']} / {x['reverted']} |")
        L += ["", "Raw swaps in each block (steady blocks between the brackets):", ""]
        for name, x in raws:
            if not x.get("swaps_per_block"):
                continue
            sb = _get(x, "steady", "blocks", default=[None, None])
            cells = [("[" if x["blocks"][0] + i == sb[0] else "") + str(n) + ("]" if x["blocks"][0] + i == sb[1] else "")
                     for i, n in enumerate(x["swaps_per_block"])]
            L.append(f"- {name} (capacity {x.get('block_capacity_swaps')}): " + " ".join(cells))
    L += ["", "## Latency: NewOrderSingle → ExecutionReport Trade, against inclusion", "",
          "Inclusion = when the block holding the swap was announced (websocket newHeads, stamped by the benchmark) − "
          "when the order was sent. **Added** = when the Trade reached the client − when that block was announced. "
          "The last three columns split *added* with the journal's timestamps.", "",
          "| scenario | phase | orders | send→Trade p50 / p90 / p99 ms | inclusion p50 / p90 / p99 ms | **added p50 / p90 / p99 ms** | block → receipt row p50 / p99 | receipt row → ER Trade row p50 / p99 | ER row → client p50 / p99 |",
          "|---|---|---:|---|---|---|---|---|---|"]
    for r in report["runs"]:
        for ph, p in r["phases"].items():
            if not p.get("latency_ms"):
                continue
            lat, bd = p["latency_ms"], p["added_breakdown_ms"]
            L.append(f"| {r['scenario']} | {ph} | {p['orders']} | {_f3(lat['send_to_trade'])} | {_f3(lat['inclusion'])} | "
                     f"**{_f3(lat['added_beyond_inclusion'])}** | {_f2(bd['block_to_receipt_row'])} | "
                     f"{_f2(bd['receipt_row_to_er_trade_row'])} | {_f2(bd['er_trade_row_to_client'])} |")
    L += ["", "## Where an intake worker's time goes (burst, journal timestamps, ms)", "",
          "| scenario | " + " | ".join(lbl for _, lbl, *_ in INTAKE_STAGES[2:]) + " | service time per order (mean) |",
          "|---|" + "---:|" * (len(INTAKE_STAGES) - 1) + ""]
    for r in report["runs"]:
        ib = r["phases"]["burst"].get("intake_breakdown_ms", {})
        cells = [f"{_get(ib, k, 'p50_ms', default='–')}" for k, *_ in INTAKE_STAGES[2:]]
        L.append(f"| {r['scenario']} | " + " | ".join(cells) + f" | {_get(ib, 'service_time_per_order', 'mean_ms')} |")
    L += ["", "RPC requests per order during the burst (anvil's log): " + "; ".join(
        f"{r['scenario']}: " + ", ".join(f"{k} {v}" for k, v in r["rpc_during_burst"]["by_method_per_order"].items())
        for r in report["runs"][:1]) + "."]
    prof = [(r["scenario"], r["bridge_profile"]) for r in report["runs"] if r.get("bridge_profile")]
    for name, p in prof:
        L += ["", f"## Where the bridge's threads spend their time ({name}, py-spy during the burst)", "",
              "Share of each thread's wall time spent in (or under) a frame, waiting included.", ""]
        for t, d in p["threads"].items():
            if t == "MainThread":
                continue
            top = [f for f in d["frames"] if not re.search(r"_bootstrap|Thread\.run|_run \(|_process \(|BlockWatcher\._run",
                                                            f["frame"])][:12]
            L.append(f"- **{t}**: " + "; ".join(f"{f['frame'].split(' (')[0]} {f['pct_of_thread']} %" for f in top))
    L += ["", "## Targets", ""]
    v = report["verdicts"]
    for key, label in (("capacity_default_gas_limit", "≥ 90 % of block capacity at anvil's default 30M gas limit"),
                       ("capacity_lowered_gas_limit", "≥ 90 % of block capacity with a lowered gas limit")):
        if key in v:
            x = v[key]
            lim = ""
            if x.get("raw_limit_pct") is not None:
                reach = ("within reach on this machine" if x["reachable_on_this_machine"] else
                         "out of reach on this machine even without the bridge")
                lim = (f"; the raw pipelined limit in the same run: {x['raw_limit_pct']} % "
                       f"({x['raw_limit_swaps_per_second']} swaps/s), so 90 % is {reach}; "
                       f"the bridge got {x['bridge_pct_of_raw_limit']} % of that limit")
            L.append(f"- {label}: best {x['pct']} % ({x['scenario']}, {x['capacity_swaps_per_block']} swaps/block) — "
                     f"**{'met' if x['met'] else 'not met'}**{lim}")
    for x in v.get("added_beyond_inclusion_p99", []):
        L.append(f"- ≤ 50 ms p99 added beyond inclusion, {x['scenario']} {x['phase']}: {x['p99_ms']:.0f} ms — "
                 f"**{'met' if x['met'] else 'not met'}**")
    if report.get("reading"):
        L += ["", "## Reading it", ""] + [f"{i + 1}. {s}" for i, s in enumerate(report["reading"])]
    L.append("")
    path.write_text("\n".join(L))


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def _paced(text: str) -> tuple[float, float]:
    rate, _, secs = text.partition(":")
    try:
        return float(rate), float(secs or 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RATE:SECONDS, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fixbridge throughput benchmark (see bench/README.md)")
    ap.add_argument("--scenario", action="append", default=[], metavar="SxW[:gas=N][:orders=N][:profile]",
                    help=f"S sessions x W wallets each; gas: lower the block gas limit; orders: burst size; profile: "
                         f"py-spy the bridge during the burst. Repeatable (default: {' '.join(DEFAULT_SCENARIOS)})")
    ap.add_argument("--orders", type=int, default=3000, help="burst orders per scenario (unless :orders= says); "
                    "enough for several full blocks at the rate the bridge reaches")
    ap.add_argument("--paced", action="append", type=_paced, default=None, metavar="RATE:SECONDS",
                    help="a paced phase before the burst in the scenarios marked :paced, repeatable (default: 2:10, 10:10, 50:10 "
                         "and 100:10)")
    ap.add_argument("--baseline-swaps", type=int, default=4, help="swaps of the one-in-flight web3 loop")
    ap.add_argument("--raw-swaps", type=int, default=None, metavar="N",
                    help="swaps of the raw pipelined sender (the physical limit), run on each scenario's chain after "
                         f"the bridge; default: the scenario's burst size, or enough for {RAW_MIN_FULL_BLOCKS} full "
                         "blocks if that is more; 0 skips it")
    ap.add_argument("--raw-batch", type=int, default=50, help="eth_sendRawTransaction per JSON-RPC batch request")
    ap.add_argument("--qty", default="0.01", help="WETH per order")
    ap.add_argument("--venue", default="uniswap_v2", help="ExDestination of every order; 'auto' lets the bridge "
                    "route (it then quotes every venue of the instrument)")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for the burst's terminal reports")
    ap.add_argument("--bridge-log-level", default=os.environ.get("FIXBRIDGE_LOG_LEVEL", "INFO"))
    ap.add_argument("--journal-dir", type=Path, default=None, help="where the bridge's SQLite journal goes (default: "
                    "the temporary folder, on disk; e.g. /dev/shm to take fsync out, as an experiment)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (journals, logs, profiles)")
    ap.add_argument("--worktree", action="store_true", help="measure the working tree as it is (default: HEAD plus "
                    "untracked files, frozen with git archive; see the module docstring)")
    args = ap.parse_args(argv)
    args.paced = [p for p in (args.paced if args.paced is not None else [(2.0, 10.0), (10.0, 10.0), (50.0, 10.0), (100.0, 10.0)]) if p[0] > 0]
    scenarios = [Scenario.parse(s) for s in (args.scenario or DEFAULT_SCENARIOS)]

    def on_signal(*_):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="fixbridge-throughput-"))
    procs = Procs()
    started = time.monotonic()
    say = lambda s: print(f"[{time.monotonic() - started:6.1f}s] {s}", flush=True)  # noqa: E731
    try:
        info = source_info(machine_info())
        load_start = loadavg()
        say(f"machine: {info['cpu_count']} CPU, load average {load_start}; bridge source: {info['bridge_source']}; "
            f"work dir {tmp}")
        runs = []
        for sc in scenarios:
            r = run_scenario(sc, args, tmp, procs, say)
            runs.append(r)
            st = r["phases"]["burst"].get("steady", {})
            say(f"[{sc.name}] steady {st.get('swaps_per_second')} swaps/s = {st.get('pct_of_capacity_mean')} % of "
                f"{r['block_capacity_swaps']} swaps/block; added beyond inclusion p99 " + ", ".join(
                    f"{ph} {_get(p, 'latency_ms', 'added_beyond_inclusion', 'p99_ms')} ms"
                    for ph, p in r["phases"].items()) + f"; bridge {r['cpu']['bridge_cores']} cores")
        report = {
            "benchmark": "fixbridge throughput (bench/throughput.py)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": info,
            "loadavg_start": load_start, "loadavg_end": loadavg(),
            "config": {"scenarios": [s.name for s in scenarios], "orders": args.orders, "qty": args.qty,
                       "venue": args.venue, "paced": [f"{r:g}/s for {s:g} s" for r, s in args.paced],
                       "baseline_swaps": args.baseline_swaps,
                       "raw_swaps": args.raw_swaps if args.raw_swaps is not None else
                       f"the burst size, at least {RAW_MIN_FULL_BLOCKS} full blocks' worth",
                       "raw_batch": args.raw_batch, "symbol": SYMBOL, "block_time_s": 1,
                       "order": "market (40=1), IOC (59=3), Account per wallet, alternating buy/sell per wallet",
                       "journal": f"SQLite file (WAL, synchronous=FULL) in {args.journal_dir or 'a temporary folder on disk'}",
                       "bridge_log_level": args.bridge_log_level,
                       "steady": "the blocks holding the burst's swaps without the first and last tenth (at least one "
                                 "each)",
                       "capacity": "block gas limit // median gas used by our swaps"},
            "runs": runs,
        }
        report["verdicts"] = verdicts(runs)
        report["reading"] = reading(report)
        report["config"]["duration_s"] = round(time.monotonic() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(args.out / "throughput.md", report)
        print()
        print((args.out / "throughput.md").read_text())
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


if __name__ == "__main__":
    sys.exit(main())
