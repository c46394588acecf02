"""Assemble and run the bridge: config -> journal -> markets -> engine -> FIX acceptor."""
from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from fixbridge.chain.watcher import BlockWatcher
from fixbridge.config import ConfigError, load_sessions, load_spec
from fixbridge.engine.execution import ExecutionEngine, session_counterparty
from fixbridge.engine.markets import Markets
from fixbridge.fix.acceptor import FixAcceptor
from fixbridge.fix.application import BridgeApplication
from fixbridge.ops.halt_cancels import HaltCanceller
from fixbridge.fix.market_data import MarketDataDesk
from fixbridge.journal import Journal
from fixbridge.journal.chains import ChainIdentity
from fixbridge.journal.leases import LeaseHeld
from fixbridge.market.feed import MarketFeed
from fixbridge.market.state import MarketState
from fixbridge.ops.metrics import BridgeMetrics, instrument_journal, instrument_rpc

log = structlog.get_logger(__name__)


@dataclass
class BridgeConfig:
    spec: Path | list[Path]
    sessions: Path
    journal_url: str
    state_dir: Path
    host: str | None = None
    port: int | None = None
    status: "StatusConfig | None" = None  # the HTTP port (metrics, health, status page); None: off


@dataclass(frozen=True)
class StatusConfig:
    host: str = "127.0.0.1"
    port: int = 9877
    token: str | None = None           # read from an environment variable by the caller; never logged
    token_env: str = "FIXBRIDGE_STATUS_TOKEN"


def genesis_hash(w3) -> str:
    """The chain's genesis block hash, read as block 1's parent: anvil regenerates its block 0 each
    time it loads a saved state (--state), block 1 keeps the true parent hash."""
    if w3.eth.block_number >= 1:
        return "0x" + bytes(w3.eth.get_block(1)["parentHash"]).hex()
    return "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()


def _quiet_gc() -> None:
    """What start-up built (spec, ABIs, SQLAlchemy's and web3's caches: ~250k objects) lives as
    long as the process. Left in the cyclic collector's care, each full collection walked all of it
    with the GIL held (~150 ms, the whole pipeline stalled, nine times in a 3,000-order burst);
    frozen, the collector only looks at what came after. Orders make little cyclic garbage (a
    block's receipts are freed by reference counting, see chain/watcher.py), so young objects are
    collected every 10,000 allocations rather than 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


class Bridge:
    def __init__(self, cfg: BridgeConfig) -> None:
        # Everything that can be wrong with the configuration fails here, before anything starts.
        self.spec = load_spec(cfg.spec)
        self.sessions = load_sessions(cfg.sessions, self.spec)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._state_dir = cfg.state_dir
        self._status_cfg = cfg.status
        if cfg.status is not None:
            from fixbridge.web.server import ExposureError, check_exposure
            try:
                check_exposure(cfg.status.host, cfg.status.token, cfg.status.token_env)
            except ExposureError as e:
                raise ConfigError("--metrics-host", cfg.status.host, str(e)) from None
        self.metrics = BridgeMetrics()  # a registry of this bridge's own
        self.journal = Journal(cfg.journal_url)
        instrument_journal(self.journal, self.metrics)
        self.markets = Markets(self.spec, self.sessions)
        for chain, w3 in self.markets.w3.items():
            instrument_rpc(chain, w3, self.metrics)
        # The live market state rides on the engine's block watchers (after the engine), and on
        # watchers of its own on chains where no wallet trades. Market data and resting orders read it.
        self.market = MarketState(self.spec)
        self.market_feed = MarketFeed(self.spec, self.markets.w3, self.market)
        self.engine = ExecutionEngine(self.spec, self.sessions, self.journal, self.markets, metrics=self.metrics,
                                      market=self.market)
        self.engine.block_listeners.append(self.market_feed)
        self.market_data = MarketDataDesk(self.market, self.spec)
        # The watcher polls fast (a block found within milliseconds) while someone waits for every
        # block: market data subscribers, or resting orders the next block may make marketable.
        self.market_feed.follow = lambda: self.market_data.has_subscriptions() or bool(self.engine.shelf)
        self._market_watchers: list[BlockWatcher] = []
        self.app = BridgeApplication(self.engine, self.journal, market_data=self.market_data)
        self.acceptor = FixAcceptor(self.app, self.sessions, cfg.state_dir, cfg.host, cfg.port)
        self.halt_cancels: HaltCanceller | None = None
        self.status_server = None
        self.status_error: str | None = None
        self.lease_renewed_at: float | None = None
        self._check_chains()
        self._claim_ownership()

    # Several instances may share one journal (PostgreSQL); each owns its sessions and wallets.
    LEASE_SECONDS = 15.0

    def _claim_ownership(self) -> None:
        # An instance is its host and state directory (its FIX store): a restart of the same deployment
        # takes its leases back at once; another deployment must wait for them to expire.
        self.instance = os.environ.get("FIXBRIDGE_INSTANCE") or f"{socket.gethostname()}:{self._state_dir.resolve()}"
        self._owned = ([("session", s["TargetCompID"]) for s in self.acceptor.session_defs] +
                       [("wallet", w) for w in self.markets.wallet_identities().values()])
        try:
            self.journal.claim(self.instance, self._owned, self.LEASE_SECONDS)
        except LeaseHeld as e:
            raise ConfigError(self.journal.url, f"{e.kind} {e.name}",
                              f"owned by bridge instance {e.owner} (lease until {e.expires_at.isoformat()}); "
                              "give this instance other sessions and wallets, or stop that one") from None
        self.lease_renewed_at = time.monotonic()
        self._renewing = threading.Event()
        threading.Thread(target=self._renew, name="leases", daemon=True).start()

    def _renew(self) -> None:
        while not self._renewing.wait(self.LEASE_SECONDS / 3):
            try:
                self.journal.claim(self.instance, self._owned, self.LEASE_SECONDS)
                self.engine.ownership_lost = None
                self.lease_renewed_at = time.monotonic()  # a journal write that worked: /readyz reads it
            except Exception as e:  # another instance took over, or the database is gone: stop signing
                self.engine.ownership_lost = f"{type(e).__name__}: {e}"
                log.error("ownership lease not renewed; not signing until it is", error=str(e)[:300])

    def _check_chains(self) -> None:
        for name, chain in self.spec.chains.items():
            try:
                got = int(self.markets.w3[name].eth.chain_id)
            except Exception as e:
                raise ConfigError(self.spec.path, f"chains.{name}.rpc_url",
                                  f"cannot reach a node at {chain.rpc_url} ({type(e).__name__}); start it or fix the URL") from None
            if got != chain.chain_id:
                raise ConfigError(self.spec.path, f"chains.{name}.chain_id",
                                  f"the node at {chain.rpc_url} reports chain id {got}, the spec says {chain.chain_id}")
            found = ChainIdentity(name, got, genesis_hash(self.markets.w3[name]), self.spec.contracts_on(name))
            mismatch = self.journal.chains.check_or_record(found)
            if mismatch is not None:
                raise ConfigError(self.journal, f"chain_identities.{name}",
                                  f"{mismatch}. Nothing was signed. Point chains.{name}.rpc_url in {self.spec.path} "
                                  "at the chain this journal belongs to, or start over with a journal of its own "
                                  "(`make clean` removes var/: the devnet's state and its journal; or --journal <new URL>)")

    def start(self) -> None:
        # The sessions exist since the acceptor was built, so recovery can address its reports:
        # QuickFIX stores them and a client gets them by resend at its logon. The port opens only
        # once recovery has run and its reports are handed over, so that no client trades against
        # a bridge that has not yet finished what it left open.
        self._start_status()
        self._start_market()
        self.engine.start(self.app)
        self.halt_cancels = HaltCanceller(self.journal, self.app.session_ids, self.engine.mass_cancel,
                                          session_counterparty)
        self.halt_cancels.start()
        for chain, w3 in self.markets.w3.items():
            if self.market_data.available and not self.engine.watching(chain) and self.market.block(chain) is not None:
                watcher = BlockWatcher(chain, w3, self.market_feed)
                watcher.start()
                self._market_watchers.append(watcher)
        if not self.journal.drain(timeout=60):
            log.warning("recovery's journal writes still draining as the port opens")
        self.app.cancel_on_disconnect.started(self.app.session_ids())  # before the port opens: no Logon yet
        self.acceptor.start()
        _quiet_gc()

    def _start_market(self) -> None:
        """Read every pool whole. A failure costs market data only (each request then gets a Y),
        never trading: orders quote the chain themselves."""
        try:
            self.market_feed.start()
        except Exception as e:
            self.market_data.available = False
            log.error("market state not loaded; market data unavailable", error=f"{type(e).__name__}: {e}"[:300])
        self.market_data.start()

    def _start_status(self) -> None:
        """The HTTP port, before recovery: /healthz answers and /readyz says what is not ready yet.
        A port that cannot be bound is reported and the bridge trades on: metrics must never be
        why orders stop."""
        cfg = self._status_cfg
        if cfg is None:
            return
        from fixbridge.ops.health import Health, Ownership
        from fixbridge.ops.metrics import BridgeCollector
        from fixbridge.ops.view import BridgeView
        from fixbridge.web.server import StatusServer, build_app

        view = BridgeView(self.journal, self.engine, self.app)
        self.metrics.registry.register(BridgeCollector(view))
        ownership = Ownership(self.instance, list(self._owned), lambda: self.lease_renewed_at,
                              lambda: self.engine.ownership_lost)
        health = Health(view, self.journal, self.acceptor.host, self.acceptor.port, ownership)
        server = StatusServer(build_app(view, self.metrics, health, cfg.token), cfg.host, cfg.port)
        try:
            server.start()
        except OSError as e:
            self.status_error = f"{cfg.host}:{cfg.port}: {e.strerror or e}"
            log.error("status port not served; the bridge runs without it", address=f"{cfg.host}:{cfg.port}",
                      error=str(e))
            return
        self.status_server = server

    def stop(self) -> None:
        """The FIX edge first (no new orders), then the engine (what is in hand gets its journal
        rows; waits for the chain are given up), then the journal drains and closes. Everything in
        flight is journaled, so the next start resumes it."""
        if self.halt_cancels is not None:
            self.halt_cancels.stop()
        logged_out = self.acceptor.stop()
        for watcher in self._market_watchers:
            watcher.stop()
        self.market_data.stop()
        if not self.engine.stop():
            log.warning("an intake worker was still busy at the stop; the next start recovers its order")
        self._renewing.set()
        if self.status_server is not None:
            self.status_server.stop()
        try:
            self.journal.release(self.instance)
        except Exception:
            log.exception("could not release leases (they expire on their own)")
        if self.journal.close() and logged_out:
            self.acceptor.mark_clean_stop()

    def run_until_signal(self, on_ready=None) -> None:
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        try:
            self.start()
        except BaseException:
            self.engine.stop()
            self.journal.close()
            raise
        if on_ready is not None:
            on_ready()
        done.wait()
        log.info("stopping")
        self.stop()
