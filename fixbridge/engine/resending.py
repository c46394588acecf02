"""Resending: what is sent and not mined is looked after each block (and each tick). A
transaction unmined for its chain's `replace_after_blocks` is rebroadcast if the node lost it, or
replaced with the same call at fees `fee_bump_percent` higher, never above the chain's
`max_fee_per_gas_gwei`; a swap past its deadline is replaced by a no-op (the order ends Expired);
a cancel is a no-op at the swap's nonce; a broadcast that got no answer is sent again; a nonce the
chain passed without ours means someone else used it — decided only once the node says, for every
attempt, that it has neither a receipt nor a mined transaction, and stays so for
NONCE_PASSED_GRACE_S. A gap's no-op (a nonce no order holds) is looked after until mined, since
every later nonce of its wallet waits for it."""
from __future__ import annotations

import time

import structlog
from web3.exceptions import TransactionNotFound, Web3RPCError

from fixbridge.chain.rpc import batch_call, describe, latest_base_fee
from fixbridge.config import Spec
from fixbridge.engine.confirmation import Confirmer
from fixbridge.engine.desk import OrderDesk
from fixbridge.engine.flights import Attempt, InFlight, InFlightBook, Loose
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.journaling import WalletLease, WriteAhead, journaled_detail
from fixbridge.engine.markets import TradingWallet
from fixbridge.engine.relaying import LostRelay
from fixbridge.journal import Journal
from fixbridge.ops.metrics import BridgeMetrics
from fixbridge.orders.model import OrdStatus

log = structlog.get_logger(__name__)

NODE_MIN_BUMP_PERCENT = 10  # nodes (geth, anvil) refuse a same-nonce replacement that raises its bid less
NONCE_PASSED_GRACE_S = 2.0  # how long ours must stay unfound at a passed nonce before it is called not ours


def bumped(fee: int, percent: int) -> int:
    """`fee` raised by `percent` (rounded down, and by at least 1 wei)."""
    return fee + max(fee * percent // 100, 1)


class Resender:
    def __init__(self, spec: Spec, journal: Journal, book: InFlightBook, heads: ChainHeads, desk: OrderDesk,
                 confirmer: Confirmer, write_ahead: WriteAhead, lease: WalletLease, metrics: BridgeMetrics,
                 relay: LostRelay) -> None:
        self.spec, self.journal, self.book, self.heads, self.desk = spec, journal, book, heads, desk
        self.relay = relay
        self.confirmer, self.write_ahead, self.lease, self.metrics = confirmer, write_ahead, lease, metrics

    # ---- between blocks (watcher thread) --------------------------------------------------------
    def on_tick(self, chain: str) -> None:
        """Send again what got no answer (an automine devnet makes no block until it has the
        transaction); decide passed nonces whose grace ran out."""
        book = self.book
        with book.lock:
            unsent = sorted((f for f in book.on_chain(chain) if f.unsent and f.receipt is None), key=lambda f: f.nonce)
            doubted = [f for f in book.on_chain(chain) if f.passed_unseen_since is not None and f.receipt is None]
        if not unsent and not doubted and not any(k[0] == chain and l.unsent for k, l in book.loose.items()):
            return
        with book.lock, self.journal.batch():
            for f in unsent:
                self.resend(f)
            for f in doubted:  # a passed nonce whose transaction was not found: decided once it stays so
                if book.get(f.key) is f and f.receipt is None:  # an approval is keyed by its hash
                    chain_nonce = f.wallet.submitter.w3.eth.get_transaction_count(f.wallet.wallet.address, "latest")
                    if f.nonce < chain_nonce:
                        self._nonce_passed(f, chain_nonce, self.heads.head(chain))
            for key, loose in list(book.loose.items()):
                if key[0] == chain and loose.unsent:
                    self._send_loose(loose)

    # ---- each block ------------------------------------------------------------------------------
    def look_after(self, chain: str, head: int, head_time: int) -> None:
        pending = [f for f in self.book.on_chain(chain) if f.receipt is None]
        # The node's height when last asked: a watcher catching up looks after blocks that were
        # mined before anything sent now could be in them; they do not count as its waiting time.
        watcher = self.heads.watcher(chain)
        height = max(head, watcher.polled[1]) if watcher is not None and watcher.polled else head
        by_wallet: dict[str, list[InFlight]] = {}
        for f in sorted(pending, key=lambda f: f.nonce):
            by_wallet.setdefault(f.wallet.wallet.address, []).append(f)
        for flights in by_wallet.values():
            w = flights[0].wallet
            try:
                # At the block being looked after, not 'latest': a newer block may hold our own
                # transaction, and its receipt is this watcher's to process next.
                chain_nonce = w.submitter.w3.eth.get_transaction_count(w.wallet.address, head)
            except Exception as e:  # the node is failing: nothing is decided on a guess; next block
                log.info("nonce not read; looked after next block", wallet=w.wallet.name, error=str(e)[:200])
                continue
            try:
                for f, refusal in self.relay.relay(flights, chain_nonce, head, height):
                    f.last_action_block = head
                    self._replace(f, f.attempts[-1].kind, f"rebroadcast refused ({refusal[:120]}): re-priced")
            except Exception as e:  # a node error: the lost ones are looked for again next block
                log.info("lost transactions not looked for this block", wallet=w.wallet.name, error=str(e)[:200])
            lowest = flights[0].nonce
            for f in flights:
                try:
                    self._look_after_one(f, chain_nonce, lowest, head, head_time)
                except Exception as e:  # a node error mid-way: the transaction is journaled; next block again
                    log.warning("looking after a transaction failed; again next block", order_id=f.order.order_id,
                                error=f"{type(e).__name__}: {e}"[:300])

    def _look_after_one(self, f: InFlight, chain_nonce: int, lowest: int, head: int, head_time: int) -> None:
        if f.queued and f.nonce >= chain_nonce:
            f.last_action_block = head
            return  # its first broadcast is not decided yet (Submission): nothing is sent for it meanwhile
        if f.nonce < chain_nonce:
            return self._nonce_passed(f, chain_nonce, head)
        if f.orphaned is not None and f.attempts[-1].kind != "cancel":
            f.last_action_block = head
            return self._replace(f, "cancel", f"{f.orphaned}: the swap could only revert: no-op replacement")
        if f.unsent:
            self.resend(f)
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
            self.revive(f)

    def _deadline_of(self, f: InFlight) -> int:
        """The swap's deadline; for an order recovered after a restart, the one its quote journaled
        (a re-plan would make a new one). Unknown: never."""
        if f.deadline is None:
            known = journaled_detail(self.journal, f.order.order_id, "deadline", kind="quote")
            f.deadline = 2**256 if known is None else int(known)
        return f.deadline

    # ---- sending again -------------------------------------------------------------------------
    def resend_later(self, f: InFlight, why: str) -> None:
        """The broadcast got no answer (connection reset, timeout, HTTP 5xx): the node may have the
        transaction or not. It stays journaled and in flight, and is sent again (same bytes) until
        the node takes it or its nonce is used."""
        f.unsent = True
        self.journal.add_event(f.order.order_id, "tx", f"broadcast of {f.attempts[-1].tx_hash} got no answer "
                               f"({why[:160]}): sent again from the journal")

    def resend(self, f: InFlight) -> None:
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

    def revive(self, f: InFlight, reprice: bool = True) -> None:
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

    def replace_with_noop(self, order_id: str) -> None:
        """Cancel a sent order: a 0-value transfer to ourselves at its nonce, with higher fees."""
        f = self.book.get(order_id)
        if f is None or f.receipt is not None:
            return
        self._replace(f, "cancel", "cancel requested: no-op replacement")

    def _replace(self, f: InFlight, kind: str, why: str) -> None:
        prev = f.attempts[-1]
        if self.lease.lost:
            # No signature without the wallet's lease: another instance may be signing at this
            # nonce now. The transaction already sent stays tracked; its outcome is still reported.
            if not f.lease_held_back:
                f.lease_held_back = True
                self.journal.add_event(f.order.order_id, "tx", f"{why}: not re-signed, this bridge instance no "
                                       f"longer holds its wallet lease ({self.lease.lost})", detail={"nonce": f.nonce})
            return
        policy = self.spec.chains[f.chain]
        base_fee = latest_base_fee(f.wallet.submitter.w3)
        tip = bumped(prev.tip, policy.fee_bump_percent)
        max_fee = max(bumped(prev.max_fee, policy.fee_bump_percent), 2 * base_fee + tip)
        ceiling = policy.max_fee_per_gas_wei
        if ceiling is not None and kind != "cancel" and max_fee > ceiling:
            # Re-pricing stops at the ceiling ops set. A cancel's no-op is exempt: it costs 21,000
            # gas, and a cancel that cannot outbid the swap would not be one.
            max_fee, tip = ceiling, min(tip, ceiling)
            if max_fee < bumped(prev.max_fee, NODE_MIN_BUMP_PERCENT) or tip < bumped(prev.tip, NODE_MIN_BUMP_PERCENT):
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
        self.write_ahead.hook(f.order.order_id, kind, f.wallet)(sent)
        attempt = Attempt.of(sent, kind)
        self.book.add_attempt(f, attempt)
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

    # ---- a nonce the chain passed --------------------------------------------------------------
    def _nonce_passed(self, f: InFlight, chain_nonce: int, head: int) -> None:
        """The chain is past our nonce: one of our attempts was mined (its receipt not served yet, or
        mined while we were away), or a transaction the bridge did not send used the nonce. Only
        the second ends the order, and only once the node says so for every attempt: no receipt,
        and no mined transaction. A node that cannot answer is asked again next block."""
        watcher = self.heads.watcher(f.chain)
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
                self.confirmer.mined(f, mined, a.tx_hash)
                if watcher is not None and self.confirmer.confirmed(f, head, watcher.hashes):
                    self.confirmer.settle(f)
                return
            if (tx.get("result") or {}).get("blockNumber") is not None:
                return  # mined, and the node does not serve its receipt yet: wait for it
        # A node can count a nonce a moment before it serves the transaction that used it (anvil,
        # automine: seen in bench/latency.py, 3 of 2,000 orders). "Not ours" only once it stays so.
        now = time.monotonic()
        if f.passed_unseen_since is None or now - f.passed_unseen_since < NONCE_PASSED_GRACE_S:
            f.passed_unseen_since = f.passed_unseen_since or now
            return
        self.book.untrack(f)
        submitter.nonces.resync(chain_nonce)
        for a in f.attempts:
            self.journal.set_tx_status(a.tx_hash, "dropped")
        log.warning("nonce used outside the bridge", wallet=f.wallet.wallet.name, nonce=f.nonce,
                    order_id=f.order.order_id)
        used = f"nonce {f.nonce} of wallet {f.wallet.wallet.name} was used by a transaction the bridge did not send"
        if f.approves is not None:
            return self.confirmer.approval_failed(f, f"Approval of {f.approves.token.symbol} lost: {used}")
        if f.orphaned is not None:
            return  # its order already ended
        self.desk.end_without_fill(f.order, OrdStatus.CANCELED,
                                 f"Not executed: {used}", cancel_cl_ord_id=f.cancel[1] if f.cancel else None)

    # ---- nonce gaps ------------------------------------------------------------------------------
    def fill_nonce_gap(self, w: TradingWallet, nonce: int) -> str | None:
        """A hole below later nonces (a refused transaction; at start, one the chain lost): fill it
        with a no-op so they can mine. The no-op is looked after until the chain passes its nonce
        (sent again if it got no answer or the node lost it): every later nonce of the wallet waits
        for it. Returns its hash, or None when nothing was signed."""
        if w.submitter.nonces.peek() <= nonce:
            return None  # it was the last one taken and was given back
        if self.lease.lost:  # no signature without the wallet's lease: whoever holds it now fills it
            log.warning("nonce gap not filled: wallet lease lost", wallet=w.wallet.name, nonce=nonce)
            return None
        sent = w.submitter.sign(w.wallet.address, b"", 21_000, nonce=nonce, gas_limit=21_000)
        self.write_ahead.hook(None, "gap_fill", w)(sent)
        loose = Loose(w, nonce, sent.signed.tx_hash.lower(), sent.signed.raw)
        self.book.loose[(w.chain, w.wallet.address, nonce)] = loose
        self._send_loose(loose)
        return loose.tx_hash

    def _send_loose(self, loose: Loose) -> None:
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

    def look_after_loose(self, chain: str, head: int) -> None:
        """Each block: a gap's no-op whose nonce the chain has passed is done; one the node does not
        hold is sent again, and re-signed at current fees if the node refuses its bytes."""
        for key, loose in list(self.book.loose.items()):
            if key[0] != chain:
                continue
            w = loose.wallet
            try:
                if w.submitter.w3.eth.get_transaction_count(w.wallet.address, head) > loose.nonce:
                    self.book.loose.pop(key, None)
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
                    if self.lease.lost:
                        continue  # no signature without the wallet's lease
                    log.info("gap no-op refused; re-signed", nonce=loose.nonce, error=str(e)[:200])
                    sent = w.submitter.sign(w.wallet.address, b"", 21_000, nonce=loose.nonce, gas_limit=21_000)
                    self.write_ahead.hook(None, "gap_fill", w)(sent)
                    loose.tx_hash, loose.raw = sent.signed.tx_hash.lower(), sent.signed.raw
                    self._send_loose(loose)
            except Exception as e:
                log.info("gap no-op not looked after this block", nonce=loose.nonce, error=str(e)[:200])
