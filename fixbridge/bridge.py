"""Assemble and run the bridge: config -> journal -> markets -> engine -> FIX acceptor."""
from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog

from fixbridge.config import ConfigError, load_sessions, load_spec
from fixbridge.engine.execution import ExecutionEngine
from fixbridge.engine.markets import Markets
from fixbridge.fix.acceptor import FixAcceptor
from fixbridge.fix.application import BridgeApplication
from fixbridge.journal import Journal

log = structlog.get_logger(__name__)


@dataclass
class BridgeConfig:
    spec: Path | list[Path]
    sessions: Path
    journal_url: str
    state_dir: Path
    host: str | None = None
    port: int | None = None


class Bridge:
    def __init__(self, cfg: BridgeConfig) -> None:
        # Everything that can be wrong with the configuration fails here, before anything starts.
        self.spec = load_spec(cfg.spec)
        self.sessions = load_sessions(cfg.sessions, self.spec)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(cfg.journal_url)
        self.markets = Markets(self.spec, self.sessions)
        self.engine = ExecutionEngine(self.spec, self.sessions, self.journal, self.markets)
        self.app = BridgeApplication(self.engine, self.journal)
        self.acceptor = FixAcceptor(self.app, self.sessions, cfg.state_dir, cfg.host, cfg.port)
        self._check_chains()

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

    def start(self) -> None:
        self.acceptor.start()  # sessions exist from here, so recovery can address its reports
        self.engine.start(self.app)

    def stop(self) -> None:
        self.acceptor.stop()
        self.engine.stop()
        self.journal.close()

    def run_until_signal(self) -> None:
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        done.wait()
        log.info("stopping")
        self.stop()
