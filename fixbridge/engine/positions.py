"""Positions as the chain has them: each bound wallet's balance of every token the spec knows."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fixbridge.engine.markets import Markets
from fixbridge.orders.units import from_units, price
from fixbridge.venues.base import Exact


@dataclass(frozen=True)
class Position:
    wallet: str              # the wallet's name (FIX Account)
    wallet_address: str
    symbol: str              # the token's symbol (an option series is its instrument symbol)
    address: str
    security_type: str       # "OPT" for option tokens, "FOR" otherwise
    quantity: Decimal
    currency: str            # what price and value are in
    price: Decimal | None    # the venue's mid-size price now, when the token trades against a quote
    value: Decimal | None


def positions(markets: Markets, wallets: list[str]) -> list[Position]:
    spec = markets.spec
    traded = {ins.base: (sym, ins) for sym, ins in spec.instruments.items()}
    out = []
    for name in wallets:
        w = markets.wallets[name]
        for sym, tok in sorted(spec.tokens.items()):
            if tok.chain != w.chain:
                continue
            units = markets.balance_of(w.chain, tok.address, w.wallet.address)
            if units == 0:
                continue
            qty = from_units(units, tok.decimals)
            px = value = None
            currency = sym
            if sym in traded:
                ins_sym, ins = traded[sym]
                quote = spec.tokens[ins.quote]
                currency = ins.quote
                try:
                    venue = markets.venues[ins.venues[0]]
                    one = 10 ** tok.decimals
                    got = venue.quote(tok.address, quote.address, Exact.INPUT, one)
                    px = price(got, quote.decimals, one, tok.decimals)
                    value = qty * px
                except Exception:
                    pass
            is_opt = sym in traded and traded[sym][1].security_type == "OPT"
            out.append(Position(name, w.wallet.address, sym, tok.address, "OPT" if is_opt else "FOR", qty, currency,
                                px, value))
    return out
