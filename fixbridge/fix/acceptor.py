"""Start and stop the QuickFIX acceptor around the bridge application."""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

import quickfix as fix
import structlog

from fixbridge.config import ConfigError, SessionsConfig
from fixbridge.fix import settings
from fixbridge.fix.application import BridgeApplication
from fixbridge.fix.dialects import DIALECTS

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
        self._cfg = Path(sessions.acceptor_cfg)
        self._app = app
        path, self.session_defs = settings.resolve(Path(sessions.acceptor_cfg), fix_dir / "acceptor.resolved.cfg", overrides)
        for s in self.session_defs:
            if s["BeginString"] not in DIALECTS:
                raise ConfigError(sessions.acceptor_cfg, f"[SESSION] TargetCompID={s['TargetCompID']} BeginString",
                                  f"{s['BeginString']!r} is not supported; expected one of {sorted(DIALECTS)}")
            if s["TargetCompID"] not in sessions.sessions:
                raise ConfigError(sessions.acceptor_cfg, f"[SESSION] TargetCompID={s['TargetCompID']}",
                                  f"no [sessions.{s['TargetCompID']}] entry in {sessions.path}")
        self.port = int(self.session_defs[0]["SocketAcceptPort"])
        self.host = bind_address(Path(sessions.acceptor_cfg), self.session_defs[0])
        check_exposure(Path(sessions.acceptor_cfg), self.session_defs[0], self.host, sessions)
        # QuickFIX 1.16 binds acceptors to every interface; our build binds to this address
        # instead (scripts/build-quickfix-ssl.sh), and start() checks the socket it got.
        os.environ[ACCEPT_ADDRESS_ENV] = self.host
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
        bound = listening_addresses(self.port)
        if bound and any(a != self.host for a in bound):
            self._acceptor.stop()
            raise ConfigError(self._cfg, "SocketAcceptHost",
                              f"configured {self.host}, but this QuickFIX build listens on {', '.join(sorted(bound))}:"
                              f"{self.port} (the PyPI build cannot bind to an address); install the project's build "
                              "(`make setup`, scripts/build-quickfix-ssl.sh) or set SocketAcceptHost=0.0.0.0 with "
                              "AllowRemoteLogon=Y")
        log.info("acceptor listening", host=self.host, port=self.port, tls=self.tls,
                 sessions=[f"{s['SenderCompID']}<-{s['TargetCompID']} {s['BeginString']}" for s in self.session_defs])

    def stop(self, grace: float = 2.0) -> bool:
        """Log every session out and give the counterparties `grace` seconds to answer; from then on
        every Logon is refused (QuickFIX alone would wait up to 10 s for a counterparty that never
        answers). The native acceptor is left to the process's exit: QuickFIX's stop() closes the
        socket server from this thread while its own thread, seeing the stop, closes and deletes it
        (SocketAcceptor::onStop against onStart); it crashed the process (SIGSEGV inside stop) in
        several of sixty stops (tests/e2e/test_e2e_stop_cycles.py). `fixbridge run` leaves with
        os._exit after the stop, which ends QuickFIX's thread.
        True if every session logged out."""
        self._app.cancel_on_disconnect.suspend()  # our own Logouts: what is working is the next start's
        sessions = [s for s in map(fix.Session.lookupSession, self._app.sessions.values()) if s is not None]
        for s in sessions:
            if s.isLoggedOn():
                s.logout("the bridge is stopping")
        end = time.monotonic() + grace
        while any(s.isLoggedOn() for s in sessions) and time.monotonic() < end:
            time.sleep(0.02)
        self._app.closing = True
        # A counterparty that has not answered stays connected until the exit (cutting it off from
        # this thread would race QuickFIX's the same way); what it sends now may not be journaled,
        # so this stop does not count as clean (the next start rewinds, see __init__).
        return not any(s.isLoggedOn() for s in sessions)

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


ACCEPT_ADDRESS_ENV = "QUICKFIX_ACCEPT_ADDRESS"


def bind_address(cfg: Path, defaults: dict[str, str]) -> str:
    """SocketAcceptHost as an IPv4 address (127.0.0.1 when absent: a FIX port is opened to other
    machines only on purpose)."""
    host = defaults.get("SocketAcceptHost", "127.0.0.1").strip() or "127.0.0.1"
    try:
        addr = socket.gethostbyname(host)
    except OSError:
        raise ConfigError(cfg, "SocketAcceptHost", f"cannot resolve {host!r}; give an IPv4 address such as 127.0.0.1") from None
    if not isinstance(ipaddress.ip_address(addr), ipaddress.IPv4Address):
        raise ConfigError(cfg, "SocketAcceptHost", f"{host!r} is not IPv4; QuickFIX listens on IPv4 only")
    return addr


def check_exposure(cfg: Path, defaults: dict[str, str], host: str, sessions: SessionsConfig) -> None:
    """Beyond loopback, anyone who reaches the port can log on as a session without a password
    and trade from its wallets: refused unless the config says so in so many words."""
    if ipaddress.ip_address(host).is_loopback:
        return
    open_sessions = sorted(c for c, cp in sessions.sessions.items() if cp.password_hash is None)
    if open_sessions and defaults.get("AllowRemoteLogon", "N").strip().upper() not in ("Y", "YES", "TRUE", "1"):
        raise ConfigError(cfg, "SocketAcceptHost",
                          f"{host} is reachable from other machines, and session(s) {', '.join(open_sessions)} have no "
                          f"password_hash in {sessions.path}: set one (`fixbridge hash-password`), listen on 127.0.0.1, "
                          "or set AllowRemoteLogon=Y in [DEFAULT] to accept this on purpose")


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket listens on at `port` on this machine (Linux /proc; empty elsewhere)."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        cols = line.split()
        local, state = cols[1], cols[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]))
    return found
