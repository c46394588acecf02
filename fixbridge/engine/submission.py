"""Submission: a planned order becomes a signed, journaled, broadcast transaction. Simulates (or
reuses a route's recent gas), signs under the book's lock (a cancel racing the signature either
wins or is told it is too late), journals the signed bytes and nonce (write-ahead), tracks the
flight, and broadcasts once the journal rows are committed: a flush's swaps in one JSON-RPC batch
per wallet, from the journal's broadcast lane. Does not wait for the chain. A refusal ends the
order Canceled and a no-op fills the nonce it leaves; no answer leaves it in flight, sent again."""
from __future__ import annotations

from datetime import datetime, timezone

import structlog

from fixbridge.chain.submitter import NoAnswer, SentTx, WouldRevert, nonce_used
from fixbridge.engine.confirmation import revert_status
from fixbridge.engine.desk import OrderDesk
from fixbridge.engine.faults import crash_point
from fixbridge.engine.flights import Attempt, InFlight, InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.journaling import WalletLease, WriteAhead
from fixbridge.engine.markets import TradingWallet
from fixbridge.engine.planning import Plan
from fixbridge.engine.resending import Resender
from fixbridge.journal import Journal
from fixbridge.orders.model import Order, OrdStatus
from fixbridge.venues.base import Exact

log = structlog.get_logger(__name__)

GAS_CACHE_BLOCKS = 64  # how long a route's simulated gas is reused for orders whose quote meets the bound


class Submission:
    def __init__(self, journal: Journal, book: InFlightBook, heads: ChainHeads, desk: OrderDesk,
                 write_ahead: WriteAhead, resender: Resender, lease: WalletLease) -> None:
        self.journal, self.book, self.heads, self.desk = journal, book, heads, desk
        self.write_ahead, self.resender, self.lease = write_ahead, resender, lease
        # (chain, router, selector, token_in, token_out) -> (block, highest simulated gas)
        self._route_gas: dict[tuple, tuple[int, int]] = {}

    def execute(self, order: Order, plan: Plan, waits_for: InFlight | None = None,
                prior: tuple[int, int] | None = None) -> None:
        """Simulate (or reuse the route's gas), sign, journal, track; the broadcast follows the
        batch's commit. `waits_for`: the approval sent right before, not mined yet: the simulation
        runs against the node's pending state, which holds it (anvil and geth execute `pending`
        calls on top of the transactions in their pool). `prior`: a resting order's slice, and what
        its earlier slices filled."""
        w = plan.wallet
        call = plan.call
        desk = self.desk
        gas = self._known_gas(plan, call)
        if gas is None:
            try:
                gas = w.submitter.simulate(call.to, call.data)
            except WouldRevert as e:
                return desk.end_without_fill(order, revert_status(e.reason), f"Not sent, simulation reverted: {e.reason}")
            except Exception as e:  # not a revert: the node failed
                return desk.node_failed(order, "simulating", e)
            self._learn_gas(plan, call, gas)
        try:
            w.submitter.base_fee()  # read before the signature (usually cached): a failure ends the order unsigned
        except Exception as e:
            return desk.node_failed(order, "reading the base fee", e)
        with self.book.lock:  # a cancel racing the signature either wins here or is told it is too late
            if waits_for is not None and waits_for.failed is not None:  # settled meanwhile (the watcher, this lock)
                return desk.end_without_fill(order, OrdStatus.CANCELED, f"{waits_for.failed}; nothing was sent")
            if waits_for is not None and waits_for.granted:
                waits_for = None
                if order.status is OrdStatus.PENDING_NEW:
                    desk.accept(order, plan, "; its approval was mined")
            if desk.take_cancel(order, plan):
                return
            if self.lease.lost:
                return desk.end_without_fill(order, OrdStatus.CANCELED, "Not sent: this bridge instance no longer "
                                             f"holds its wallet lease ({self.lease.lost})")
            crash_point("before_sign")
            sent = w.submitter.sign(call.to, call.data, gas)
            self.write_ahead.hook(order.order_id, "swap", w, deferred=True, status=order.status)(sent)
            flight = InFlight(order=order, plan=plan, wallet=w, nonce=sent.nonce, to=call.to, data=call.data,
                              gas_limit=sent.gas_limit, attempts=[Attempt.of(sent, "swap")],
                              sent_block=self.heads.head(w.chain), reserved=plan.pays, deadline=plan.intent.deadline,
                              waits_for=waits_for, prior=prior, queued=True)
            self.book.track(flight)
        # One broadcast for all the swaps of this flush, once their write-ahead rows are committed.
        self.journal.collect_after_commit("broadcast", (flight, sent), self.broadcast, lane="broadcast")

    def broadcast(self, items: list) -> None:
        """Broadcast the swaps whose write-ahead rows were just committed, in one round trip per wallet."""
        by_wallet: dict[str, list] = {}
        for flight, sent in items:
            by_wallet.setdefault(flight.wallet.wallet.name, []).append((flight, sent))
        for group in by_wallet.values():
            w = group[0][0].wallet
            handed_over = datetime.now(timezone.utc)
            refusals = w.submitter.broadcast_many([sent for _, sent in group])
            accepted, refused = [], []
            for (flight, sent), refusal in zip(group, refusals):
                try:
                    if self._refused(w, flight, sent, refusal):
                        refused.append(sent)
                    elif refusal is None:
                        accepted.append(sent.signed.tx_hash)
                finally:
                    # Decided: from here on the Resender and the LostRelay may send it again. Not
                    # before: a refusal's "does the node hold it?" must not race their rebroadcast.
                    flight.queued = False
            for sent in reversed(refused):  # the last nonces taken go back to the book, no gap left
                w.submitter.nonces.give_back(sent.nonce)
            for sent in refused:  # a hole below later nonces: a no-op fills it
                self.resender.fill_nonce_gap(w, sent.nonce)
            # The watcher may already have recorded a receipt (automine): never step back from it.
            self.journal.set_tx_status_many(accepted, "broadcast", only_from=("signed",), ts=handed_over)
            crash_point("after_broadcast")

    def _refused(self, w: TradingWallet, flight: InFlight, sent: SentTx, refusal: str | NoAnswer | None) -> bool:
        """What the node's answer to one broadcast means; True when it refused the swap for good
        (the order ended Canceled, its nonce to be given back)."""
        book = self.book
        if refusal is None:
            return False
        if isinstance(refusal, NoAnswer):  # may have arrived: journaled, in flight, sent again
            self.resender.resend_later(flight, refusal.error)
            return False
        with book.lock:
            if book.get(flight.key) is not flight or flight.receipt is not None or nonce_used(refusal):
                # Mined already (a lost answer's retry is refused), or its nonce is used:
                # the chain decides, through the watcher and the nonce check, not this answer.
                log.info("broadcast refused after the fact", tx=sent.signed.tx_hash, refusal=refusal[:200])
                return False
        if w.submitter.holds(sent.signed.tx_hash) is not False:
            # The node has it after all (a retried broadcast: the first try arrived, its answer
            # was lost, the retry was refused), or cannot say: in flight, sent again.
            self.resender.resend_later(flight, f"refused ({refusal[:100]}) but the node may hold it")
            return False
        with book.lock:
            if book.get(flight.key) is not flight or flight.receipt is not None:
                return False
            book.untrack(flight)
            self.journal.set_tx_status(sent.signed.tx_hash, "failed")
            self.desk.end_without_fill(flight.order, OrdStatus.CANCELED, f"Not sent, the node refused it: {refusal}")
        return True

    # ---- a route's simulated gas ----------------------------------------------------------------
    @staticmethod
    def _route_key(plan: Plan, call) -> tuple | None:
        if plan.write is not None or (plan.intent.partial and plan.venue.fills_partially):
            return None  # sell-to-open and price-limited partial swaps: always simulate
        return (plan.wallet.chain, call.to, bytes(call.data[:4]), plan.intent.token_in, plan.intent.token_out)

    def _known_gas(self, plan: Plan, call) -> int | None:
        """A recent simulation's gas for the same route, if this order's quote meets its bound: then
        the swap succeeds against the state it was quoted on, and a simulation would only repeat
        the gas figure. An order whose quote misses its bound is simulated, for the venue's reason."""
        i = plan.intent
        meets = plan.quoted >= i.bound if i.exact is Exact.INPUT else plan.quoted <= i.bound
        key = self._route_key(plan, call)
        if not meets or key is None or plan.quoted <= 0:
            return None
        known = self._route_gas.get(key)
        if known is None or self.heads.head(plan.wallet.chain) - known[0] > GAS_CACHE_BLOCKS:
            return None
        return known[1]

    def _learn_gas(self, plan: Plan, call, gas: int) -> None:
        key = self._route_key(plan, call)
        if key is None:
            return
        head = self.heads.head(plan.wallet.chain)
        prev = self._route_gas.get(key)
        fresh = prev is not None and head - prev[0] <= GAS_CACHE_BLOCKS
        self._route_gas[key] = (head, max(gas, prev[1]) if fresh else gas)
