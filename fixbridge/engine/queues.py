"""Each wallet's intake queue and what goes on it: small frozen items, one kind each, and None to stop."""
from __future__ import annotations

import queue
from dataclasses import dataclass

from fixbridge.orders.model import Order


@dataclass(frozen=True)
class NewOrder:
    """An order to check, plan and send. `order`: the accepted order itself (no need to read it
    back); None when only its id is known (recovery), then it is read from the journal."""
    order_id: str
    order: Order | None = None


@dataclass(frozen=True)
class CancelSent:
    """A cancel of an order whose transaction is in flight: race a same-nonce no-op against it."""
    order_id: str


@dataclass(frozen=True)
class SettleSeries:
    """An option series the oracle settled: redeem and release what the wallet holds and wrote."""
    symbol: str
    price_units: int  # the settlement price in the strike asset's base units


@dataclass(frozen=True)
class FireResting:
    """A resting order the market now meets: plan and send `piece` (its size, limit and venue) for
    `order`, whose fills it adds to (engine/resting.py)."""
    order_id: str
    order: Order
    piece: Order


WorkItem = NewOrder | CancelSent | SettleSeries | FireResting


class WalletQueues:
    def __init__(self) -> None:
        self.queues: dict[str, queue.Queue] = {}

    def open(self, wallet_names: list[str]) -> None:
        """At start, once the wallets are open."""
        for name in wallet_names:
            self.queues[name] = queue.Queue()

    def put(self, wallet: str, item: WorkItem | None) -> None:
        self.queues[wallet].put(item)

    def stop_all(self) -> None:
        for q in self.queues.values():
            q.put(None)

    def backlog(self) -> int:
        return sum(q.qsize() for q in self.queues.values())
