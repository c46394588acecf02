"""The in-flight book: every transaction sent for an order and not yet settled, by order and by
hash, what each wallet has committed to them, settled fills kept for reorgs, and the no-ops that
fill nonce gaps. Shared by submission (adds), confirmation (settles) and resending (replaces);
its lock is the engine's: an order moves through one state at a time."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fixbridge.chain.submitter import Receipt, SentTx
from fixbridge.config import Token
from fixbridge.orders.model import Order

if TYPE_CHECKING:
    from fixbridge.engine.markets import TradingWallet
    from fixbridge.engine.planning import Plan

KEEP_SETTLED_BLOCKS = 64  # how long settled fills are kept to follow a reorg


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


@dataclass(frozen=True)
class ApprovalTerms:
    """What an approval transaction grants: `spender` may take `amount` of `token` (policy
    'standing': the maximum, once; 'exact': what the orders in flight need)."""
    token: Token
    spender: str
    amount: int
    policy: str


@dataclass
class InFlight:
    """A transaction sent and not yet settled: an order's swap (with its re-priced copies and a
    cancel's no-op at the same nonce), or an approval a wallet's swaps wait on (`approves`)."""
    order: Order  # a swap's order; for an approval, the order it was first sent for (journaled on)
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
    queued: bool = False                   # signed; its broadcast waits for its write-ahead row's commit
    approves: ApprovalTerms | None = None  # set: this is an approval, not a swap
    waits_for: "InFlight | None" = None    # a swap's approval, sent right before it and not settled yet
    orphaned: str | None = None            # why the order ended before this swap did (its approval failed)
    granted: bool = False                  # an approval: mined and settled
    failed: str | None = None              # an approval: why it failed (reverted, or its nonce taken)
    # A resting order's slice: the (base, quote) units its earlier slices filled, which this swap's
    # fills add to; None for an order sent whole.
    prior: tuple[int, int] | None = None

    @property
    def chain(self) -> str:
        return self.wallet.chain

    @property
    def key(self) -> str:
        """The book's key: the order for a swap; an approval's own (its first hash)."""
        return self.order.order_id if self.approves is None else "approve:" + self.attempts[0].tx_hash


@dataclass
class Loose:
    """A transaction that holds a nonce for no order (a gap's no-op) and must reach the chain, or
    every later nonce of the wallet waits behind it."""
    wallet: "TradingWallet"
    nonce: int
    tx_hash: str
    raw: str
    unsent: bool = False  # its broadcast got no answer: sent again at the next tick


class InFlightBook:
    def __init__(self, kick: Callable[[str], None]) -> None:
        """`kick`: wake the chain's watcher when something is tracked."""
        self.lock = threading.RLock()
        self.flights: dict[str, InFlight] = {}
        self.by_hash: dict[str, str] = {}
        self.settled: dict[str, tuple[InFlight, int]] = {}  # its key -> (flight, block) kept for reorgs
        self.loose: dict[tuple[str, str, int], Loose] = {}   # (chain, wallet address, nonce) -> its no-op
        # (wallet address, token, spender) -> the approval in flight for it: one per need, shared
        self.approvals: dict[tuple[str, str, str], InFlight] = {}
        self._reservations: dict[tuple[str, str], int] = {}
        self._kick = kick

    def track(self, f: InFlight) -> None:
        with self.lock:
            key = f.key
            self.flights[key] = f
            for a in f.attempts:
                self.by_hash[a.tx_hash] = key
            if f.approves is not None:
                self.approvals[self.approval_key(f.wallet, f.approves.token.address, f.approves.spender)] = f
            key = (f.wallet.wallet.address, f.reserved[0])
            self._reservations[key] = self._reservations.get(key, 0) + f.reserved[1]
            f.last_action_block = f.last_action_block if f.last_action_block >= 0 else f.sent_block
        self._kick(f.chain)

    def untrack(self, f: InFlight) -> None:
        with self.lock:
            if self.flights.pop(f.key, None) is None:
                return
            if f.approves is not None:
                key = self.approval_key(f.wallet, f.approves.token.address, f.approves.spender)
                if self.approvals.get(key) is f:
                    del self.approvals[key]
            for a in f.attempts:
                self.by_hash.pop(a.tx_hash, None)
            key = (f.wallet.wallet.address, f.reserved[0])
            self._reservations[key] = self._reservations.get(key, 0) - f.reserved[1]

    def add_attempt(self, f: InFlight, attempt: Attempt) -> None:
        with self.lock:
            f.attempts.append(attempt)
            self.by_hash[attempt.tx_hash] = f.key

    def get(self, order_id: str) -> InFlight | None:
        return self.flights.get(order_id)

    @staticmethod
    def approval_key(w: "TradingWallet", token: str, spender: str) -> tuple[str, str, str]:
        return (w.wallet.address, token.lower(), spender.lower())

    def approval_pending(self, w: "TradingWallet", token: str, spender: str) -> InFlight | None:
        """The approval in flight for this wallet, token and spender, if any."""
        return self.approvals.get(self.approval_key(w, token, spender))

    def waiting_on(self, approval: InFlight) -> list[InFlight]:
        """The swaps sent behind this approval, waiting for it to settle."""
        return [f for f in list(self.flights.values()) if f.waits_for is approval]

    def of_hash(self, tx_hash: str) -> InFlight | None:
        oid = self.by_hash.get(tx_hash)
        return self.flights.get(oid) if oid else None

    def on_chain(self, chain: str) -> list[InFlight]:
        return [f for f in list(self.flights.values()) if f.chain == chain]

    def reserved(self, w: "TradingWallet", token: str) -> int:
        """token_in committed to transactions still in flight from this wallet."""
        return self._reservations.get((w.wallet.address, token), 0)

    def wanted(self) -> set[str]:
        return set(self.by_hash)

    def keep_settled(self, f: InFlight, block: int) -> None:
        self.settled[f.key] = (f, block)

    def forget_settled(self, head: int) -> None:
        for oid, (_, n) in list(self.settled.items()):
            if n < head - KEEP_SETTLED_BLOCKS:
                self.settled.pop(oid, None)
