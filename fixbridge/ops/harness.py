"""A throw-away trading stack for operator tools: a fresh devnet (anvil + `deploy_devnet`, the same
deployment `make run` makes) and a fresh bridge (`fixbridge run --no-devnet` as a subprocess) on
free ports, with its journal, FIX store and logs in a temporary folder.

Used by `fixbridge replay` (and by sessions/recorded/record.py to record a session)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from eth_account import Account


class HarnessError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wallets_by_chain(counterparties: Path) -> dict[str, list[str]]:
    """Addresses of the wallets of counterparties.toml (raw keys, or keys in the environment), per chain."""
    raw = tomllib.loads(counterparties.read_text())
    out: dict[str, list[str]] = {}
    for w in (raw.get("wallets") or {}).values():
        key = w.get("private_key") or os.environ.get(w.get("private_key_env") or "")
        chain = w.get("chain", "devnet")
        out.setdefault(chain, [])
        if key:
            out[chain].append(Account.from_key(key).address)
    return out


class Stack:
    """devnet + bridge; use as a context manager. ``workdir`` is kept if given, else deleted."""

    def __init__(self, sessions: Path, workdir: Path | None = None, log=None, timeout: float = 60.0) -> None:
        self.sessions = Path(sessions).resolve()
        self._keep = workdir is not None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="fixbridge-stack-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.say = log or (lambda _m: None)
        self.timeout = timeout
        self.anvil = None
        self.extra_nodes: list = []
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.spec_path = self.dir / "devnet.toml"
        self.journal_url = f"sqlite:///{self.dir / 'journal.db'}"
        self.bridge_log = self.dir / "bridge.log"

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    def start(self) -> None:
        from fixbridge.devnet.anvil import Anvil
        from fixbridge.devnet.deploy import deploy_devnet, write_spec

        t0 = time.monotonic()
        wallets = wallets_by_chain(self.sessions)
        self.anvil = Anvil("127.0.0.1", 0, log_path=self.dir / "anvil.log").start()
        dep = deploy_devnet(self.anvil.rpc_url, fund=wallets.get("devnet") or None)
        write_spec(dep, self.spec_path)
        specs = [self.spec_path]
        self.say(f"devnet at {self.anvil.rpc_url} deployed in {time.monotonic() - t0:.1f}s")
        for chain in sorted(set(wallets) - {"devnet"}):  # the second devnet chain of `make run`
            try:
                from fixbridge.devnet.second_chain import SECOND_CHAIN, SECOND_CHAIN_ID, write_second_spec
            except ImportError:
                raise HarnessError(f"{self.sessions}: no devnet for chain {chain!r}") from None
            if chain != SECOND_CHAIN:
                raise HarnessError(f"{self.sessions}: no devnet for chain {chain!r} (known: devnet, {SECOND_CHAIN})")
            node = Anvil("127.0.0.1", 0, chain_id=SECOND_CHAIN_ID, log_path=self.dir / f"anvil-{chain}.log").start()
            self.extra_nodes.append(node)
            path = self.dir / f"{chain}.toml"
            write_second_spec(deploy_devnet(node.rpc_url, fund=wallets[chain] or None), path, chain)
            specs.append(path)
            self.say(f"{chain} at {node.rpc_url} deployed")
        self.port = free_port()
        args = [sys.executable, "-m", "fixbridge.cli", "run", "--no-devnet",
                *[a for p in specs for a in ("--spec", str(p))],
                "--sessions", str(self.sessions), "--journal", self.journal_url, "--state-dir", str(self.dir / "var"),
                "--port", str(self.port)]
        args += ["--metrics-port", "0"]  # a throw-away bridge never takes the real one's status port
        root = Path(__file__).resolve().parents[2]
        self._log_fh = open(self.bridge_log, "wb")
        self.proc = subprocess.Popen(args, cwd=root, stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     env={**os.environ, "COLUMNS": "200"}, start_new_session=True)
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise HarnessError(f"bridge exited with {self.proc.returncode}:\n{self.bridge_log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.say(f"bridge listening on {self.port}, journal {self.journal_url}")
                return
            except OSError:
                time.sleep(0.1)
        raise HarnessError(f"bridge did not listen on {self.port} within {self.timeout}s")

    def messages_log(self, session: str) -> Path:
        """The bridge's QuickFIX messages log of a session ('FIX.4.4:FIXBRIDGE->CLIENT1')."""
        begin, pair = session.split(":", 1)
        sender, target = pair.split("->")
        return self.dir / "var" / "fix" / "log" / f"{begin}-{sender}-{target}.messages.current.log"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log_fh", None):
            self._log_fh.close()
        for node in [self.anvil, *self.extra_nodes]:
            if node is not None:
                node.stop()
        self.anvil, self.extra_nodes = None, []
        if not self._keep:
            shutil.rmtree(self.dir, ignore_errors=True)
