"""Planning: how one order becomes one swap. Chooses the venue (best price net of gas across the
venues that list the instrument, engine/routing.py) and the wallet, derives the swap and its bound
(the pure arithmetic of orders/intent.py), turns a Sell of an option series into a sell-to-open
where the session may write, and journals the quotes and the choice. Reads only: nothing here
signs or changes an order's state."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from decimal import Decimal

from web3.exceptions import ContractLogicError

from fixbridge.config import Counterparty, SessionsConfig, Spec, Token
from fixbridge.engine.desk import session_counterparty
from fixbridge.engine.flights import InFlightBook
from fixbridge.engine.markets import Markets, TradingWallet
from fixbridge.engine.quoting import StateQuotes
from fixbridge.engine.routing import VenueQuote, decide, swap_gas_wei
from fixbridge.journal import Journal
from fixbridge.orders.intent import (NotPlannable, fills_partially, SwapTerms, expected_base, may_sell_to_open, swap_deadline,
                                     swap_shape, swap_terms)
from fixbridge.orders.model import Order, RejectReason
from fixbridge.orders.risk import TradeContext
from fixbridge.orders.units import fmt, from_units, price
from fixbridge.orders.validation import Rejection
from fixbridge.venues.base import Call, Exact, SwapIntent, Venue
from fixbridge.venues.options_market import OptionsMarketClient


@dataclass(frozen=True)
class Plan:
    """How one order becomes one swap: the venue, the wallet, and the bound it must honour."""
    venue: Venue
    wallet: TradingWallet
    base: Token
    quote: Token
    intent: SwapIntent
    quoted: int            # the venue's quote for the other side, at planning time
    expected_base: Decimal
    # Sell-to-open: the call that writes and sells in one transaction, and the collateral it pulls
    # (in place of the swap's token_in) as (token, base units).
    write: Call | None = None
    pulls: tuple[Token, int] | None = None
    # The pure arithmetic the intent came from (orders/intent.py): the bound's exact value and rule.
    terms: SwapTerms | None = None

    @property
    def call(self) -> Call:
        return self.write or self.venue.build_swap(self.intent)

    @property
    def pays(self) -> tuple[str, int]:
        """(token address, most base units) this order takes from the wallet."""
        if self.pulls is not None:
            return self.pulls[0].address, self.pulls[1]
        return self.intent.token_in, self.intent.max_in


class PlanError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.text)
        self.rejection = rejection


def short_reason(e: Exception) -> str:
    """A one-line reason: a revert's message rather than its raw data."""
    s = e.message if isinstance(e, ContractLogicError) and e.message else str(e)
    return s if len(s) < 200 else s[:200] + "…"


class Planner:
    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets,
                 book: InFlightBook, quotes: StateQuotes | None = None) -> None:
        self.spec, self.sessions, self.journal, self.markets, self.book = spec, sessions, journal, markets, book
        self.quotes = quotes  # the live market state first; the venue on chain when it cannot answer
        self._gas_prices: dict[str, tuple[float, int]] = {}

    # ---- which wallet ----------------------------------------------------------------------------
    def default_wallet(self, cp: Counterparty, symbol: str | None) -> str:
        """The session's first wallet on the chain the instrument trades on."""
        ins = self.spec.instruments.get(symbol or "")
        if ins is not None:
            chain = self.spec.chain_of(ins).name
            for name in cp.wallets:
                if self.markets.wallets[name].chain == chain:
                    return name
        return cp.wallets[0]

    def wallet_for(self, session_id: str, account: str | None, symbol: str | None) -> str:
        """The wallet whose worker takes the order: its Account if bound to the session, else the default."""
        cp = self.sessions.sessions[session_counterparty(session_id)]
        return account if account in cp.wallets else self.default_wallet(cp, symbol)

    # ---- the plan --------------------------------------------------------------------------------
    def plan(self, order: Order, cp: Counterparty, *, quote: bool = True) -> Plan:
        """Choose venue and wallet and derive the swap with its bound. quote=False (recovery) only
        rebuilds what decoding the receipt needs. The arithmetic is pure (orders/intent.py); here
        are the reads it needs (quotes, gas price, balance) and the journal rows of what it decided."""
        ins = self.spec.instruments[order.symbol]
        venue = self.markets.venues[order.ex_destination or order.venue or ins.venues[0]]
        wallet = self.markets.wallets[order.account or order.wallet or self.default_wallet(cp, order.symbol)]
        base, quote_tok = self.spec.tokens[ins.base], self.spec.tokens[ins.quote]
        deadline = swap_deadline(order.expire_time, time.time(), cp.deadline_seconds)
        try:
            shape = swap_shape(order, base, quote_tok)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        if not quote:
            intent = SwapIntent(shape.token_in.address, shape.token_out.address, shape.exact, shape.amount, 0,
                                wallet.wallet.address, deadline, fills_partially(order))
            return Plan(venue, wallet, base, quote_tok, intent, 0, shape.qty if shape.by_base else Decimal(0))
        chosen_by_client = order.ex_destination or order.venue
        candidates = [venue] if chosen_by_client else [self.markets.venues[v] for v in ins.venues]
        venue, quoted = self._route(order, candidates, shape.token_in, shape.token_out, shape.exact, shape.amount)
        try:
            terms = swap_terms(order, shape, quoted, cp.max_slippage_bps, deadline)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        intent = terms.intent(wallet.wallet.address)
        other, bound, amount, exact = shape.other, intent.bound, shape.amount, shape.exact
        self.journal.add_event(order.order_id, "quote", f"{venue.name} quoted {quoted} {other.symbol} units for "
                               f"{amount} {shape.fixed.symbol} units ({exact.value})",
                               detail={"venue": venue.name, "exact": exact.value, "amount": str(amount),
                                       "quoted": str(quoted), "bound": str(bound), "deadline": deadline,
                                       "wallet": wallet.wallet.address}, status=order.status)
        plan = Plan(venue, wallet, base, quote_tok, intent, quoted, expected_base(shape, quoted, base), terms=terms)
        return self._maybe_write(order, cp, ins, plan)

    def _maybe_write(self, order: Order, cp: Counterparty, ins, plan: Plan) -> Plan:
        """A Sell of an option series the wallet does not hold enough of is a sell-to-open, for sessions
        allowed to write: the market mints the whole quantity against collateral and sells it through the
        V2 router in the same transaction. Everyone else gets the usual balance check."""
        i, w = plan.intent, plan.wallet
        if not may_sell_to_open(order, ins, cp.may_write_options, i.exact, plan.venue.writes_into):
            return plan
        held = self.markets.balance_of(w.chain, i.token_in, w.wallet.address) - self.book.reserved(w, i.token_in)
        if held >= i.amount:
            return plan
        market = OptionsMarketClient(self.markets.w3[w.chain], self.spec.options_markets[ins.market].address)
        token_addr, units = market.collateral(ins.series_id, i.amount)
        collateral = next(t for t in self.spec.tokens.values() if t.address == token_addr and t.chain == w.chain)
        call = market.write_and_sell(ins.series_id, i.amount, plan.venue.router, i.bound, i.deadline)
        self.journal.add_event(order.order_id, "note", f"sell-to-open: wallet holds {fmt(from_units(max(held, 0), plan.base.decimals))}"
                               f", writes {fmt(from_units(i.amount, plan.base.decimals))} of series {ins.series_id} against "
                               f"{fmt(from_units(units, collateral.decimals))} {collateral.symbol} collateral",
                               detail={"market": market.address, "series_id": ins.series_id, "collateral": str(units)})
        return replace(plan, write=call, pulls=(collateral, units))

    def _route(self, order: Order, venues: list[Venue], token_in: Token, token_out: Token, exact: Exact,
               amount: int) -> tuple[Venue, int]:
        """Best execution: quote every venue, compare net of the gas each swap costs, pick the best
        (engine/routing.py decides). The quotes, the gas estimates and the choice are journaled."""
        other = token_out if exact is Exact.INPUT else token_in
        considered: list[VenueQuote] = []
        errors: dict[str, str] = {}
        gas_price = None
        node_errors = False
        for v in venues:
            try:
                q = self._quote(v, token_in.address, token_out.address, exact, amount)
            except Exception as e:
                errors[v.name] = short_reason(e)
                node_errors = node_errors or isinstance(e, OSError)  # NodeError: the node failed, not the venue
                continue
            if len(venues) > 1 and gas_price is None:
                gas_price = self.gas_price(self.spec.venues[v.name].chain)
            gas_cost = self._gas_in(other, v, gas_price) if len(venues) > 1 else 0
            considered.append(VenueQuote.of(v.name, q, gas_cost, exact))
        if not considered and node_errors:  # not the venues' answer: the node's
            raise PlanError(Rejection(RejectReason.OTHER, f"Not quoted: node error while quoting {order.symbol}: "
                                      + "; ".join(f"{k}: {m}" for k, m in errors.items()) + "; nothing was sent"))
        try:
            decision = decide(order.symbol, exact, considered, errors)
        except NotPlannable as e:
            raise PlanError(e.rejection) from None
        if len(venues) > 1:
            self.journal.add_event(order.order_id, "quote", decision.why(other.symbol),
                                   detail=decision.detail(gas_price), status=order.status)
        return self.markets.venues[decision.chosen.venue], decision.chosen.quoted

    def _gas_in(self, token: Token, venue: Venue, gas_price: int) -> int:
        """A swap's gas cost in units of `token` (via the venue's WETH price; 0 if it has none)."""
        wei = swap_gas_wei(venue.swap_gas, gas_price)
        weth = next((t for t in self.spec.tokens.values() if t.symbol == "WETH" and t.chain == token.chain), None)
        if weth is None:
            return 0
        if token.address == weth.address:
            return wei
        try:
            return self._quote(venue, weth.address, token.address, Exact.INPUT, wei) if wei else 0
        except Exception:
            return 0

    def _quote(self, venue: Venue, token_in: str, token_out: str, exact: Exact, amount: int) -> int:
        """From the live market state when it can answer (no round trip), else from the venue on chain."""
        if self.quotes is not None:
            q = self.quotes.quote(venue, token_in, token_out, exact, amount)
            if q is not None:
                return q
        return venue.quote(token_in, token_out, exact, amount)

    def trade_context(self, order: Order, plan: Plan) -> TradeContext:
        """What pre-trade risk checks of the planned swap."""
        i = plan.intent
        # The quote gives the other side of the swap: pair it with the amount to get base vs quote.
        amount_is_base = (i.token_in == plan.base.address) == (i.exact is Exact.INPUT)
        base_units, quote_units = (i.amount, plan.quoted) if amount_is_base else (plan.quoted, i.amount)
        pool_px = price(quote_units, plan.quote.decimals, base_units, plan.base.decimals)
        # The most quote the order can move: the quote leg itself, or the bound when the bound is in quote.
        quote_most = max(quote_units, i.bound) if amount_is_base else quote_units
        notional = from_units(quote_most, plan.quote.decimals)
        gas = self.gas_price(plan.wallet.chain)
        return TradeContext(plan.venue.name, plan.wallet.wallet.name, notional, pool_px, gas)

    def gas_price(self, chain: str) -> int:
        """The chain's gas price, read at most once a second (it moves once a block)."""
        at, price_wei = self._gas_prices.get(chain, (0.0, 0))
        if time.monotonic() - at > 1.0:
            price_wei = int(self.markets.w3[chain].eth.gas_price)
            self._gas_prices[chain] = (time.monotonic(), price_wei)
        return price_wei
