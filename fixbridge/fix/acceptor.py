"""Start and stop the QuickFIX acceptor around the bridge application."""
from __future__ import annotations

from pathlib import Path

import quickfix as fix
import structlog

from fixbridge.config import ConfigError, SessionsConfig
from fixbridge.fix import settings
from fixbridge.fix.application import BridgeApplication

log = structlog.get_logger(__name__)


class FixAcceptor:
    def __init__(self, app: BridgeApplication, sessions: SessionsConfig, state_dir: Path,
                 host: str | None = None, port: int | None = None) -> None:
        fix_dir = state_dir / "fix"
        overrides = {"FileStorePath": str(fix_dir / "store"), "FileLogPath": str(fix_dir / "log")}
        if host:
            overrides["SocketAcceptHost"] = host
        if port:
            overrides["SocketAcceptPort"] = str(port)
        path, self.session_defs = settings.resolve(Path(sessions.acceptor_cfg), fix_dir / "acceptor.resolved.cfg", overrides)
        for s in self.session_defs:
            if s["TargetCompID"] not in sessions.sessions:
                raise ConfigError(sessions.acceptor_cfg, f"[SESSION] TargetCompID={s['TargetCompID']}",
                                  f"no [sessions.{s['TargetCompID']}] entry in {sessions.path}")
        self.port = int(self.session_defs[0]["SocketAcceptPort"])
        self.host = self.session_defs[0].get("SocketAcceptHost", "0.0.0.0")
        self._settings = fix.SessionSettings(str(path))
        self._store = fix.FileStoreFactory(self._settings)
        self._log = fix.FileLogFactory(self._settings)
        self._acceptor = fix.SocketAcceptor(app, self._store, self._settings, self._log)

    def start(self) -> None:
        self._acceptor.start()
        log.info("acceptor listening", host=self.host, port=self.port,
                 sessions=[f"{s['SenderCompID']}<-{s['TargetCompID']} {s['BeginString']}" for s in self.session_defs])

    def stop(self) -> None:
        self._acceptor.stop()
