"""Transactions in flight, from broadcast to the report: the part of the engine the block
watcher drives.

For each block: settle the transactions it includes (or hold them until the session's
confirmations), then look after the rest — a transaction unmined for its chain's
`replace_after_blocks` is rebroadcast if the node lost it, or replaced with the same call at fees
`fee_bump_percent` higher, never above the chain's `max_fee_per_gas_gwei`; a nonce the chain
has passed without our transaction means someone else used it — decided only once the node says,
for every attempt, that it has neither a receipt nor a mined transaction (a receipt the node serves
late is waited for, never taken for a nonce used outside). A reorg takes back what it removed:
fills already reported get a Trade Cancel (150=H) and the order waits for its transaction again.

A node that fails while a transaction is looked after is asked again at the next block: a read
that fails decides nothing, and a broadcast whose answer was lost (reset, timeout, 5xx) stays
journaled and in flight and is sent again (`unsent`), never taken for a refusal.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from fixbridge.chain.rpc import batch_call, describe, latest_base_fee
from fixbridge.chain.submitter import Receipt, SentTx
from fixbridge.chain.watcher import Block, BlockWatcher, Listeners
from fixbridge.orders.model import ExecEvent, Fill, Order, OrdStatus, Side
from fixbridge.orders.units import from_units, price
from fixbridge.venues.base import Exact

if TYPE_CHECKING:
    from fixbridge.engine.execution import ExecutionEngine, Plan
    from fixbridge.engine.markets import TradingWallet

log = structlog.get_logger(__name__)

CANCEL_CL_ORD_ID = "cancel_cl_ord_id"  # the journal detail key that keeps a cancel's ClOrdID for a restart
NODE_MIN_BUMP_PERCENT = 10  # nodes (geth, anvil) refuse a same-nonce replacement that raises its bid less
KEEP_SETTLED_BLOCKS = 64  # how long settled fills are kept to follow a reorg
SETTLE_FLUSH_EVERY = 8    # settled orders per journal unit within one block
RECOVERY_CHUNK = 64       # journaled in-flight orders looked up and settled together at start
NONCE_PASSED_GRACE_S = 2.0  # how long ours must stay unfound at a passed nonce before it is called not ours


@dataclass
class Attempt:
    """One signed transaction for an order's nonce (the original, a re-priced copy, or a no-op)."""
    tx_hash: str
    raw: str
    max_fee: int
    tip: int
    kind: str  # 'swap' | 'cancel'

    @classmethod
    def of(cls, sent: SentTx, kind: str) -> "Attempt":
        return cls(sent.signed.tx_hash.lower(), sent.signed.raw, sent.max_fee_per_gas, sent.max_priority_fee_per_gas, kind)


@dataclass
class InFlight:
    order: Order
    plan: "Plan"
    wallet: "TradingWallet"
    nonce: int
    to: str
    data: bytes
    gas_limit: int
    attempts: list[Attempt]
    sent_block: int
    reserved: tuple[str, int]              # (token_in, most it can take) held against the balance
    last_action_block: int = -1
    at_ceiling: bool = False               # re-pricing stopped at the chain's max fee (journaled once)
    lease_held_back: bool = False          # not re-signed: this instance lost its wallet lease (journaled once)
    passed_unseen_since: float | None = None  # monotonic time the chain was first seen past our nonce, ours not found
    deadline: int | None = None            # the call's deadline (unix s); None: not known yet (recovered)
    cancel: tuple[str, str] | None = None  # (session_id, cancel ClOrdID) once a cancel was asked
    receipt: Receipt | None = None         # mined, waiting for confirmations
    mined_attempt: Attempt | None = None
    generation: int = 0                    # times a reorg took the fill back (keeps ExecIDs unique)
    reported_exec_ids: list[str] = field(default_factory=list)
    unsent: bool = False                   # the last attempt's broadcast got no answer: send it again

    @property
    def chain(self) -> str:
        return self.wallet.chain


@dataclass
class Loose:
    """A transaction that holds a nonce for no order (a gap's no-op) and must reach the chain, or
    every later nonce of the wallet waits behind it."""
    wallet: "TradingWallet"
    nonce: int
    tx_hash: str
    raw: str
    unsent: bool = False  # its broadcast got no answer: sent again at the next tick


class TrackingMixin:
    def __init__(self: "ExecutionEngine") -> None:
        self._flights: dict[str, InFlight] = {}
        self._by_hash: dict[str, str] = {}
        self._settled: dict[str, tuple[InFlight, int]] = {}  # order_id -> (flight, block) kept for reorgs
        self._reservations: dict[tuple[str, str], int] = {}
        self._watchers: dict[str, BlockWatcher] = {}
        self._down: dict[str, str] = {}
        self._loose: dict[tuple[str, str, int], Loose] = {}  # (chain, wallet address, nonce) -> its no-op
        self.block_listeners: list = []  # others on the engine's watchers (the market feed), after the engine

    # ---- set-up ------------------------------------------------------------------------------
    def start_tracking(self: "ExecutionEngine") -> None:
        for chain, w3 in self.markets.w3.items():
            if any(w.chain == chain for w in self.markets.wallets.values()):
                watcher = BlockWatcher(chain, w3, Listeners(self, *self.block_listeners))
                watcher.start()
                self._watchers[chain] = watcher

    def stop_tracking(self) -> None:
        for w in self._watchers.values():
            w.stop()

    def watching(self, chain: str) -> bool:
        return chain in self._watchers

    def head(self, chain: str) -> int:
        w = self._watchers.get(chain)
        return w.head if w and w.head is not None else 0

    def outage(self, chain: str) -> str | None:
        """Why the chain's node is not answering, or None."""
        return self._down.get(chain)

    # ---- the in-flight book ------------------------------------------------------------------
    def track(self, f: InFlight) -> None:
        with self._lock:
            self._flights[f.order.order_id] = f
            for a in f.attempts:
                self._by_hash[a.tx_hash] = f.order.order_id
            key = (f.wallet.wallet.address, f.reserved[0])
            self._reservations[key] = self._reservations.get(key, 0) + f.reserved[1]
            f.last_action_block = f.last_action_block if f.last_action_block >= 0 else f.sent_block
        watcher = self._watchers.get(f.chain)
        if watcher is not None:
            watcher.kick()  # it may be idling (50 ms polls) with nothing in flight until now

    def untrack(self, f: InFlight) -> None:
        with self._lock:
            if self._flights.pop(f.order.order_id, None) is None:
                return
            for a in f.attempts:
                self._by_hash.pop(a.tx_hash, None)
            key = (f.wallet.wallet.address, f.reserved[0])
            self._reservations[key] = self._reservations.get(key, 0) - f.reserved[1]

    def in_flight(self, order_id: str) -> InFlight | None:
        return self._flights.get(order_id)

    def reserved(self, w: "TradingWallet", token: str) -> int:
        """token_in committed to transactions still in flight from this wallet."""
        return self._reservations.get((w.wallet.address, token), 0)

    def wanted(self) -> set[str]:
        return set(self._by_hash)

    # ---- the watcher's callbacks (watcher thread) ----------------------------------------------
    def on_outage(self, chain: str, error: Exception | None) -> None:
        if error is None:
            self._down.pop(chain, None)
        else:
            self._down[chain] = describe(error)

    def on_receipts(self: "ExecutionEngine", chain: str, receipts: dict[str, dict]) -> None:
        """Receipts the node served after their block was delivered."""
        try:
            with self._lock, self.journal.batch():
                self._take_receipts(chain, receipts, self.head(chain))
        except Exception:
            log.exception("late receipts not settled", chain=chain)

    def on_tick(self: "ExecutionEngine", chain: str) -> None:
        """Between blocks too: send again what got no answer (an automine devnet makes no block
        until it has the transaction)."""
        try:
            with self._lock:
                unsent = sorted((f for f in self._flights.values() if f.chain == chain and f.unsent and f.receipt is None),
                                key=lambda f: f.nonce)
                doubted = [f for f in self._flights.values()
                           if f.chain == chain and f.passed_unseen_since is not None and f.receipt is None]
            if not unsent and not doubted and not any(k[0] == chain and l.unsent for k, l in self._loose.items()):
                return
            with self._lock, self.journal.batch():
                for f in unsent:
                    self._resend(f)
                for f in doubted:  # a passed nonce whose transaction was not found: decided once it stays so
                    if self._flights.get(f.order.order_id) is f and f.receipt is None:
                        chain_nonce = f.wallet.submitter.w3.eth.get_transaction_count(f.wallet.wallet.address, "latest")
                        if f.nonce < chain_nonce:
                            self._nonce_passed(f, chain_nonce, self.head(chain))
                for key, loose in list(self._loose.items()):
                    if key[0] == chain and loose.unsent:
                        self._send_loose(loose)
        except Exception:
            log.exception("resend failed", chain=chain)

    def on_block(self: "ExecutionEngine", chain: str, block: Block) -> None:
        with self._lock:  # one at a time with cancels and sends, so an order moves through one state at a time
            # A block's receipts, fills and transitions go to the journal together (in units of
            # SETTLE_FLUSH_EVERY orders); each unit's reports follow its commit.
            with self.journal.batch():
                self._on_block(chain, block)
            with self.journal.batch():
                self._after_block(chain, block)

    def _on_block(self: "ExecutionEngine", chain: str, block: Block) -> None:
        settle = self._take_receipts(chain, block.receipts(), block.number)
        hashes = self._watchers[chain].hashes
        for f in [f for f in list(self._flights.values()) if f.chain == chain and f.receipt is not None]:
            if self._confirmed(f, block.number, hashes):
                settle(f)

    def _take_receipts(self: "ExecutionEngine", chain: str, receipts: dict[str, dict], head: int):
        """Record the receipts of our transactions; settle those already deep enough. Returns the
        settling function (flushing the journal every SETTLE_FLUSH_EVERY orders)."""
        b = self.journal.in_batch()
        settled = 0

        def settle(f: InFlight) -> None:
            nonlocal settled
            self._settle(f)
            settled += 1
            if b is not None and settled % SETTLE_FLUSH_EVERY == 0:
                b.flush()  # the first reports of a full block leave while the rest settle

        watcher = self._watchers[chain]
        for tx_hash, raw in receipts.items():
            oid = self._by_hash.get(tx_hash)
            f = self._flights.get(oid) if oid else None
            if f is None or f.receipt is not None:
                continue
            try:
                receipt = f.wallet.submitter.receipt_from_json(raw)
            except Exception as e:  # e.g. a revert's reason could not be read: the node is failing
                log.info("receipt not read; asked again", tx=tx_hash, error=str(e)[:200])
                watcher.owe(tx_hash, int(raw["blockNumber"], 16))
                continue
            self._mined(f, receipt, tx_hash)
            if self._confirmed(f, head, watcher.hashes):
                settle(f)  # reported at inclusion: at once, not after the rest of the block's receipts
        return settle

    def _confirmed(self: "ExecutionEngine", f: InFlight, head: int, hashes: dict[int, str]) -> bool:
        """Mined, deep enough for its session, and its block still the one the watcher follows."""
        assert f.receipt is not None
        return (head - f.receipt.block_number + 1 >= self._confirmations(f)
                and hashes.get(f.receipt.block_number) == f.receipt.block_hash)

    def _after_block(self: "ExecutionEngine", chain: str, block: Block) -> None:
        self._look_after(chain, block.number, block.timestamp)
        self._look_after_loose(chain, block.number)
        if self.spec.options_markets:
            self.check_settlements(chain, block.number)
        for oid, (_, n) in list(self._settled.items()):
            if n < block.number - KEEP_SETTLED_BLOCKS:
                self._settled.pop(oid, None)

    def on_reorg(self: "ExecutionEngine", chain: str, fork: int) -> None:
        """Blocks above `fork` are gone. What they held goes back in flight."""
        with self._lock, self.journal.batch():
            for f in self._flights.values():
                if f.chain == chain and f.receipt is not None and f.receipt.block_number > fork:
                    self.journal.add_event(f.order.order_id, "reorg", f"block {f.receipt.block_number} with "
                                           f"{f.receipt.tx_hash} was reorged out before confirmation")
                    f.receipt, f.mined_attempt = None, None
            for oid, (f, n) in list(self._settled.items()):
                if f.chain != chain or n <= fork:
                    continue
                self._settled.pop(oid)
                self._take_back(f, fork)

    def _take_back(self: "ExecutionEngine", f: InFlight, fork: int) -> None:
        """A reported outcome's block is gone: bust its fills (Trade Cancel) and wait again."""
        order = f.order
        receipt = f.receipt
        assert receipt is not None
        reason = f"reorg: block {receipt.block_number} holding {receipt.tx_hash} is no longer on the chain"
        self.journal.add_event(order.order_id, "reorg", reason, detail={"fork_block": fork})
        if f.reported_exec_ids:
            self.journal.bust_fills(f.reported_exec_ids)
            busted = list(f.reported_exec_ids)
            order.cum_qty, order.avg_px = Decimal(0), Decimal(0)
            if order.cash_order_qty is not None:
                order.order_qty = None
            for i, exec_id in enumerate(busted):
                self._transition(order, OrdStatus.NEW, f"{reason}; fill {exec_id} canceled",
                                 event=ExecEvent.TRADE_CANCEL, exec_ref_id=exec_id,
                                 trade_cancel=True, text=f"Trade canceled by a chain reorg: {exec_id}")
            f.reported_exec_ids = []
        f.receipt, f.mined_attempt = None, None
        f.generation += 1
        f.last_action_block = fork
        self.track(f)
        self._revive(f, reprice=False)  # a reorg drops what it removed on some nodes: send it again

    # ---- mined -------------------------------------------------------------------------------
    def _confirmations(self: "ExecutionEngine", f: InFlight) -> int:
        return max(1, self.counterparty(f.order.session_id).confirmations)

    def _mined(self: "ExecutionEngine", f: InFlight, receipt: Receipt, tx_hash: str) -> None:
        f.receipt = receipt
        f.mined_attempt = next(a for a in f.attempts if a.tx_hash == tx_hash)
        self._record_receipt(receipt, f.order.status)
        for a in f.attempts:
            if a.tx_hash != tx_hash:
                self.journal.set_tx_status(a.tx_hash, "replaced")

    def _settle(self: "ExecutionEngine", f: InFlight) -> None:
        """Journal first, then report: the outcome of a mined, confirmed transaction."""
        from fixbridge.engine.faults import crash_point

        self.untrack(f)
        receipt, attempt, order = f.receipt, f.mined_attempt, f.order
        assert receipt is not None and attempt is not None
        crash_point("after_receipt")
        chain_id = f.wallet.wallet.chain_id
        fee = from_units(receipt.fee_wei, 18)
        proof = dict(tx_hash=receipt.tx_hash, block=receipt.block_number, fee=fee, chain_id=chain_id)
        if attempt.kind == "cancel" and f.cancel is None:  # the no-op that replaced a swap past its deadline
            return self._finish_no_fill(order, OrdStatus.EXPIRED, f"Expired: its deadline passed before it was mined; "
                                        f"the no-op {receipt.tx_hash} took its nonce", **proof)
        if attempt.kind == "cancel":
            who = f.cancel[1]
            return self._transition(order, OrdStatus.CANCELED, f"canceled: the no-op replacement {receipt.tx_hash} "
                                    "was mined in place of the swap", event=ExecEvent.CANCELED, leaves=Decimal(0),
                                    cancel_cl_ord_id=who, text="Canceled: replaced on chain before it executed",
                                    **proof)
        if receipt.status != 1:
            reason = receipt.revert_reason or "reverted"
            return self._finish_no_fill(order, _revert_status(reason), f"Transaction reverted: {reason}", **proof)
        if f.cancel is not None:
            self._cancel_reject(f.cancel[0], f.cancel[1], order.cl_ord_id, order.order_id, order.status, True,
                                f"Too late to cancel: the swap {receipt.tx_hash} was mined first")
        self._report_fills(f, receipt, proof)
        self._settled[order.order_id] = (f, receipt.block_number)

    def _report_fills(self: "ExecutionEngine", f: InFlight, receipt: Receipt, proof: dict) -> None:
        order, plan = f.order, f.plan
        legs = plan.venue.decode_swaps({"logs": receipt.logs}, plan.intent)
        if not legs:
            return self._finish_no_fill(order, OrdStatus.CANCELED, "Transaction succeeded but no swap log was found",
                                        **proof)
        base_total = quote_total = in_total = out_total = 0
        intent = plan.intent
        for i, leg in enumerate(legs):
            base_units, quote_units = ((leg.amount_in, leg.amount_out) if order.side is Side.SELL
                                       else (leg.amount_out, leg.amount_in))
            base_total += base_units
            quote_total += quote_units
            in_total += leg.amount_in
            out_total += leg.amount_out
            suffix = f":{f.generation}" if f.generation else ""
            fill = Fill(order_id=order.order_id, exec_id=f"{receipt.tx_hash}:{leg.log_index}{suffix}",
                        tx_hash=receipt.tx_hash, log_index=leg.log_index, block_number=receipt.block_number,
                        last_qty=from_units(base_units, plan.base.decimals),
                        last_px=price(quote_units, plan.quote.decimals, base_units, plan.base.decimals),
                        base_units=base_units, quote_units=quote_units)
            last = i == len(legs) - 1
            complete = (in_total if intent.exact is Exact.INPUT else out_total) >= intent.amount
            self.journal.record_fill(fill, proof["fee"] if last else None)
            f.reported_exec_ids.append(fill.exec_id)
            order.cum_qty = from_units(base_total, plan.base.decimals)
            order.avg_px = price(quote_total, plan.quote.decimals, base_total, plan.base.decimals)
            if order.cash_order_qty is not None and last and complete:
                order.order_qty = order.cum_qty  # a cash order's size in base is known once it fills
            status = OrdStatus.FILLED if last and complete else OrdStatus.PARTIALLY_FILLED
            leaves = Decimal(0) if status is OrdStatus.FILLED else None
            self._transition(order, status, f"fill {fill.exec_id}: {fill.last_qty} @ {fill.last_px}",
                             event=ExecEvent.TRADE, exec_id=fill.exec_id, last_qty=fill.last_qty,
                             last_px=fill.last_px, leaves=leaves,
                             **{**proof, "fee": proof["fee"] if last else None})
        if order.status is OrdStatus.PARTIALLY_FILLED:
            # IOC: what the venue could not fill at the limit is canceled, not left working.
            self._finish_no_fill(order, OrdStatus.CANCELED, "IOC: the rest could not be filled at the limit price",
                                 tx_hash=receipt.tx_hash, block=receipt.block_number, chain_id=proof["chain_id"])

    # ---- looking after what is not mined -----------------------------------------------------
    def _look_after(self: "ExecutionEngine", chain: str, head: int, head_time: int) -> None:
        pending = [f for f in list(self._flights.values()) if f.chain == chain and f.receipt is None]
        if not pending:
            return
        chain_nonces: dict[str, int | None] = {}
        lowest: dict[str, int] = {}
        for f in pending:
            addr = f.wallet.wallet.address
            lowest[addr] = min(lowest.get(addr, f.nonce), f.nonce)
        for f in sorted(pending, key=lambda f: f.nonce):
            addr = f.wallet.wallet.address
            if addr not in chain_nonces:
                # At the block being looked after, not 'latest': a newer block may hold our own
                # transaction, and its receipt is this watcher's to process next.
                try:
                    chain_nonces[addr] = f.wallet.submitter.w3.eth.get_transaction_count(addr, head)
                except Exception as e:  # the node is failing: nothing is decided on a guess; next block
                    log.info("nonce not read; looked after next block", wallet=f.wallet.wallet.name, error=str(e)[:200])
                    chain_nonces[addr] = None
            chain_nonce = chain_nonces[addr]
            if chain_nonce is None:
                continue
            try:
                self._look_after_one(f, chain_nonce, lowest[addr], head, head_time)
            except Exception as e:  # a node error mid-way: the transaction is journaled; next block again
                log.warning("looking after a transaction failed; again next block", order_id=f.order.order_id,
                            error=f"{type(e).__name__}: {e}"[:300])

    def _look_after_one(self: "ExecutionEngine", f: InFlight, chain_nonce: int, lowest: int, head: int,
                        head_time: int) -> None:
        if f.nonce < chain_nonce:
            return self._nonce_passed(f, chain_nonce, head)
        if f.unsent:
            self._resend(f)
        if f.nonce != lowest:
            # Waiting behind the wallet's own earlier nonce is not being stuck: only the lowest
            # pending nonce is ever revived, and the rest get their time once it is mined.
            f.last_action_block = head
        elif f.attempts[-1].kind != "cancel" and head_time > (deadline := self._deadline_of(f)):
            # Mined now it could only revert (the router checks block.timestamp <= deadline),
            # paying a swap's gas for nothing, and a price ceiling may keep it from ever being
            # mined: a no-op takes its nonce and the order ends Expired.
            f.last_action_block = head
            self._replace(f, "cancel", f"deadline {deadline} passed unmined (block {head} at {head_time}): "
                          "no-op replacement")
        elif head - f.last_action_block >= self.spec.chains[f.chain].replace_after_blocks:
            f.last_action_block = head
            self._revive(f)

    def resend_later(self: "ExecutionEngine", f: InFlight, why: str) -> None:
        """The broadcast got no answer (connection reset, timeout, HTTP 5xx): the node may have the
        transaction or not. It stays journaled and in flight, and is sent again (same bytes) until
        the node takes it or its nonce is used."""
        f.unsent = True
        self.journal.add_event(f.order.order_id, "tx", f"broadcast of {f.attempts[-1].tx_hash} got no answer "
                               f"({why[:160]}): sent again from the journal")

    def _resend(self: "ExecutionEngine", f: InFlight) -> None:
        latest = f.attempts[-1]
        try:
            f.wallet.submitter.broadcast(latest.raw)
        except (ValueError, Web3RPCError) as e:
            # A refusal (e.g. the nonce was used meanwhile: by this very transaction, if the lost
            # answer was the node's yes). The nonce check and re-pricing take it from here.
            f.unsent = False
            log.info("resend refused", tx=latest.tx_hash, error=str(e)[:200])
            return
        except Exception as e:
            log.info("resend got no answer; again", tx=latest.tx_hash, error=str(e)[:200])
            return
        f.unsent = False
        self.journal.set_tx_status(latest.tx_hash, "broadcast", only_from=("signed",))
        self.journal.add_event(f.order.order_id, "tx", f"sent again: {latest.tx_hash}")

    def _deadline_of(self: "ExecutionEngine", f: InFlight) -> int:
        """The swap's deadline; for an order recovered after a restart, the one its quote journaled
        (a re-plan would make a new one). Unknown: never."""
        if f.deadline is None:
            known = self._journaled_detail(f.order.order_id, "deadline", kind="quote")
            f.deadline = 2**256 if known is None else int(known)
        return f.deadline

    def _nonce_passed(self: "ExecutionEngine", f: InFlight, chain_nonce: int, head: int) -> None:
        """The chain is past our nonce: one of our attempts was mined (its receipt not served yet, or
        mined while we were away), or a transaction the bridge did not send used the nonce. Only
        the second ends the order, and only once the node says so for every attempt: no receipt,
        and no mined transaction. A node that cannot answer is asked again next block."""
        watcher = self._watchers.get(f.chain)
        if watcher is not None and any(watcher.owes(a.tx_hash) for a in f.attempts):
            return  # ours is in a block the watcher delivered; its receipt is owed and asked for
        submitter = f.wallet.submitter
        try:
            answers = batch_call(submitter.w3, [c for a in f.attempts for c in (
                ("eth_getTransactionReceipt", [a.tx_hash]), ("eth_getTransactionByHash", [a.tx_hash]))])
        except Exception as e:
            log.info("nonce passed; lookups not answered, decided later", order_id=f.order.order_id, error=str(e)[:200])
            return
        for i, a in enumerate(f.attempts):
            receipt, tx = answers[2 * i], answers[2 * i + 1]
            if "error" in receipt or "error" in tx:
                log.info("nonce passed; the node could not say whose, decided later", order_id=f.order.order_id,
                         error=str(receipt.get("error") or tx.get("error"))[:200])
                return
            if receipt.get("result"):
                try:
                    mined = submitter.receipt_from_json(receipt["result"])
                except Exception as e:
                    log.info("nonce passed; receipt not read, decided later", tx=a.tx_hash, error=str(e)[:200])
                    return
                self._mined(f, mined, a.tx_hash)
                if watcher is not None and self._confirmed(f, head, watcher.hashes):
                    self._settle(f)
                return
            if (tx.get("result") or {}).get("blockNumber") is not None:
                return  # mined, and the node does not serve its receipt yet: wait for it
        # A node can count a nonce a moment before it serves the transaction that used it (anvil,
        # automine: seen in bench/latency.py, 3 of 2,000 orders). "Not ours" only once it stays so.
        now = time.monotonic()
        if f.passed_unseen_since is None or now - f.passed_unseen_since < NONCE_PASSED_GRACE_S:
            f.passed_unseen_since = f.passed_unseen_since or now
            return
        self.untrack(f)
        submitter.nonces.resync(chain_nonce)
        for a in f.attempts:
            self.journal.set_tx_status(a.tx_hash, "dropped")
        log.warning("nonce used outside the bridge", wallet=f.wallet.wallet.name, nonce=f.nonce,
                    order_id=f.order.order_id)
        self._finish_no_fill(f.order, OrdStatus.CANCELED,
                             f"Not executed: nonce {f.nonce} of wallet {f.wallet.wallet.name} was used by a "
                             "transaction the bridge did not send", cancel_cl_ord_id=f.cancel[1] if f.cancel else None)

    def _revive(self: "ExecutionEngine", f: InFlight, reprice: bool = True) -> None:
        """Rebroadcast if the node lost the transaction; otherwise re-price it (same nonce, same call)."""
        latest = f.attempts[-1]
        w3 = f.wallet.submitter.w3
        try:
            known = w3.eth.get_transaction(latest.tx_hash) is not None
        except TransactionNotFound:
            known = False
        # Any other error: the node is failing, and what it holds is unknown; next block again.
        if not known:
            self.journal.add_event(f.order.order_id, "tx", f"rebroadcast {latest.tx_hash}: the node no longer had it")
            try:
                f.wallet.submitter.broadcast(latest.raw)
                self.journal.set_tx_status(latest.tx_hash, "broadcast")
                return
            except (ValueError, Web3RPCError) as e:
                if "nonce" in str(e).lower():
                    return  # mined or replaced meanwhile: the nonce check settles it next block
                # Typically underpriced now (the base fee rose past its max fee): re-price it.
                log.info("rebroadcast refused; re-pricing", tx=latest.tx_hash, error=str(e)[:200])
                return self._replace(f, latest.kind, f"rebroadcast refused ({str(e)[:120]}): re-priced")
            except Exception as e:  # no answer: sent again at the next tick
                return self.resend_later(f, describe(e))
        if reprice:
            self._replace(f, latest.kind, "stuck: re-priced")

    def replace_with_noop(self: "ExecutionEngine", order_id: str) -> None:
        """Cancel a sent order: a 0-value transfer to ourselves at its nonce, with higher fees."""
        f = self._flights.get(order_id)
        if f is None or f.receipt is not None:
            return
        self._replace(f, "cancel", "cancel requested: no-op replacement")

    def _replace(self: "ExecutionEngine", f: InFlight, kind: str, why: str) -> None:
        prev = f.attempts[-1]
        if self.ownership_lost:
            # No signature without the wallet's lease: another instance may be signing at this
            # nonce now. The transaction already sent stays tracked; its outcome is still reported.
            if not f.lease_held_back:
                f.lease_held_back = True
                self.journal.add_event(f.order.order_id, "tx", f"{why}: not re-signed, this bridge instance no "
                                       f"longer holds its wallet lease ({self.ownership_lost})", detail={"nonce": f.nonce})
            return
        policy = self.spec.chains[f.chain]
        base_fee = latest_base_fee(f.wallet.submitter.w3)
        tip = _bumped(prev.tip, policy.fee_bump_percent)
        max_fee = max(_bumped(prev.max_fee, policy.fee_bump_percent), 2 * base_fee + tip)
        ceiling = policy.max_fee_per_gas_wei
        if ceiling is not None and kind != "cancel" and max_fee > ceiling:
            # Re-pricing stops at the ceiling ops set. A cancel's no-op is exempt: it costs 21,000
            # gas, and a cancel that cannot outbid the swap would not be one.
            max_fee, tip = ceiling, min(tip, ceiling)
            if max_fee < _bumped(prev.max_fee, NODE_MIN_BUMP_PERCENT) or tip < _bumped(prev.tip, NODE_MIN_BUMP_PERCENT):
                if not f.at_ceiling:
                    f.at_ceiling = True
                    self.journal.add_event(f.order.order_id, "tx", f"{why}: not re-priced, {prev.tx_hash} already bids "
                                           f"what the chain's max_fee_per_gas_gwei allows ({ceiling} wei); waiting "
                                           "for the base fee to come down",
                                           detail={"nonce": f.nonce, "max_fee": str(prev.max_fee), "ceiling": str(ceiling),
                                                   "base_fee": str(base_fee)})
                return
        to, data, gas = (f.wallet.wallet.address, b"", 21_000) if kind == "cancel" else (f.to, f.data, f.gas_limit)
        sent = f.wallet.submitter.sign(to, data, gas, nonce=f.nonce, max_fee=max_fee, tip=tip, gas_limit=gas)
        self._write_ahead(f.order.order_id, kind, f.wallet)(sent)
        attempt = Attempt.of(sent, kind)
        with self._lock:
            f.attempts.append(attempt)
            self._by_hash[attempt.tx_hash] = f.order.order_id
        self.metrics.replaced(f.chain, kind)
        self.journal.add_event(f.order.order_id, "tx", f"{why}: {attempt.tx_hash} replaces {prev.tx_hash}",
                               detail={"nonce": f.nonce, "max_fee": str(max_fee), "tip": str(tip)})
        f.unsent = False
        try:
            f.wallet.submitter.broadcast(sent.signed.raw)
            self.journal.set_tx_status(attempt.tx_hash, "broadcast", only_from=("signed",))
        except (ValueError, Web3RPCError) as e:
            # Most likely the original was mined meanwhile (nonce too low): the next block settles it.
            self.journal.set_tx_status(attempt.tx_hash, "failed")
            log.info("replacement refused", order_id=f.order.order_id, error=str(e)[:200])
        except Exception as e:  # no answer: the node may have it; it stays journaled and is sent again
            self.resend_later(f, describe(e))

    def fill_nonce_gap(self: "ExecutionEngine", w: "TradingWallet", nonce: int) -> str | None:
        """A hole below later nonces (a refused transaction; at start, one the chain lost): fill it
        with a no-op so they can mine. The no-op is looked after until the chain passes its nonce
        (sent again if it got no answer or the node lost it): every later nonce of the wallet waits
        for it. Returns its hash, or None when nothing was signed."""
        if w.submitter.nonces.peek() <= nonce:
            return None  # it was the last one taken and was given back
        if self.ownership_lost:  # no signature without the wallet's lease: whoever holds it now fills it
            log.warning("nonce gap not filled: wallet lease lost", wallet=w.wallet.name, nonce=nonce)
            return None
        sent = w.submitter.sign(w.wallet.address, b"", 21_000, nonce=nonce, gas_limit=21_000)
        self._write_ahead(None, "gap_fill", w)(sent)
        loose = Loose(w, nonce, sent.signed.tx_hash.lower(), sent.signed.raw)
        self._loose[(w.chain, w.wallet.address, nonce)] = loose
        self._send_loose(loose)
        return loose.tx_hash

    def _send_loose(self: "ExecutionEngine", loose: Loose) -> None:
        """Refused or unanswered, it is looked after each block until its nonce is used."""
        loose.unsent = False
        try:
            loose.wallet.submitter.broadcast(loose.raw)
            self.journal.set_tx_status(loose.tx_hash, "broadcast", only_from=("signed",))
        except (ValueError, Web3RPCError) as e:
            log.warning("nonce gap's no-op refused", wallet=loose.wallet.wallet.name, nonce=loose.nonce, error=str(e)[:200])
        except Exception as e:
            loose.unsent = True
            log.warning("nonce gap's no-op got no answer", wallet=loose.wallet.wallet.name, nonce=loose.nonce,
                        error=str(e)[:200])

    def _look_after_loose(self: "ExecutionEngine", chain: str, head: int) -> None:
        """Each block: a gap's no-op whose nonce the chain has passed is done; one the node does not
        hold is sent again, and re-signed at current fees if the node refuses its bytes."""
        for key, loose in list(self._loose.items()):
            if key[0] != chain:
                continue
            w = loose.wallet
            try:
                if w.submitter.w3.eth.get_transaction_count(w.wallet.address, head) > loose.nonce:
                    self._loose.pop(key, None)
                    continue
                try:
                    held = w.submitter.w3.eth.get_transaction(loose.tx_hash) is not None
                except TransactionNotFound:
                    held = False
                if held:
                    continue
                try:
                    w.submitter.broadcast(loose.raw)
                    loose.unsent = False
                except (ValueError, Web3RPCError) as e:  # refused (underpriced now?): new fees, same nonce
                    if self.ownership_lost:
                        continue  # no signature without the wallet's lease
                    log.info("gap no-op refused; re-signed", nonce=loose.nonce, error=str(e)[:200])
                    sent = w.submitter.sign(w.wallet.address, b"", 21_000, nonce=loose.nonce, gas_limit=21_000)
                    self._write_ahead(None, "gap_fill", w)(sent)
                    loose.tx_hash, loose.raw = sent.signed.tx_hash.lower(), sent.signed.raw
                    self._send_loose(loose)
            except Exception as e:
                log.info("gap no-op not looked after this block", nonce=loose.nonce, error=str(e)[:200])

    # ---- recovery ------------------------------------------------------------------------------
    def recover_in_flight(self: "ExecutionEngine", items: list) -> None:
        """Rebuild the in-flight book from the journal; what was mined while we were away settles,
        the rest is rebroadcast from its journaled bytes (same nonce: it can never run twice).
        RECOVERY_CHUNK orders at a time: their lookups in one JSON-RPC batch, their rows in one
        group commit, their reports after it."""
        for start in range(0, len(items), RECOVERY_CHUNK):
            with self.journal.batch():
                flights = [f for f in (self._recovered(row, txs) for row, txs in items[start:start + RECOVERY_CHUNK]) if f]
                found = self._find_on_chain(flights)
                for f in flights:
                    try:
                        mined = next(((found[a.tx_hash], a.tx_hash) for a in f.attempts if a.tx_hash in found), None)
                        if mined:
                            self._mined(f, f.wallet.submitter.receipt_from_json(mined[0]), mined[1])
                            self._settle(f)
                            continue
                        for a in f.attempts:
                            try:
                                f.wallet.submitter.broadcast(a.raw)
                                self.journal.set_tx_status(a.tx_hash, "broadcast", only_from=("signed",))
                            except Exception as e:
                                log.info("recovery: rebroadcast refused", tx=a.tx_hash, error=str(e)[:200])
                    except Exception:
                        log.exception("recovery failed", order_id=f.order.order_id)

    def _recovered(self: "ExecutionEngine", row, txs) -> InFlight | None:
        """The in-flight record of a journaled order and its transactions, tracked again."""
        try:
            order = self._order_from_row(row)
            cp = self.counterparty(order.session_id)
            plan = self._plan(order, cp, quote=False)
            w = plan.wallet
            # Re-pricing must resend exactly what was signed: take the call from the journaled bytes.
            first = [t for t in txs if t.purpose != "cancel"][0]
            signed = TypedTransaction.from_bytes(HexBytes(first.raw_tx)).as_dict()
            call_to, call_data = to_checksum_address(signed["to"]), bytes(signed["data"])
            nonce = txs[0].nonce
            attempts = [Attempt(t.tx_hash.lower(), t.raw_tx, t.max_fee_per_gas, t.max_priority_fee_per_gas,
                                "cancel" if t.purpose == "cancel" else "swap") for t in txs if t.nonce == nonce]
            f = InFlight(order=order, plan=plan, wallet=w, nonce=nonce, to=call_to, data=call_data,
                         gas_limit=txs[0].gas_limit, attempts=attempts, sent_block=self.head(w.chain),
                         reserved=(plan.intent.token_in, 0))
            if order.status is OrdStatus.PENDING_CANCEL:
                # A journal from before the cancel's ClOrdID was kept: the order's own.
                f.cancel = (order.session_id, self._journaled_detail(order.order_id, CANCEL_CL_ORD_ID) or order.cl_ord_id)
            self.track(f)
            return f
        except Exception:
            log.exception("recovery failed", order_id=row.order_id)
            return None

    def _journaled_detail(self: "ExecutionEngine", order_id: str, key: str, kind: str | None = None):
        """The latest value of `key` in the details of an order's journaled events (of `kind`), or
        None: what a restart needs back that the order's row does not hold (the quote's deadline;
        a cancel's ClOrdID, from the PendingCancel transition or the note of a cancel held for an
        order not yet sent, so the answer after a restart names the client's own request)."""
        found = [e.detail[key] for e in self.journal.events(order_id)
                 if (kind is None or e.kind == kind) and e.detail and e.detail.get(key) is not None]
        return found[-1] if found else None

    @staticmethod
    def _find_on_chain(flights: list[InFlight]) -> dict[str, dict]:
        """tx hash -> raw receipt, for the attempts the node knows and has mined (one JSON-RPC batch
        per chain). A lookup the node does not answer counts as not found: the attempt is rebroadcast,
        which a node that has it refuses."""
        found: dict[str, dict] = {}
        by_chain: dict[str, list] = {}
        for f in flights:
            by_chain.setdefault(f.chain, []).extend((f.wallet, a.tx_hash) for a in f.attempts)
        for pairs in by_chain.values():
            w3 = pairs[0][0].submitter.w3
            try:
                answers = batch_call(w3, [c for _, h in pairs for c in (("eth_getTransactionByHash", [h]),
                                                                         ("eth_getTransactionReceipt", [h]))])
            except Exception as e:
                log.warning("recovery: lookups failed", error=str(e)[:200])
                continue
            for i, (_, h) in enumerate(pairs):
                tx, receipt = answers[2 * i].get("result"), answers[2 * i + 1].get("result")
                if tx is not None and receipt is not None:
                    found[h] = receipt
        return found


def _bumped(fee: int, percent: int) -> int:
    """`fee` raised by `percent` (rounded down, and by at least 1 wei)."""
    return fee + max(fee * percent // 100, 1)


def _revert_status(reason: str) -> OrdStatus:
    return OrdStatus.EXPIRED if "EXPIRED" in reason.upper() or "Transaction too old" in reason else OrdStatus.CANCELED
