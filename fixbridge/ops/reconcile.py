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
| ``movement_mismatch`` | a journaled movement with a transaction whose Transfers of its token to/from its wallet sum to another amount (or do not exist) |
| ``balance_mismatch`` | a wallet's balance of a token (or ETH) at the range's end differs from what the journal makes of its opening balance |

Fills a reorg busted (``fills.busted_at``) are not expected on chain. Each run is recorded in the
journal's ``reconciliation_runs`` table with its results.

**Movements** (``movements``, ``fixbridge journal deposit|withdrawal``) are the journal's word for
value that entered or left a wallet without an order: the devnet's funding, a top-up, a sweep.
- With a transaction hash, a movement explains the ERC-20 Transfers of its token to (``in``) or
  from (``out``) its wallet in that transaction: they must sum to its amount exactly, else
  ``movement_mismatch``. If its wallet sent that transaction, the movement explains the nonce and
  the gas too (read from the node's receipt: the journal has none of its own for it).
- Without a hash, a movement dated in the range (``block_number``) explains one otherwise
  unexplained Transfer of the same wallet, token, direction and exact amount in the range; one
  that explains none is no break by itself, but it counts in the balance check.
- ETH movements are checked by the balance check only (a plain ETH transfer has no log).

**Balances.** For every wallet and every token of the spec's chain, and ETH::

    balance(to_block) == balance(from_block - 1) + movements + token flows of journaled fills
                         - gas of the wallet's transactions          (ETH only)

where the flows of a journaled swap are its fills (+/- base and quote units by side; an
approval, a cancel or a gap fill moves no token, only gas). Transactions sent to an options market
(sell-to-open writes, redeems, releases) move collateral and option tokens that the journal's rows
do not hold as amounts: their Transfer logs on chain are taken as their flows, so for those the
check proves only that nothing else moved the balance. Gas is the journaled receipt's
``gas_used * effective_gas_price`` (the node's receipt when the journal has none yet). The
bridge never sends ETH value, so that is exact on a chain without L1 data fees (the devnet).
A wallet that already has another break in the run is not balance-checked (each difference is
reported once; fix the other break first), and neither is a node that keeps no state history.

**Nothing new.** A range that starts just past the chain's latest block (a scheduled run on a
chain that mined nothing since the last one) is no error: the result says ``nothing_new``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from eth_utils import keccak, to_checksum_address
from sqlalchemy import and_, or_, select
from web3 import Web3

from fixbridge.chain.rpc import LOG_CHUNK, RpcError, connect, get_logs, result, results
from fixbridge.ops.progress import progress
from fixbridge.config import SessionsConfig, Spec
from fixbridge.journal import Journal
from fixbridge.journal import schema as db
from fixbridge.journal.movements import ETH, MovementRow
from fixbridge.orders.units import from_units, price
from fixbridge.venues.swaps import SWAP_TOPICS, swap_amounts

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()  # ERC-20, not a venue's
POOL_VIEWS = {"factory": "0xc45a0155", "token0": "0x0dfe1681", "token1": "0xd21220a7"}
BALANCE_OF = "0x70a08231"  # balanceOf(address)
SCAN_LIMIT = 2_000         # blocks scanned for an unjournaled transaction's hash

KINDS = ("unjournaled_tx", "unjournaled_transfer_out", "unjournaled_transfer_in", "unjournaled_swap", "missing_fill",
         "fill_not_on_chain", "fill_mismatch", "tx_not_on_chain", "tx_status_mismatch", "receipt_mismatch",
         "movement_mismatch", "balance_mismatch")
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
    nothing_new: bool = False  # the chain has no block after the last run: nothing was checked

    @property
    def clean(self) -> bool:
        return not self.breaks

    @property
    def status(self) -> str:
        return "nothing_new" if self.nothing_new else "clean" if self.clean else "breaks"

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "chain_id": self.chain_id,
                "from_block": self.from_block, "to_block": self.to_block, "wallets": self.wallets,
                "checked": self.checked, "breaks": [asdict(b) for b in self.breaks], "notes": self.notes,
                "started_at": self.started_at}


# ============================================================================================
# Raw JSON helpers (the node is reached through fixbridge.chain.rpc)
# ============================================================================================


def _int(h: str | None) -> int | None:
    return None if h is None else int(h, 16)


def _topic(addr: str) -> str:
    return "0x" + "0" * 24 + addr[2:].lower()


def _addr(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


# ============================================================================================
# Block range from times
# ============================================================================================


def block_time(w3: Web3, n: int) -> int:
    b = result(w3, "eth_getBlockByNumber", [hex(n), False])
    if b is None:
        raise ReconcileError(f"no block {n}")
    return int(b["timestamp"], 16)


def first_block_at_or_after(w3: Web3, ts: datetime, latest: int) -> int:
    """The first block whose timestamp is >= ts (latest + 1 if there is none)."""
    target = int(ts.timestamp()) if ts.timestamp() == int(ts.timestamp()) else int(ts.timestamp()) + 1
    lo, hi = 0, latest + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if block_time(w3, mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def resolve_range(w3: Web3, *, from_block: int | None, to_block: int | None, since: datetime | None,
                  until: datetime | None, default_from: int = 0) -> tuple[int, int]:
    """The inclusive block range to check. A range starting just past the chain's head and ending
    at it (latest+1..latest) is returned as is: nothing new, which the caller reports as such."""
    latest = int(result(w3, "eth_blockNumber", []), 16)
    if from_block is None:
        from_block = first_block_at_or_after(w3, since, latest) if since is not None else default_from
    if to_block is None:
        to_block = first_block_at_or_after(w3, until, latest) - 1 if until is not None else latest
    if to_block > latest:
        raise ReconcileError(f"--to-block {to_block} is past the chain's latest block {latest}")
    if from_block == latest + 1 and to_block == latest:
        return from_block, to_block
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


@dataclass
class _Flows:
    """What the journal says moved a wallet's balance of one token (or ETH) over the range, in
    base units, by cause."""
    movements: int = 0
    fills: int = 0
    logged: int = 0  # options-market transactions: their Transfer logs (see the module docstring)
    gas: int = 0

    @property
    def total(self) -> int:
        return self.movements + self.fills + self.logged - self.gas


@dataclass
class _MovementTx:
    """A movement's transaction as the node has it (the journal holds no row for it)."""
    tx: dict[str, Any]
    receipt: dict[str, Any]

    @property
    def block(self) -> int:
        return int(self.receipt["blockNumber"], 16)

    @property
    def sender(self) -> str:
        return to_checksum_address(self.tx["from"])

    @property
    def fee(self) -> int:
        return int(self.receipt["gasUsed"], 16) * int(self.receipt.get("effectiveGasPrice") or "0x0", 16)


class Reconciler:
    def __init__(self, journal: Journal, spec: Spec, chain: str, w3: Web3 | None = None,
                 sessions: SessionsConfig | None = None, extra_wallets: Iterable[str] = ()) -> None:
        self.j, self.spec, self.chain, self.chain_key = journal, spec, spec.chains[chain], chain
        self.w3 = w3 or connect(self.chain.rpc_url, timeout=30.0)
        self.sessions = sessions
        self.extra_wallets = [to_checksum_address(w) for w in extra_wallets]
        self.tokens = {t.address.lower(): t for t in spec.tokens.values() if t.chain == chain}
        self.markets = {m.address.lower() for m in spec.options_markets.values() if m.chain == chain}
        self.movement_records = journal.movements
        self._pools: dict[str, dict[str, str | None]] = {}

    @staticmethod
    def journal_wallets(journal: Journal, chain_id: int) -> set[str]:
        """Every wallet the journal has a transaction or a movement of on the chain."""
        with journal.read_session() as s:
            txs = select(db.Transaction.wallet).where(db.Transaction.chain_id == chain_id).distinct()
            mvs = select(db.Movement.wallet).where(db.Movement.chain_id == chain_id).distinct()
            return {w for (w,) in s.execute(txs)} | {w for (w,) in s.execute(mvs)}

    # ---- helpers ---------------------------------------------------------------------------
    def _pool(self, address: str) -> dict[str, str | None]:
        """factory, token0 and token1 of a V2 pair or V3 pool (both have these views); None if absent."""
        key = address.lower()
        if key not in self._pools:
            names = list(POOL_VIEWS)
            try:
                out = results(self.w3, [("eth_call", [{"to": address, "data": POOL_VIEWS[n]}, "latest"]) for n in names])
            except RpcError:
                out = [None] * len(names)
            self._pools[key] = {n: (to_checksum_address("0x" + o[-40:]) if o and len(o) >= 42 else None)
                                for n, o in zip(names, out)}
        return self._pools[key]

    def _logs(self, lo: int, hi: int, topics: list) -> list[dict]:
        chunks = (hi - lo) // LOG_CHUNK + 1
        if chunks < 2:
            return get_logs(self.w3, lo, hi, topics)
        with progress(f"logs of blocks {lo}..{hi}", chunks) as advance:  # a terminal only
            return get_logs(self.w3, lo, hi, topics, on_batch=advance)

    def _amount(self, token: str, units: int) -> str:
        t = self.tokens.get(token.lower())
        return f"{from_units(units, t.decimals)} {t.symbol}" if t else f"{units} units of {token}"

    def _symbol_decimals(self, token: str) -> tuple[str, int]:
        return symbol_decimals(self.tokens, token)

    # ---- run -------------------------------------------------------------------------------
    def run(self, from_block: int, to_block: int, *, record: bool = True) -> Result:
        """Reconcile blocks from_block..to_block (inclusive); a run that fails is recorded as 'error'."""
        started = datetime.now(timezone.utc)
        try:
            try:
                return self._run(from_block, to_block, record=record)
            except RpcError as e:
                raise ReconcileError(str(e)) from None
        except ReconcileError as e:
            if record:
                self.j.record_reconciliation_run(started_at=started, chain_id=self.chain.chain_id,
                                                 from_block=from_block, to_block=to_block, status="error", breaks=0,
                                                 results={"error": str(e)})
            raise

    def _run(self, from_block: int, to_block: int, *, record: bool = True) -> Result:
        chain_id = self.chain.chain_id
        got = int(result(self.w3, "eth_chainId", []), 16)
        if got != chain_id:
            raise ReconcileError(f"the node at {self.chain.rpc_url} is chain {got}, the spec says {chain_id}")
        A, B = from_block, to_block
        t_lo, t_hi = block_time(self.w3, A), block_time(self.w3, B)

        # ---- the journal's side --------------------------------------------------------------
        movements = self.movement_records.for_chain(chain_id, from_block=A, to_block=B, undated_with_tx=True)
        jwallets = self.journal_wallets(self.j, chain_id)
        wallets = sorted(set(config_wallets(self.sessions, self.chain_key)) | jwallets | set(self.extra_wallets))
        res = Result(chain_id, A, B, wallets)
        with self.j.read_session() as s:
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
        chain_rc = dict(zip(hashes, results(self.w3, [("eth_getTransactionReceipt", [h]) for h in hashes])))
        movements, mv_txs = self._date_movements(res, movements, set(txs), A, B)
        res.checked = {"transactions": len(txs), "fills": len(fills), "swaps": len(swaps),
                       "transfers": len(transfers_out) + len(transfers_in), "wallets": len(wallets),
                       "movements": len(movements)}

        self._check_transactions(res, txs, receipts, chain_rc, A, B)
        self._check_fills(res, fills, chain_rc, txs)
        self._check_logs(res, txs, fills, transfers_out, transfers_in, swaps, movements)
        self._check_nonces(res, txs, chain_rc, wallets, A, B, mv_txs)
        BalanceCheck(self.spec, self.w3, self.tokens, self.markets).check(res, txs, receipts, fills, chain_rc, movements,
                                                                          mv_txs, wallets, A, B)
        res.breaks.sort(key=lambda b: (b.block if b.block is not None else -1, KINDS.index(b.kind)))
        if record:
            res.run_id = self.j.record_reconciliation_run(
                started_at=res.started_at, chain_id=chain_id, from_block=A, to_block=B,
                status="clean" if res.clean else "breaks", breaks=len(res.breaks), results=res.as_dict())
        return res

    # ---- movements: their transactions and blocks ----------------------------------------------
    def _date_movements(self, res: Result, movements: list[MovementRow], journaled: set[str], A: int,
                        B: int) -> tuple[list[MovementRow], dict[str, _MovementTx]]:
        """The movements of the range (one with a transaction is dated by the node's receipt), and
        those transactions as the node has them."""
        hashes = sorted({m.tx_hash for m in movements if m.tx_hash and m.tx_hash not in journaled})
        answers = results(self.w3, [c for h in hashes for c in (("eth_getTransactionByHash", [h]),
                                                                 ("eth_getTransactionReceipt", [h]))])
        mv_txs = {h: _MovementTx(tx, rc) for h, tx, rc in zip(hashes, answers[::2], answers[1::2])
                  if tx is not None and rc is not None}
        dated = []
        for m in movements:
            block = mv_txs[m.tx_hash].block if m.tx_hash in mv_txs else m.block_number
            if m.tx_hash and m.tx_hash not in mv_txs and m.tx_hash not in journaled:
                res.breaks.append(Break("movement_mismatch", f"journaled {m.direction} movement #{m.id} of "
                                        f"{m.amount} {m.token_symbol}: the node does not know its transaction",
                                        m.tx_hash, m.block_number, m.wallet, journal=_movement_view(m)))
                continue
            if block is not None and A <= block <= B:
                dated.append(m)
        return dated, {h: t for h, t in mv_txs.items() if A <= t.block <= B}

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
                rc = result(self.w3, "eth_getTransactionReceipt", [f.tx_hash])
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
    def _check_logs(self, res: Result, txs, fills, transfers_out, transfers_in, swaps,
                    movements: list[MovementRow]) -> None:
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
        unexplained = self._match_movements(res, txs, transfers_out, transfers_in, movements)
        for kind, logs, who in (("unjournaled_transfer_out", unexplained["out"], 1),
                                ("unjournaled_transfer_in", unexplained["in"], 2)):
            for l in logs:
                h = l["transactionHash"]
                amount = _units(l)
                frm, to = _addr(l["topics"][1]), _addr(l["topics"][2])
                what = self._amount(l["address"], amount)
                res.breaks.append(Break(kind, f"{what} {'to ' + to if who == 1 else 'from ' + frm}, in a transaction "
                                        "the journal does not know", h, _int(l["blockNumber"]),
                                        frm if who == 1 else to,
                                        chain={"token": to_checksum_address(l["address"]), "from": frm, "to": to,
                                               "amount_units": amount}))

    def _match_movements(self, res: Result, txs, transfers_out, transfers_in,
                         movements: list[MovementRow]) -> dict[str, list[dict]]:
        """The Transfers of transactions the journal does not know, less those its movements
        explain (module docstring); a movement whose transaction moved another amount is a break."""
        groups: dict[tuple[str, str, str, str], list[dict]] = defaultdict(list)
        for direction, logs, side in (("out", transfers_out, 1), ("in", transfers_in, 2)):
            for l in logs:
                if l["transactionHash"] in txs or len(l["topics"]) < 3:
                    continue
                groups[(l["transactionHash"], _addr(l["topics"][side]), l["address"].lower(), direction)].append(l)
        erc20 = [m for m in movements if m.token_address is not None]
        for m in (m for m in erc20 if m.tx_hash is not None and m.tx_hash not in txs):
            logs = groups.pop((m.tx_hash, m.wallet, m.token_address.lower(), m.direction), [])
            moved = sum(_units(l) for l in logs)
            if moved != m.amount_units:
                res.breaks.append(Break(
                    "movement_mismatch", f"journaled {m.direction} movement #{m.id} of {m.amount} {m.token_symbol}: "
                    f"its transaction moved {self._amount(m.token_address, moved)} "
                    f"{'to' if m.direction == 'in' else 'from'} the wallet", m.tx_hash,
                    _int(logs[0]["blockNumber"]) if logs else m.block_number, m.wallet,
                    journal={"amount_units": m.amount_units}, chain={"amount_units": moved}))
        left = {"out": [], "in": []}
        for (_h, _w, _t, direction), logs in groups.items():
            left[direction] += logs
        for m in (m for m in erc20 if m.tx_hash is None):  # one transfer each, same wallet/token/amount
            side = 1 if m.direction == "out" else 2
            hit = next((l for l in left[m.direction] if _addr(l["topics"][side]) == m.wallet
                        and l["address"].lower() == m.token_address.lower() and _units(l) == m.amount_units), None)
            if hit is not None:
                left[m.direction].remove(hit)
        return left

    # ---- every transaction a wallet sent must be journaled ------------------------------------------
    def _check_nonces(self, res: Result, txs, chain_rc, wallets: list[str], A: int, B: int,
                      mv_txs: dict[str, _MovementTx]) -> None:
        calls = []
        for w in wallets:
            calls.append(("eth_getTransactionCount", [w, hex(A - 1)]) if A > 0 else None)
            calls.append(("eth_getTransactionCount", [w, hex(B)]))
        try:
            answers = iter(results(self.w3, [c for c in calls if c is not None]))
        except RpcError as e:
            res.notes.append(f"nonce check skipped (the node keeps no history for these blocks?): {e}")
            return
        for w in wallets:
            before = int(next(answers), 16) if A > 0 else 0
            after = int(next(answers), 16)
            sent = after - before
            known = {t.nonce for h, t in txs.items() if t.wallet == w and chain_rc.get(h) is not None
                     and A <= _int(chain_rc[h]["blockNumber"]) <= B}
            known |= {int(m.tx["nonce"], 16) for m in mv_txs.values() if m.sender == w}  # booked withdrawals
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
        blocks = results(self.w3, [("eth_getBlockByNumber", [hex(n), True]) for n in range(A, B + 1)])
        for b in blocks:
            for tx in (b or {}).get("transactions", []):
                if tx.get("from", "").lower() == wallet.lower() and int(tx["nonce"], 16) in want:
                    found[int(tx["nonce"], 16)] = tx
        return found


class BalanceCheck:
    """Balances: opening + what the journal says moved = closing, per wallet, token and ETH (a part
    of the Reconciler's run, kept apart: it needs only the chain, the spec and the rows read)."""

    def __init__(self, spec: Spec, w3: Web3, tokens: dict, markets: set[str]) -> None:
        self.spec, self.w3, self.tokens, self.markets = spec, w3, tokens, markets

    def check(self, res: Result, txs, receipts, fills, chain_rc, movements: list[MovementRow],
                        mv_txs: dict[str, _MovementTx], wallets: list[str], A: int, B: int) -> None:
        broken = {b.wallet for b in res.breaks}
        checked = [w for w in wallets if w not in broken]
        for w in sorted(set(wallets) & broken):
            res.notes.append(f"balances of {w} not checked: it has other breaks in this range (fix those first)")
        if not checked:
            return
        flows = self._journaled_flows(txs, receipts, fills, chain_rc, movements, mv_txs, A, B)
        tokens = [ETH, *sorted(self.tokens)]
        try:
            opening, closing = self._balances(checked, tokens, max(A - 1, 0)), self._balances(checked, tokens, B)
        except RpcError as e:
            res.notes.append(f"balance check skipped (the node keeps no state for these blocks?): {e}")
            return
        res.checked["balances"] = len(checked) * len(tokens)
        for w in checked:
            for t in tokens:
                f = flows.get((w, t), _Flows())
                expected = opening[(w, t)] + f.total
                if expected != closing[(w, t)]:
                    res.breaks.append(self._balance_break(w, t, opening[(w, t)], f, expected, closing[(w, t)], B))

    def _journaled_flows(self, txs, receipts, fills, chain_rc, movements: list[MovementRow],
                         mv_txs: dict[str, _MovementTx], A: int, B: int) -> dict[tuple[str, str], _Flows]:
        """(wallet, token address in lower case or 'ETH') -> what the journal says moved it in A..B."""
        flows: dict[tuple[str, str], _Flows] = defaultdict(_Flows)
        for m in movements:
            flows[(m.wallet, m.token_address.lower() if m.token_address else ETH)].movements += m.signed_units()
        for m in mv_txs.values():  # a booked withdrawal the wallet signed itself: its gas
            flows[(m.sender, ETH)].gas += m.fee
        by_tx = defaultdict(list)
        for f, o in fills:
            if getattr(f, "busted_at", None) is None:
                by_tx[f.tx_hash].append((f, o))
        for h, t in txs.items():
            rc = chain_rc.get(h)
            if rc is None or not A <= _int(rc["blockNumber"]) <= B:
                continue
            r = receipts.get(h)
            flows[(t.wallet, ETH)].gas += (r.gas_used * r.effective_gas_price if r is not None else
                                           _int(rc["gasUsed"]) * _int(rc.get("effectiveGasPrice") or "0x0"))
            if _int(rc["status"]) != 1:
                continue
            if (rc.get("to") or "").lower() in self.markets:
                self._logged_flows(flows, t.wallet, rc)
            elif t.purpose == "swap":
                self._fill_flows(flows, t.wallet, by_tx.get(h, []))
        return flows

    def _fill_flows(self, flows, wallet: str, fills) -> None:
        for f, o in fills:
            ins = self.spec.instruments.get(o.symbol)
            if ins is None:
                continue  # noted by _check_fills
            sign = 1 if o.side == "BUY" else -1
            flows[(wallet, self.spec.tokens[ins.base].address.lower())].fills += sign * f.base_units
            flows[(wallet, self.spec.tokens[ins.quote].address.lower())].fills -= sign * f.quote_units

    @staticmethod
    def _logged_flows(flows, wallet: str, rc: dict) -> None:
        for l in rc["logs"]:
            if not l["topics"] or l["topics"][0] != TRANSFER_TOPIC or len(l["topics"]) < 3:
                continue
            token, units = l["address"].lower(), _units(l)
            if _addr(l["topics"][1]) == wallet:
                flows[(wallet, token)].logged -= units
            if _addr(l["topics"][2]) == wallet:
                flows[(wallet, token)].logged += units

    def _balances(self, wallets: list[str], tokens: list[str], block: int) -> dict[tuple[str, str], int]:
        calls = [("eth_getBalance", [w, hex(block)]) if t == ETH else
                 ("eth_call", [{"to": to_checksum_address(t), "data": BALANCE_OF + _topic(w)[2:]}, hex(block)])
                 for w in wallets for t in tokens]
        answers = iter(results(self.w3, calls))
        # "0x": the token had no code yet at that block (a range from genesis): nobody held any
        return {(w, t): _uint(next(answers)) for w in wallets for t in tokens}

    def _balance_break(self, w: str, t: str, opening: int, f: _Flows, expected: int, actual: int, B: int) -> Break:
        sym, dec = symbol_decimals(self.tokens, t)

        def d(units: int):
            return from_units(units, dec)

        journal = {"balance": d(expected), "balance_units": expected, "opening": d(opening),
                   "movements": d(f.movements), "fills": d(f.fills), "options_market_txs": d(f.logged),
                   "gas": d(f.gas)}
        return Break("balance_mismatch", f"{sym} of the wallet at block {B}: chain {d(actual)}, journal {d(expected)} "
                     f"(opening {d(opening)}, movements {d(f.movements)}, fills {d(f.fills)}"
                     + (f", options-market txs {d(f.logged)}" if f.logged else "")
                     + (f", gas {d(f.gas)}" if t == ETH else "") + f"); difference {d(actual - expected)}",
                     None, B, w, journal=journal, chain={"balance": d(actual), "balance_units": actual})


def symbol_decimals(tokens: dict, token: str) -> tuple[str, int]:
    """('ETH', 18) for ETH, else the spec's symbol and decimals of a token address."""
    if token == ETH:
        return ETH, 18
    t = tokens.get(token)
    return (t.symbol, t.decimals) if t else (token, 0)


def _uint(word: str | None) -> int:
    return int(word, 16) if word and word != "0x" else 0


def _units(log: dict) -> int:
    """A Transfer log's amount."""
    return int(log["data"], 16) if log["data"] not in ("0x", "") else 0


def _movement_view(m: MovementRow) -> dict[str, Any]:
    return {"id": m.id, "token": m.token_symbol, "amount": m.amount, "direction": m.direction, "who": m.who,
            "why": m.why}


def resolve_chain(spec: Spec, chain: str | None) -> str:
    """``chain``, or the spec's only chain; ReconcileError naming the choices otherwise."""
    if chain is None:
        if len(spec.chains) != 1:
            raise ReconcileError(f"the spec has {len(spec.chains)} chains; pass --chain ({', '.join(spec.chains)})")
        chain = next(iter(spec.chains))
    if chain not in spec.chains:
        raise ReconcileError(f"unknown chain {chain!r}; the spec has {', '.join(spec.chains)}")
    return chain


def last_reconciled_block(journal: Journal, chain_id: int) -> int | None:
    """The to_block of the chain's last recorded run that ran ('clean' or 'breaks'): a run that
    could not run checked nothing, so the next one covers its range again."""
    with journal.read_session() as s:
        q = (select(db.ReconciliationRun.to_block)
             .where(db.ReconciliationRun.chain_id == chain_id, db.ReconciliationRun.status != "error")
             .order_by(db.ReconciliationRun.id.desc()).limit(1))
        return s.scalar(q)


def reconcile(journal: Journal, spec: Spec, *, chain: str | None = None, sessions: SessionsConfig | None = None,
              from_block: int | None = None, to_block: int | None = None, since: datetime | None = None,
              until: datetime | None = None, wallets: Iterable[str] = (), record: bool = True) -> Result:
    """Reconcile ``chain`` (default: the spec's only chain) over a block range given as blocks or times.

    Without a start, the run continues where the last recorded run of this chain stopped (or block 0);
    when the chain has no block after that, the result is ``nothing_new`` (and nothing is recorded).
    """
    chain = resolve_chain(spec, chain)
    r = Reconciler(journal, spec, chain, sessions=sessions, extra_wallets=wallets)
    chain_id = spec.chains[chain].chain_id
    default_from = 0
    if from_block is None and since is None:
        last = last_reconciled_block(journal, chain_id)
        default_from = last + 1 if last is not None else 0
    try:
        A, B = resolve_range(r.w3, from_block=from_block, to_block=to_block, since=since, until=until,
                             default_from=default_from)
    except RpcError as e:
        raise ReconcileError(str(e)) from None
    if A > B:
        return Result(chain_id, A, B, [], nothing_new=True, notes=[f"nothing new: no block after {B}"])
    return r.run(A, B, record=record)


__all__ = ["Break", "KINDS", "Reconciler", "ReconcileError", "Result", "last_reconciled_block", "reconcile",
           "resolve_chain"]
