"""Best execution, pure: given each venue's quote and what a swap there costs in gas, choose.

The engine (`execution.py` `_route`) asks the venues for quotes and the chain for the gas price,
calls `decide`, and journals the `RouteDecision` (the quotes, the gas, the choice and why).
No I/O here; `tests/unit/` checks it without a chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from fixbridge.orders.intent import NotPlannable
from fixbridge.orders.model import RejectReason
from fixbridge.orders.validation import Rejection
from fixbridge.venues.base import Exact

# Gas a swap costs on each kind of venue, for comparing venues (not for the gas limit).
def swap_gas_wei(swap_gas: int, gas_price_wei: int) -> int:
    """What one swap of a venue (its typical `swap_gas`) costs, in wei, at the given gas price."""
    return swap_gas * gas_price_wei


@dataclass(frozen=True)
class VenueQuote:
    """One venue's quote for the other token of the swap, and the same net of the swap's gas
    (in units of that token): exact input, more out is better and gas reduces it; exact output,
    less in is better and gas adds to it."""
    venue: str
    quoted: int
    gas_in_other_units: int
    net: int

    @classmethod
    def of(cls, venue: str, quoted: int, gas_in_other_units: int, exact: Exact) -> VenueQuote:
        net = quoted - gas_in_other_units if exact is Exact.INPUT else quoted + gas_in_other_units
        return cls(venue, quoted, gas_in_other_units, net)


@dataclass(frozen=True)
class RouteDecision:
    """The venues' quotes, the ones that could not quote (venue, why), and the choice."""
    exact: Exact
    considered: tuple[VenueQuote, ...]
    unquotable: tuple[tuple[str, str], ...]
    chosen: VenueQuote

    def why(self, other_symbol: str) -> str:
        return (f"routed to {self.chosen.venue}: best {'output' if self.exact is Exact.INPUT else 'input'} net of gas "
                f"among {', '.join(c.venue + '=' + str(c.net) for c in self.considered)} ({other_symbol} units)")

    def detail(self, gas_price_wei: int | None) -> dict[str, Any]:
        """The journal's record of the decision (integers as strings: exact in any database)."""
        return {"considered": [{"venue": c.venue, "quoted": str(c.quoted), "gas_in_other_units": str(c.gas_in_other_units),
                                "net": str(c.net)} for c in self.considered],
                "unquotable": dict(self.unquotable), "chosen": self.chosen.venue, "gas_price_wei": str(gas_price_wei)}


def decide(symbol: str, exact: Exact, quotes: list[VenueQuote] | tuple[VenueQuote, ...],
           unquotable: Mapping[str, str] | None = None) -> RouteDecision:
    """The venue with the best net quote: most out (exact input) or least in (exact output). On a
    tie the venue quoted first wins (the instrument's venue order), so the choice is deterministic.
    No quote at all: NotPlannable, naming each venue's reason (`unquotable`: venue -> why)."""
    why_not = tuple((unquotable or {}).items())
    if not quotes:
        raise NotPlannable(Rejection(RejectReason.OTHER, f"No venue can quote {symbol} for this size "
                                     f"(not enough liquidity?): " + "; ".join(f"{k}: {m}" for k, m in why_not)))
    best = quotes[0]
    for q in quotes[1:]:
        # strictly better only: an equal net keeps the earlier venue
        if (q.net > best.net) if exact is Exact.INPUT else (q.net < best.net):
            best = q
    return RouteDecision(exact, tuple(quotes), why_not, best)
