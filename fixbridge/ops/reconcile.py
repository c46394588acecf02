"""Reconciliation: the chain against the journal, over a block range.

What the chain says (eth_getLogs, receipts, nonces) for the bridge's wallets:
- every ERC-20 ``Transfer`` from or to a wallet,
- every Uniswap V2 ``Swap`` whose ``to`` is a wallet,
- how many transactions each wallet sent (its nonce at both ends of the range),
- the receipt of every journaled transaction of the range,

is matched against what the journal says (transactions, receipts, fills). Every difference is a
**break**:

| kind | meaning |
|---|---|
| ``unjournaled_tx`` | a wallet sent a transaction the journal has no row for (nonce count; its hash when the range is small enough to scan) |
| ``unjournaled_transfer_out`` / ``unjournaled_transfer_in`` | an ERC-20 transfer from / to a wallet in a transaction the journal does not know (a deposit shows as ``_in``) |
| ``unjournaled_swap`` | a Uniswap V2 or V3 Swap paying a wallet in a transaction the journal does not know |
| ``missing_fill`` | a Swap paying a wallet in a journaled transaction, with no journaled fill for it |
| ``fill_not_on_chain`` | a journaled fill whose log is not in its transaction's receipt |
| ``fill_mismatch`` | a journaled fill that differs from its Swap log (amounts, qty, price, block, pool, recipient, fee) |
| ``tx_not_on_chain`` | a transaction the journal says was broadcast or mined that the node does not know |
| ``tx_status_mismatch`` | journal and chain disagree on a transaction's status or block |
| ``receipt_mismatch`` | the journaled receipt differs from the node's (block, status, gas, price) |

Fills a reorg busted (``fills.busted_at``) are not expected on chain. Each run is recorded in the
journal's ``reconciliation_runs`` table with its results.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import requests
from eth_abi import decode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import and_, or_, select

from fixbridge.config import SessionsConfig, Spec
from fixbridge.journal import Journal
from fixbridge.journal import schema as db
from fixbridge.orders.units import from_units, price

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
SWAP_V2_TOPIC = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
SWAP_V3_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
SWAP_TOPICS = (SWAP_V2_TOPIC, SWAP_V3_TOPIC)  # in both, topic 2 is the recipient
POOL_VIEWS = {"factory": "0xc45a0155", "token0": "0x0dfe1681", "token1": "0xd21220a7"}
LOG_CHUNK = 5_000          # blocks per eth_getLogs call
SCAN_LIMIT = 2_000         # blocks scanned for an unjournaled transaction's hash
BATCH = 100                # JSON-RPC calls per HTTP batch

KINDS = ("unjournaled_tx", "unjournaled_transfer_out", "unjournaled_transfer_in", "unjournaled_swap", "missing_fill",
         "fill_not_on_chain", "fill_mismatch", "tx_not_on_chain", "tx_status_mismatch", "receipt_mismatch")
_NOT_SENT = ("signed", "dropped", "failed", "replaced")  # statuses that may rightly be absent on chain


class ReconcileError(Exception):
    """The reconciliation could not run (node unreachable, bad range)."""


@dataclass
class Break:
    kind: str
    detail: str
    tx_hash: str | None = None
    block: int | None = None
    wallet: str | None = None
    order_id: str | None = None
    exec_id: str | None = None
    journal: dict[str, Any] | None = None
    chain: dict[str, Any] | None = None


@dataclass
class Result:
    chain_id: int
    from_block: int
    to_block: int
    wallets: list[str]
    checked: dict[str, int] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_id: int | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def clean(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": "clean" if self.clean else "breaks", "chain_id": self.chain_id,
                "from_block": self.from_block, "to_block": self.to_block, "wallets": self.wallets,
                "checked": self.checked, "breaks": [asdict(b) for b in self.breaks], "notes": self.notes,
                "started_at": self.started_at}


# ============================================================================================
# A small JSON-RPC client (raw hex in, raw hex out; batched)
# ============================================================================================


class Rpc:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url, self.timeout = url, timeout
        self._http = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, params: list) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(calls), BATCH):
            part = calls[i:i + BATCH]
            payload = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in part]
            try:
                resp = self._http.post(self.url, json=payload, timeout=self.timeout)
                resp.raise_for_status()
                answers = resp.json()
            except (requests.RequestException, ValueError) as e:
                raise ReconcileError(f"node at {self.url}: {type(e).__name__}: {e}") from None
            if isinstance(answers, dict):  # some nodes answer a failed batch with one error object
                raise ReconcileError(f"node at {self.url}: {answers.get('error')}")
            by_id = {a.get("id"): a for a in answers}
            for req in payload:
                a = by_id.get(req["id"], {})
                if "error" in a:
                    raise ReconcileError(f"{req['method']} failed at {self.url}: {a['error']}")
                out.append(a.get("result"))
        return out


def swap_amounts(log: dict) -> tuple[int, int, int, int] | None:
    """(amount0In, amount1In, amount0Out, amount1Out) of a Uniswap V2 or V3 Swap log; None for other logs.
    V3's amounts are signed (positive into the pool)."""
    topic = log["topics"][0] if log.get("topics") else None
    data = bytes.fromhex(log["data"][2:])
    if topic == SWAP_V2_TOPIC:
        return tuple(decode(["uint256"] * 4, data))  # type: ignore[return-value]
    if topic == SWAP_V3_TOPIC:
        a0, a1 = decode(["int256", "int256"], data[:64])
        return max(a0, 0), max(a1, 0), max(-a0, 0), max(-a1, 0)
    return None


def _int(h: str | None) -> int | None:
    return None if h is None else int(h, 16)


def _topic(addr: str) -> str:
    return "0x" + "0" * 24 + addr[2:].lower()


def _addr(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


# ============================================================================================
# Block range from times
# ============================================================================================


def block_time(rpc: Rpc, n: int) -> int:
    b = rpc.call("eth_getBlockByNumber", [hex(n), False])
    if b is None:
        raise ReconcileError(f"no block {n}")
    return int(b["timestamp"], 16)


def first_block_at_or_after(rpc: Rpc, ts: datetime, latest: int) -> int:
    """The first block whose timestamp is >= ts (latest + 1 if there is none)."""
    target = int(ts.timestamp()) if ts.timestamp() == int(ts.timestamp()) else int(ts.timestamp()) + 1
    lo, hi = 0, latest + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if block_time(rpc, mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def resolve_range(rpc: Rpc, *, from_block: int | None, to_block: int | None, since: datetime | None,
                  until: datetime | None, default_from: int = 0) -> tuple[int, int]:
    latest = int(rpc.call("eth_blockNumber", []), 16)
    if from_block is None:
        from_block = first_block_at_or_after(rpc, since, latest) if since is not None else default_from
    if to_block is None:
        to_block = first_block_at_or_after(rpc, until, latest) - 1 if until is not None else latest
    if to_block > latest:
        raise ReconcileError(f"--to-block {to_block} is past the chain's latest block {latest}")
    if from_block < 0 or to_block < from_block:
        raise ReconcileError(f"empty block range {from_block}..{to_block}")
    return from_block, to_block


# ============================================================================================
# The reconciliation
# ============================================================================================


def config_wallets(sessions: SessionsConfig | None, chain: str) -> list[str]:
    """Addresses of the configured wallets on ``chain`` whose keys can be resolved here."""
    if sessions is None:
        return []
    from eth_account import Account

    from fixbridge.config import ConfigError
    from fixbridge.config.sessions import wallet_key
    out = []
    for name, w in sessions.wallets.items():
        if w.chain != chain:
            continue
        try:
            out.append(Account.from_key(wallet_key(sessions, name)).address)
        except ConfigError:
            continue  # its key is not available to this operator: the journal's wallets still count
    return out


class Reconciler:
    def __init__(self, journal: Journal, spec: Spec, chain: str, rpc: Rpc | None = None,
                 sessions: SessionsConfig | None = None, extra_wallets: Iterable[str] = ()) -> None:
        self.j, self.spec, self.chain, self.chain_key = journal, spec, spec.chains[chain], chain
        self.rpc = rpc or Rpc(self.chain.rpc_url)
        self.sessions = sessions
        self.extra_wallets = [to_checksum_address(w) for w in extra_wallets]
        self.tokens = {t.address.lower(): t for t in spec.tokens.values() if t.chain == chain}
        self._pools: dict[str, dict[str, str | None]] = {}

    # ---- helpers ---------------------------------------------------------------------------
    def _pool(self, address: str) -> dict[str, str | None]:
        """factory, token0 and token1 of a V2 pair or V3 pool (both have these views); None if absent."""
        key = address.lower()
        if key not in self._pools:
            names = list(POOL_VIEWS)
            try:
                out = self.rpc.batch([("eth_call", [{"to": address, "data": POOL_VIEWS[n]}, "latest"]) for n in names])
            except ReconcileError:
                out = [None] * len(names)
            self._pools[key] = {n: (to_checksum_address("0x" + o[-40:]) if o and len(o) >= 42 else None)
                                for n, o in zip(names, out)}
        return self._pools[key]

    def _logs(self, lo: int, hi: int, topics: list) -> list[dict]:
        out = []
        for a in range(lo, hi + 1, LOG_CHUNK):
            b = min(hi, a + LOG_CHUNK - 1)
            out += self.rpc.call("eth_getLogs", [{"fromBlock": hex(a), "toBlock": hex(b), "topics": topics}]) or []
        return out

    def _amount(self, token: str, units: int) -> str:
        t = self.tokens.get(token.lower())
        return f"{from_units(units, t.decimals)} {t.symbol}" if t else f"{units} units of {token}"

    # ---- run -------------------------------------------------------------------------------
    def run(self, from_block: int, to_block: int, *, record: bool = True) -> Result:
        """Reconcile blocks from_block..to_block (inclusive); a run that fails is recorded as 'error'."""
        started = datetime.now(timezone.utc)
        try:
            return self._run(from_block, to_block, record=record)
        except ReconcileError as e:
            if record:
                self.j.record_reconciliation_run(started_at=started, chain_id=self.chain.chain_id,
                                                 from_block=from_block, to_block=to_block, status="error", breaks=0,
                                                 results={"error": str(e)})
            raise

    def _run(self, from_block: int, to_block: int, *, record: bool = True) -> Result:
        chain_id = self.chain.chain_id
        got = int(self.rpc.call("eth_chainId", []), 16)
        if got != chain_id:
            raise ReconcileError(f"the node at {self.chain.rpc_url} is chain {got}, the spec says {chain_id}")
        A, B = from_block, to_block
        t_lo, t_hi = block_time(self.rpc, A), block_time(self.rpc, B)

        # ---- the journal's side --------------------------------------------------------------
        with self.j.read_session() as s:
            jwallets = {w for (w,) in s.execute(select(db.Transaction.wallet).where(
                db.Transaction.chain_id == chain_id).distinct())}
            wallets = sorted(set(config_wallets(self.sessions, self.chain_key)) | jwallets | set(self.extra_wallets))
            res = Result(chain_id, A, B, wallets)
            # mined in the range by the journal's account; or without a block: still pending (whenever
            # signed), or given up (dropped/failed/replaced) while the range was being mined
            t_end = datetime.fromtimestamp(t_hi + 1, timezone.utc)
            no_block = db.Transaction.block_number.is_(None) & (db.Transaction.created_at < t_end)
            in_range = or_(db.Transaction.block_number.between(A, B),
                           no_block & db.Transaction.status.in_(("signed", "broadcast")),
                           no_block & (db.Transaction.created_at >= datetime.fromtimestamp(t_lo - 600, timezone.utc)))
            txs = {t.tx_hash: t for t in s.scalars(select(db.Transaction).where(
                db.Transaction.chain_id == chain_id, in_range))}
            # the fills of those transactions, and any other fill claiming a block of the range on this
            # chain (or on no journaled transaction at all)
            fills = list(s.execute(
                select(db.Fill, db.Order).join(db.Order, db.Order.order_id == db.Fill.order_id)
                .join(db.Transaction, db.Transaction.tx_hash == db.Fill.tx_hash, isouter=True)
                .where(or_(db.Fill.tx_hash.in_(list(txs) or ["-"]),
                           and_(db.Fill.block_number.between(A, B),
                                or_(db.Transaction.chain_id == chain_id, db.Transaction.id.is_(None)))))))
            receipts = {r.tx_hash: r for r in s.scalars(select(db.Receipt).where(
                db.Receipt.tx_hash.in_(list(txs) or ["-"])))}

        # ---- the chain's side ----------------------------------------------------------------
        wtopics = [_topic(w) for w in wallets]
        transfers_out = self._logs(A, B, [TRANSFER_TOPIC, wtopics]) if wallets else []
        transfers_in = self._logs(A, B, [TRANSFER_TOPIC, None, wtopics]) if wallets else []
        swaps = self._logs(A, B, [list(SWAP_TOPICS), None, wtopics]) if wallets else []
        # any transaction the logs mention that the journal knows under another block: in scope too
        mentioned = {l["transactionHash"] for l in transfers_out + transfers_in + swaps}
        missing = mentioned - set(txs)
        if missing:
            with self.j.read_session() as s:
                for t in s.scalars(select(db.Transaction).where(db.Transaction.tx_hash.in_(sorted(missing)))):
                    txs[t.tx_hash] = t
                for r in s.scalars(select(db.Receipt).where(db.Receipt.tx_hash.in_(sorted(missing)))):
                    receipts[r.tx_hash] = r
                fills += list(s.execute(select(db.Fill, db.Order).join(db.Order, db.Order.order_id == db.Fill.order_id)
                                        .where(db.Fill.tx_hash.in_(sorted(missing)))))
        hashes = sorted(txs)
        chain_rc = dict(zip(hashes, self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])))
        res.checked = {"transactions": len(txs), "fills": len(fills), "swaps": len(swaps),
                       "transfers": len(transfers_out) + len(transfers_in), "wallets": len(wallets)}

        self._check_transactions(res, txs, receipts, chain_rc, A, B)
        self._check_fills(res, fills, chain_rc, txs)
        self._check_logs(res, txs, fills, transfers_out, transfers_in, swaps)
        self._check_nonces(res, txs, chain_rc, wallets, A, B)
        res.breaks.sort(key=lambda b: (b.block if b.block is not None else -1, KINDS.index(b.kind)))
        if record:
            res.run_id = self.j.record_reconciliation_run(
                started_at=res.started_at, chain_id=chain_id, from_block=A, to_block=B,
                status="clean" if res.clean else "breaks", breaks=len(res.breaks), results=res.as_dict())
        return res

    # ---- journaled transactions against their receipts -----------------------------------------
    def _check_transactions(self, res: Result, txs, receipts, chain_rc, A: int, B: int) -> None:
        for h, t in sorted(txs.items(), key=lambda kv: (kv[1].block_number or 0, kv[1].nonce)):
            rc = chain_rc.get(h)
            jt = {"status": t.status, "block_number": t.block_number, "nonce": t.nonce, "purpose": t.purpose}
            if rc is None:
                if t.status not in _NOT_SENT:
                    res.breaks.append(Break("tx_not_on_chain", f"journal says {t.purpose} tx {t.status}"
                                            + (f" in block {t.block_number}" if t.block_number is not None else "")
                                            + ", the node does not know it", h, t.block_number, t.wallet, t.order_id,
                                            journal=jt))
                continue
            c_status, c_block = _int(rc["status"]), _int(rc["blockNumber"])
            ct = {"status": "mined" if c_status == 1 else "reverted", "block_number": c_block}
            if not (A <= c_block <= B) and not (t.block_number is not None and A <= t.block_number <= B):
                continue  # on chain outside the range: another run's business
            if t.status != ct["status"] or t.block_number != c_block:
                res.breaks.append(Break("tx_status_mismatch", f"journal: {t.status}"
                                        + (f" in block {t.block_number}" if t.block_number is not None else "")
                                        + f"; chain: {ct['status']} in block {c_block}", h, c_block, t.wallet,
                                        t.order_id, journal=jt, chain=ct))
            r = receipts.get(h)
            if r is not None:
                mine = {"block_number": r.block_number, "status": r.status, "gas_used": r.gas_used,
                        "effective_gas_price": r.effective_gas_price, "block_hash": r.block_hash}
                theirs = {"block_number": c_block, "status": c_status, "gas_used": _int(rc["gasUsed"]),
                          "effective_gas_price": _int(rc.get("effectiveGasPrice")), "block_hash": rc["blockHash"]}
                diff = sorted(k for k in mine if mine[k] != theirs[k])
                if diff:
                    res.breaks.append(Break("receipt_mismatch", "journaled receipt differs in " + ", ".join(diff),
                                            h, c_block, t.wallet, t.order_id,
                                            journal={k: mine[k] for k in diff}, chain={k: theirs[k] for k in diff}))

    # ---- journaled fills against their Swap logs ------------------------------------------------
    def _check_fills(self, res: Result, fills, chain_rc, txs) -> None:
        for f, o in fills:
            if getattr(f, "busted_at", None) is not None:
                continue
            rc = chain_rc.get(f.tx_hash)
            if rc is None:
                rc = self.rpc.call("eth_getTransactionReceipt", [f.tx_hash])
                chain_rc[f.tx_hash] = rc
            tx = txs.get(f.tx_hash)
            wallet = tx.wallet if tx is not None else None  # orders.wallet is the wallet's name
            base_line = dict(tx_hash=f.tx_hash, block=f.block_number, wallet=wallet, order_id=o.order_id,
                             exec_id=f.exec_id)
            jf = {"block_number": f.block_number, "base_units": f.base_units, "quote_units": f.quote_units,
                  "last_qty": f.last_qty, "last_px": f.last_px, "log_index": f.log_index}
            if rc is None or _int(rc["status"]) != 1:
                res.breaks.append(Break("fill_not_on_chain", "fill's transaction is " + (
                    "not on chain" if rc is None else "reverted on chain"), journal=jf, **base_line))
                continue
            log = next((l for l in rc["logs"] if _int(l["logIndex"]) == f.log_index), None)
            if log is None or not log["topics"]:
                res.breaks.append(Break("fill_not_on_chain", f"no log at index {f.log_index} of its transaction",
                                        journal=jf, **base_line))
                continue
            amounts = swap_amounts(log)
            if amounts is None:
                res.notes.append(f"fill {f.exec_id}: log {f.log_index} is not a Uniswap V2/V3 Swap; only its "
                                 "existence was checked")
                continue
            ins = self.spec.instruments.get(o.symbol)
            if ins is None:
                res.notes.append(f"fill {f.exec_id}: instrument {o.symbol} is not in the spec; amounts not checked")
                continue
            base, quote = self.spec.tokens[ins.base], self.spec.tokens[ins.quote]
            a0in, a1in, a0out, a1out = amounts
            base0 = int(base.address, 16) < int(quote.address, 16)
            if o.side == "SELL":
                b_units, q_units = (a0in, a1out) if base0 else (a1in, a0out)
            else:
                b_units, q_units = (a0out, a1in) if base0 else (a1out, a0in)
            c_block = _int(rc["blockNumber"])
            cf = {"block_number": c_block, "base_units": b_units, "quote_units": q_units,
                  "last_qty": from_units(b_units, base.decimals),
                  "last_px": price(q_units, quote.decimals, b_units, base.decimals), "log_index": f.log_index}
            diff = sorted(k for k in jf if jf[k] != cf[k])
            pool = self._pool(log["address"])
            factories = {self.spec.venues[v].factory for v in ins.venues if v in self.spec.venues}
            tokens = {base.address, quote.address}
            if pool["factory"] not in factories or {pool["token0"], pool["token1"]} != tokens:
                diff.append("pool")
                jf["pool"] = f"a pool of {o.symbol} from the factory of {', '.join(ins.venues)}"
                cf["pool"] = f"{to_checksum_address(log['address'])} (factory {pool['factory']})"
            to = _addr(log["topics"][2])
            if wallet is not None and to != wallet:
                diff.append("recipient")
                jf["recipient"], cf["recipient"] = wallet, to
            if f.fee_eth is not None:
                fee = from_units(_int(rc["gasUsed"]) * _int(rc.get("effectiveGasPrice") or "0x0"), 18)
                if f.fee_eth != fee:
                    diff.append("fee_eth")
                    jf["fee_eth"], cf["fee_eth"] = f.fee_eth, fee
            if diff:
                res.breaks.append(Break("fill_mismatch", "fill differs from its Swap log in " + ", ".join(diff),
                                        journal={k: jf[k] for k in diff}, chain={k: cf[k] for k in diff},
                                        **{**base_line, "block": c_block}))

    # ---- chain logs the journal must explain ------------------------------------------------------
    def _check_logs(self, res: Result, txs, fills, transfers_out, transfers_in, swaps) -> None:
        filled = {(f.tx_hash, f.log_index) for f, _ in fills if getattr(f, "busted_at", None) is None}
        for l in swaps:
            h, idx, block = l["transactionHash"], _int(l["logIndex"]), _int(l["blockNumber"])
            exec_id = f"{h}:{idx}"
            if (h, idx) in filled:
                continue
            a0in, a1in, a0out, a1out = swap_amounts(l) or (0, 0, 0, 0)
            chain = {"pool": to_checksum_address(l["address"]), "to": _addr(l["topics"][2]),
                     "amount0In": a0in, "amount1In": a1in, "amount0Out": a0out, "amount1Out": a1out}
            t = txs.get(h)
            if t is not None:
                res.breaks.append(Break("missing_fill", f"Swap log {idx} of journaled {t.purpose} tx has no "
                                        "journaled fill", h, block, chain["to"], t.order_id, exec_id, chain=chain))
            else:
                res.breaks.append(Break("unjournaled_swap", f"Swap on pool {chain['pool']} paying the wallet, in a "
                                        "transaction the journal does not know", h, block, chain["to"],
                                        exec_id=exec_id, chain=chain))
        for kind, logs, who in (("unjournaled_transfer_out", transfers_out, 1),
                                ("unjournaled_transfer_in", transfers_in, 2)):
            for l in logs:
                h = l["transactionHash"]
                if h in txs or len(l["topics"]) < 3:
                    continue
                amount = int(l["data"], 16) if l["data"] not in ("0x", "") else 0
                frm, to = _addr(l["topics"][1]), _addr(l["topics"][2])
                what = self._amount(l["address"], amount)
                res.breaks.append(Break(kind, f"{what} {'to ' + to if who == 1 else 'from ' + frm}, in a transaction "
                                        "the journal does not know", h, _int(l["blockNumber"]),
                                        frm if who == 1 else to,
                                        chain={"token": to_checksum_address(l["address"]), "from": frm, "to": to,
                                               "amount_units": amount}))

    # ---- every transaction a wallet sent must be journaled ------------------------------------------
    def _check_nonces(self, res: Result, txs, chain_rc, wallets: list[str], A: int, B: int) -> None:
        calls = []
        for w in wallets:
            calls.append(("eth_getTransactionCount", [w, hex(A - 1)]) if A > 0 else None)
            calls.append(("eth_getTransactionCount", [w, hex(B)]))
        try:
            answers = iter(self.rpc.batch([c for c in calls if c is not None]))
        except ReconcileError as e:
            res.notes.append(f"nonce check skipped (the node keeps no history for these blocks?): {e}")
            return
        for w in wallets:
            before = int(next(answers), 16) if A > 0 else 0
            after = int(next(answers), 16)
            sent = after - before
            known = {t.nonce for h, t in txs.items() if t.wallet == w and chain_rc.get(h) is not None
                     and A <= _int(chain_rc[h]["blockNumber"]) <= B}
            if sent <= len(known):
                continue
            unknown = sorted(set(range(before, after)) - known)
            found = self._scan_sent(w, unknown, A, B) if B - A < SCAN_LIMIT else {}
            for n in unknown:
                tx = found.get(n)
                res.breaks.append(Break(
                    "unjournaled_tx", f"wallet sent nonce {n} in blocks {A}..{B}, the journal has no transaction "
                    "with it" + ("" if tx else " (range too large to find its hash; narrow it)"),
                    tx["hash"] if tx else None, _int(tx["blockNumber"]) if tx else None, w,
                    chain={"nonce": n, "to": tx.get("to") if tx else None,
                           "value_wei": _int(tx["value"]) if tx else None}))

    def _scan_sent(self, wallet: str, nonces: list[int], A: int, B: int) -> dict[int, dict]:
        want, found = set(nonces), {}
        blocks = self.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in range(A, B + 1)])
        for b in blocks:
            for tx in (b or {}).get("transactions", []):
                if tx.get("from", "").lower() == wallet.lower() and int(tx["nonce"], 16) in want:
                    found[int(tx["nonce"], 16)] = tx
        return found


def reconcile(journal: Journal, spec: Spec, *, chain: str | None = None, sessions: SessionsConfig | None = None,
              from_block: int | None = None, to_block: int | None = None, since: datetime | None = None,
              until: datetime | None = None, wallets: Iterable[str] = (), record: bool = True) -> Result:
    """Reconcile ``chain`` (default: the spec's only chain) over a block range given as blocks or times.

    Without a start, the run continues where the last recorded run of this chain stopped (or block 0).
    """
    if chain is None:
        if len(spec.chains) != 1:
            raise ReconcileError(f"the spec has {len(spec.chains)} chains; pass --chain ({', '.join(spec.chains)})")
        chain = next(iter(spec.chains))
    if chain not in spec.chains:
        raise ReconcileError(f"unknown chain {chain!r}; the spec has {', '.join(spec.chains)}")
    r = Reconciler(journal, spec, chain, sessions=sessions, extra_wallets=wallets)
    default_from = 0
    if from_block is None and since is None:
        last = [x for x in journal.reconciliation_runs(50) if x["chain_id"] == spec.chains[chain].chain_id]
        default_from = last[0]["to_block"] + 1 if last else 0
    A, B = resolve_range(r.rpc, from_block=from_block, to_block=to_block, since=since, until=until,
                         default_from=default_from)
    return r.run(A, B, record=record)


__all__ = ["Break", "KINDS", "Reconciler", "ReconcileError", "Result", "Rpc", "reconcile"]
