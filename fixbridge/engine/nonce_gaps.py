"""Nonce gaps between the journal and the chain, closed at start, never waited on.

The journal says a wallet has signed up to nonce N-1; the chain may know fewer of its
transactions: a devnet that lost its last second of state (kill -9), a node that dropped
transactions while the bridge was down. Each later transaction the bridge signs would wait behind
the hole forever. So, before recovery and before anything new is signed, each missing nonce is
given back to the chain: its journaled transaction is rebroadcast (the very bytes the journal
holds, so journal and chain agree again), or, when the node refuses it or the journal has none, a
no-op takes the nonce. Each step is journaled with its reason. Nonces of orders still open are
left to recovery, which rebroadcasts or settles them itself; an open order's approval is
rebroadcast here, so that the order, taken up again, finds it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from dataclasses import dataclass

import structlog

from fixbridge.journal import Journal

log = structlog.get_logger(__name__)

# What recovery resumes itself for an open order (ExecutionEngine.recover); an approval it does not.
RECOVERED = ("swap", "cancel")
# A transaction's status in the journal that says which attempt at its nonce the journal believes in.
_BELIEVED = ("mined", "reverted", "broadcast", "signed", "replaced", "dropped")


@dataclass(frozen=True)
class GapStep:
    nonce: int
    action: str          # 'rebroadcast' | 'no-op'
    tx_hash: str
    reason: str


class NonceGapCloser:
    """Given the journal and how to fill a nonce with a no-op (the engine's `fill_nonce_gap`, which
    looks after the no-op until it is mined and returns its hash, or None if it signed nothing)."""

    def __init__(self, journal: Journal, fill_gap: Callable[[Any, int], str | None]) -> None:
        self._journal = journal
        self._fill_gap = fill_gap

    def close(self, w, open_orders: set[str]) -> list[GapStep]:
        """Close the gap of trading wallet `w` (markets.TradingWallet). Returns what was done."""
        sub, addr, chain_id = w.submitter, w.wallet.address, w.wallet.chain_id
        on_chain = sub.w3.eth.get_transaction_count(addr, "pending")
        journaled = self._journal.next_nonce(chain_id, addr) or 0
        if on_chain >= journaled:
            return []
        txs = self._journal.transactions_at(chain_id, addr, on_chain, journaled)
        log.warning("nonce gap: the journal holds transactions the chain does not", wallet=w.wallet.name,
                    chain_next=on_chain, journal_next=journaled)
        steps = []
        for nonce in range(on_chain, journaled):
            attempts = [t for t in txs if t.nonce == nonce and t.status != "failed"]
            if any(t.order_id in open_orders and t.purpose in RECOVERED for t in attempts):
                continue  # recovery finishes open orders' swaps and cancels: it rebroadcasts or settles them
            step = self._give_back(w, nonce, attempts, f"nonce gap at start: the chain's next nonce was {on_chain}, "
                                                       f"the journal's {journaled}")
            if step is not None:
                steps.append(step)
        return steps

    def _give_back(self, w, nonce: int, attempts: list, why: str) -> GapStep | None:
        if attempts:  # the attempt the journal believes in: mined before anything merely sent
            t = min(attempts, key=lambda t: (_BELIEVED.index(t.status) if t.status in _BELIEVED else 99, -t.id))
            try:
                w.submitter.broadcast(t.raw_tx)
                return self._noted(attempts, nonce, "rebroadcast", t.tx_hash,
                                   f"{why}; rebroadcast its journaled transaction {t.tx_hash}")
            except Exception as e:  # refused (its fee, its funds): a no-op takes the nonce instead
                log.warning("nonce gap: journaled transaction refused", nonce=nonce, tx=t.tx_hash, error=str(e)[:200])
                why += f"; its journaled transaction {t.tx_hash} was refused ({str(e)[:120]})"
        else:
            why += "; the journal holds no transaction for it"
        tx_hash = self._fill_gap(w, nonce)
        if tx_hash is None:
            return None
        return self._noted(attempts, nonce, "no-op", tx_hash, f"{why}; a no-op {tx_hash} took the nonce")

    def _noted(self, attempts: list, nonce: int, action: str, tx_hash: str, reason: str) -> GapStep:
        """Each order that held the nonce says what became of it."""
        for order_id in dict.fromkeys(t.order_id for t in attempts if t.order_id):
            self._journal.add_event(order_id, "note", reason, detail={"tx_hash": tx_hash, "nonce": nonce})
        log.warning("nonce gap closed", nonce=nonce, action=action, tx=tx_hash)
        return GapStep(nonce, action, tx_hash, reason)
