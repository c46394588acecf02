"""What the tests share, importable as `support` (pytest's pythonpath is tests/): the paths,
anvil's accounts, starting a real anvil devnet with the venues and the real bridge as a
subprocess. The fixtures built on it are in conftest.py."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXBRIDGE = [sys.executable, "-m", "fixbridge.cli"]

# anvil's well-known accounts (devnet only), derived from its default mnemonic.
def _anvil_account(i: int):
    from eth_account import Account
    from fixbridge.devnet.anvil import DEFAULT_MNEMONIC
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")


KEYS = {i: "0x" + bytes(_anvil_account(i).key).hex() for i in (1, 2, 3, 4)}
ADDR = {i: _anvil_account(i).address for i in (1, 2, 3, 4)}

def acceptor_cfg(comp_ids: list[str] | tuple[str, ...], extra: str = "", fix42: list[str] | tuple[str, ...] = ()) -> str:
    """A QuickFIX acceptor.cfg for the bridge with one [SESSION] per counterparty CompID (FIX 4.4),
    and one FIX 4.2 [SESSION] with specs/FIX42.xml per CompID of `fix42`."""
    return ("[DEFAULT]\nConnectionType=acceptor\nSocketAcceptHost=127.0.0.1\nSocketAcceptPort=9876\n"
            "StartTime=00:00:00\nEndTime=00:00:00\nHeartBtInt=30\nSocketNodelay=Y\nUseDataDictionary=Y\n"
            f"DataDictionary={ROOT / 'specs' / 'FIX44.xml'}\nValidateUserDefinedFields=Y\n{extra}"
            + "".join(f"\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID=FIXBRIDGE\nTargetCompID={c}\n" for c in comp_ids)
            + "".join(f"\n[SESSION]\nBeginString=FIX.4.2\nSenderCompID=FIXBRIDGE\nTargetCompID={c}\n"
                      f"DataDictionary={ROOT / 'specs' / 'FIX42.xml'}\n" for c in fix42))


# CLIENT1: funded wallet #1 (and #3 as a second Account); CLIENT2: wallet #2, no tokens;
# CLIENT3: wallet #3, exact approvals; CLIENT4: wallet #4, funded with tokens, whose ETH a test
# takes away (it cannot pay for an approval).
COUNTERPARTIES = """
[wallets.w1]
chain = "devnet"
private_key = "{k1}"
[wallets.w2]
chain = "devnet"
private_key = "{k2}"
[wallets.w3]
chain = "devnet"
private_key = "{k3}"
[wallets.w4]
chain = "devnet"
private_key = "{k4}"

[sessions.CLIENT1]
wallets = ["w1", "w3"]
max_slippage_bps = 100
[sessions.CLIENT2]
wallets = ["w2"]
[sessions.CLIENT3]
wallets = ["w3"]
approval_policy = "exact"
may_write_options = true
[sessions.CLIENT5]
wallets = ["w3"]
confirmations = 3             # fills reported only once 3 blocks deep
[sessions.CLIENT4]
wallets = ["w4"]
"""


# ---- journal backends ------------------------------------------------------------------------
PG_HOST = "127.0.0.1:5432"
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}/postgres"
# Parametrize a test's `backend` with these to run it on both journals (SQLite is the default).
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A free port whose next one is free too (the embedded devnet's two chains)."""
    while True:
        p = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue


@dataclass
class Devnet:
    anvil: object
    deployment: object
    spec_path: Path

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    def rpc(self, method: str, params: list | None = None):
        return self.anvil.rpc(method, params or [])


def start_devnet(d: Path, **anvil_options) -> Devnet:
    """anvil in `d` with the venues deployed, wallets #1, #3 and #4 funded, and its spec written."""
    from fixbridge.devnet.anvil import Anvil
    from fixbridge.devnet.deploy import deploy_devnet, write_spec

    node = Anvil("127.0.0.1", 0, log_path=d / "anvil.log", **anvil_options).start()
    dep = deploy_devnet(node.rpc_url, fund=[ADDR[1], ADDR[3], ADDR[4]])
    write_spec(dep, d / "devnet.toml")
    return Devnet(node, dep, d / "devnet.toml")


def start_bridge(specs: list[Path], sessions: Path, state: Path, env: dict[str, str] | None = None,
                 port: int | None = None, journal: str | None = None) -> "BridgeProcess":
    """`fixbridge run --no-devnet` as a subprocess with its FIX store in `state` and its own SQLite
    journal there (or the given journal URL)."""
    port = port or free_port()
    state.mkdir(parents=True, exist_ok=True)
    url = journal or f"sqlite:///{state / 'journal.db'}"
    args = FIXBRIDGE + ["run", "--no-devnet", *[a for p in specs for a in ("--spec", str(p))], "--sessions",
                        str(sessions), "--journal", url, "--state-dir", str(state), "--port", str(port)]
    args += ["--metrics-port", "0"]  # the HTTP port on a free port: test bridges never take 9877 from `make run`
    return BridgeProcess(args, port, url, state, env=env or {}).start()


@dataclass
class BridgeProcess:
    args: list[str]
    port: int
    journal_url: str
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path = field(default=None)  # type: ignore[assignment]

    def start(self, timeout: float = 30.0) -> "BridgeProcess":
        self.log_path = self.state_dir / f"bridge-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")
        from fixbridge.devnet.anvil import die_with_parent
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                     env={**os.environ, "FIXBRIDGE_LOG_LEVEL": "DEBUG", "COLUMNS": "200", **self.env})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"bridge did not listen on {self.port}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
