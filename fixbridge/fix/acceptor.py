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
        self.tls = tls_enabled(self.session_defs[0])
        if self.tls:
            check_tls_files(Path(sessions.acceptor_cfg), self.session_defs[0])
        self._settings = fix.SessionSettings(str(path))
        self._store = fix.FileStoreFactory(self._settings)
        self._log = fix.FileLogFactory(self._settings)
        app.secret_dirs = [fix_dir / "log"]  # where a Logon's Password (554) lands; masked in place
        cls = fix.SSLSocketAcceptor if self.tls else fix.SocketAcceptor
        self._acceptor = cls(app, self._store, self._settings, self._log)
        # The sessions exist now, with the sequence numbers of their store. After a crash QuickFIX
        # may have counted inbound messages whose journal rows were never committed: ask for them again.
        self._clean_stop = fix_dir / "clean-stop"
        if self._clean_stop.exists():
            self._clean_stop.unlink()
        else:
            for sid in list(app.sessions.values()):
                app.rewind_inbound(sid)

    def start(self) -> None:
        self._acceptor.start()
        log.info("acceptor listening", host=self.host, port=self.port, tls=self.tls,
                 sessions=[f"{s['SenderCompID']}<-{s['TargetCompID']} {s['BeginString']}" for s in self.session_defs])

    def stop(self) -> None:
        self._acceptor.stop()

    def mark_clean_stop(self) -> None:
        """Everything QuickFIX counted is journaled: the next start need not rewind (see __init__)."""
        self._clean_stop.write_text("the bridge stopped with its journal drained\n")


# QuickFIX (C++) has no on/off key for TLS: the SSL acceptor class reads ServerCertificateFile,
# ServerCertificateKeyFile, SSLProtocol, SSLCipherSuite, CertificationAuthoritiesFile and
# CertificateVerifyLevel (src/C++/SSLSocketAcceptor.cpp, UtilitySSL.cpp). We turn TLS on when
# SocketUseSSL=Y (the QuickFIX/J spelling) or a ServerCertificateFile is given.
TLS_KEYS = ("ServerCertificateFile", "ServerCertificateKeyFile", "CertificationAuthoritiesFile")


def tls_enabled(defaults: dict[str, str]) -> bool:
    use = defaults.get("SocketUseSSL", "").strip().upper()
    if use in ("N", "NO", "FALSE", "0"):
        return False
    return use in ("Y", "YES", "TRUE", "1") or bool(defaults.get("ServerCertificateFile"))


def check_tls_files(cfg: Path, defaults: dict[str, str]) -> None:
    if not defaults.get("ServerCertificateFile"):
        raise ConfigError(cfg, "ServerCertificateFile", "SocketUseSSL=Y needs a server certificate (PEM)")
    for key in TLS_KEYS:
        value = defaults.get(key)
        if value and not Path(value).is_file():
            raise ConfigError(cfg, key, f"file {value} not found")
