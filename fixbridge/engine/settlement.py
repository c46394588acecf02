"""Options at expiry: when the market's oracle settles a series, every bound wallet that holds it
redeems its tokens and every wallet that wrote it takes its collateral back; each session involved
gets an unsolicited PositionReport with the settlement price and what it received."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal

import structlog

from fixbridge.chain.submitter import Stopping
from fixbridge.config import SessionsConfig, Spec
from fixbridge.engine.desk import OrderDesk
from fixbridge.engine.journaling import WalletLease, WriteAhead, record_receipt
from fixbridge.engine.markets import Markets
from fixbridge.engine.queues import SettleSeries, WalletQueues
from fixbridge.journal import Journal
from fixbridge.orders.units import from_units
from fixbridge.venues.options_market import OptionsMarketClient

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SettlementReport:
    """What one wallet got from one settled series."""
    wallet: str
    wallet_address: str
    symbol: str
    settlement_price: Decimal   # in the strike asset, per whole underlying
    currency: str               # the collateral asset payouts are in
    held: Decimal               # option tokens redeemed
    written: Decimal            # option tokens this wallet had written
    received: Decimal           # payout + collateral returned, in `currency`
    tx_hashes: tuple[str, ...]


class OptionSettlement:
    """Seen by the watcher (a Settled event in a block), done by each wallet's intake worker (its
    redeem and release are transactions of that wallet's nonces), reported to every session bound
    to the wallet."""

    def __init__(self, spec: Spec, sessions: SessionsConfig, journal: Journal, markets: Markets,
                 queues: WalletQueues, desk: OrderDesk, write_ahead: WriteAhead, lease: WalletLease,
                 stopping: threading.Event) -> None:
        self.spec, self.sessions, self.journal, self.markets = spec, sessions, journal, markets
        self.queues, self.desk, self.write_ahead, self.lease = queues, desk, write_ahead, lease
        self._stopping = stopping  # set by the engine's stop(): a receipt wait gives up (Stopping)

    def _options_markets(self, chain: str) -> list[OptionsMarketClient]:
        return [OptionsMarketClient(self.markets.w3[chain], m.address)
                for m in self.spec.options_markets.values() if m.chain == chain]

    def check_settlements(self, chain: str, block_number: int) -> None:
        """Called for each block: hand any Settled event to the wallets' workers."""
        if not self.spec.options_markets:
            return
        for market in self._options_markets(chain):
            for series_id, price, _ in market.settlements(block_number, block_number):
                sym = next((s for s, i in self.spec.instruments.items()
                            if i.series_id == series_id and i.market and
                            self.spec.options_markets[i.market].address == market.address), None)
                if sym is None:
                    continue
                log.info("series settled", symbol=sym, price=price, block=block_number)
                for name, w in self.markets.wallets.items():
                    if w.chain == chain:
                        self.queues.put(name, SettleSeries(sym, int(price)))

    def settle_series(self, wallet_name: str, item: SettleSeries) -> None:
        """On the wallet's worker: redeem what it holds, release what it wrote, then report."""
        sym, raw_price = item.symbol, item.price_units
        ins = self.spec.instruments[sym]
        w = self.markets.wallets[wallet_name]
        token = self.spec.tokens[sym]
        quote = self.spec.tokens[ins.quote]
        market = OptionsMarketClient(self.markets.w3[w.chain], self.spec.options_markets[ins.market].address)
        held = self.markets.balance_of(w.chain, token.address, w.wallet.address)
        written = market.written(ins.series_id, w.wallet.address)
        if not held and not written:
            return
        collateral_addr, _ = market.collateral(ins.series_id, 1)
        collateral = next(t for t in self.spec.tokens.values() if t.address == collateral_addr and t.chain == w.chain)
        before = self.markets.balance_of(w.chain, collateral.address, w.wallet.address)
        hashes = []
        for purpose, call in (("redeem", market.redeem(ins.series_id, held) if held else None),
                              ("release", market.release_collateral(ins.series_id) if written else None)):
            if call is None:
                continue
            if self.lease.lost:  # no signature without the wallet's lease
                log.warning("settlement not sent: wallet lease lost", wallet=w.wallet.name, purpose=purpose,
                            why=self.lease.lost)
                continue
            try:
                gas = w.submitter.simulate(call.to, call.data)
                sent = w.submitter.send(call.to, call.data, gas, self.write_ahead.hook(None, purpose, w))
                r = w.submitter.wait_receipt(sent.signed.tx_hash, stop=self._stopping)
                record_receipt(self.journal, r)
                hashes.append(sent.signed.tx_hash)
            except Stopping:
                raise  # journaled; the worker leaves it for the next start
            except Exception as e:
                log.error("settlement transaction failed", wallet=wallet_name, symbol=sym, purpose=purpose, error=str(e)[:200])
        received = self.markets.balance_of(w.chain, collateral.address, w.wallet.address) - before
        report = SettlementReport(
            wallet=wallet_name, wallet_address=w.wallet.address, symbol=sym,
            settlement_price=from_units(int(raw_price), quote.decimals), currency=collateral.symbol,
            held=from_units(held, token.decimals), written=from_units(written, token.decimals),
            received=from_units(received, collateral.decimals), tx_hashes=tuple(hashes))
        for comp_id, cp in self.sessions.sessions.items():
            if wallet_name in cp.wallets and self.desk.reporter is not None:
                for sid in self.desk.session_ids_of(comp_id):
                    self.desk.reporter.settlement_report(sid, report)
