"""Run Foundry's `anvil` (from the npm package `@foundry-rs/anvil`) as a local chain.

    with Anvil(port=0) as node:          # port 0: a free port
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))

Every started node is stopped when the interpreter exits (atexit), so a test
that forgets `stop()` does not leak an anvil process.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_MNEMONIC",
    "Anvil",
    "AnvilError",
    "anvil_binary",
    "node_modules_dir",
    "project_root",
]

#: anvil's (and hardhat's) well-known test mnemonic: account #0 is
#: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, #1 0x70997970C51812dc3A010C7d01b50e0d17dc79C8.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"

_SETUP_HINT = "run `npm ci` (or `make setup`) in the project root"


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when its parent dies, even by SIGKILL (no leaked nodes)."""
    try:
        import ctypes
        import signal as _signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, _signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: atexit still stops it on a normal exit
        pass


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or died."""


def project_root() -> Path:
    """The repository root: the folder holding package.json and node_modules/."""
    return Path(__file__).resolve().parents[2]


def node_modules_dir() -> Path:
    """`node_modules/` of the project (override with $FIXBRIDGE_NODE_MODULES)."""
    env = os.environ.get("FIXBRIDGE_NODE_MODULES")
    return Path(env) if env else project_root() / "node_modules"


def _platform_tag() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system(), "")
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def anvil_binary() -> Path:
    """Path of the anvil binary that `npm ci` installed for this platform."""
    tag = _platform_tag()
    exe = "anvil.exe" if tag.startswith("win32") else "anvil"
    base = node_modules_dir() / "@foundry-rs"
    candidate = base / f"anvil-{tag}" / "bin" / exe
    if candidate.is_file():
        return candidate
    # Unusual platform names: take whatever platform package npm installed.
    found = sorted(base.glob(f"anvil-*/bin/{exe}")) if base.is_dir() else []
    if found:
        return found[0]
    raise AnvilError(
        f"anvil binary not found (looked for {candidate}); {_SETUP_HINT} — "
        "it installs @foundry-rs/anvil, which ships the binary"
    )


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # like anvil (tokio) itself: TIME_WAIT leftovers do not count, a listener does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# Every running node, stopped at interpreter exit.
_running: set[Anvil] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        nodes = list(_running)
    for node in nodes:
        try:
            node.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass


class Anvil:
    """One anvil process.

    host/port: where it listens; port 0 picks a free port. chain_id: 31337 by
    default. block_time: seconds between blocks, None = mine each transaction
    at once (automine). silent: no per-request logging. Anvil's output goes
    to `log_path` (a temporary file unless given), and its tail is quoted in
    the error if the node fails to come up.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chain_id: int = 31337,
        block_time: float | None = None,
        silent: bool = True,
        mnemonic: str = DEFAULT_MNEMONIC,
        accounts: int = 10,
        balance_eth: int = 10_000,
        extra_args: tuple[str, ...] | list[str] = (),
        log_path: Path | str | None = None,
        startup_timeout: float = 15.0,
        binary: Path | str | None = None,
        state_path: Path | str | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.chain_id = chain_id
        self.block_time = block_time
        self.silent = silent
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.binary = Path(binary) if binary else None
        # Where the chain outlives the process: loaded at start when the file exists, written
        # every second and at a clean exit (so a kill -9 loses at most the last second).
        self.state_path = Path(state_path) if state_path else None
        self._log_given = log_path is not None
        self.log_path: Path | None = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Anvil:
        """Start the node and wait until it answers eth_chainId."""
        if self._proc is not None:
            raise AnvilError("this Anvil is already started")
        binary = self.binary or anvil_binary()
        # A port picked by us can be taken by someone else before anvil binds
        # it; in that case try another one.
        attempts = 3 if self.requested_port == 0 else 1
        if self.requested_port and _port_in_use(self._bind_host, self.requested_port):
            # Checked first so that another node already on the port can never
            # be mistaken for ours.
            raise AnvilError(
                f"port {self.requested_port} on {self._bind_host} is already in use "
                "(another anvil or devnet running?)"
            )
        for attempt in range(attempts):
            port = self.requested_port or _free_port(self._bind_host)
            try:
                self._spawn(binary, port)
                self._wait_ready()
                return self
            except AnvilError as exc:
                log = self._read_log()
                self._kill()
                if attempt + 1 < attempts and "in use" in log.lower():
                    continue
                raise AnvilError(f"{exc}\n--- anvil output (tail) ---\n{log[-4000:]}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the node and wait for it (kill it if it does not exit)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()

    def __enter__(self) -> Anvil:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not started")
        return f"http://{self._connect_host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def poll(self) -> int | None:
        """anvil's exit code, or None while it runs."""
        return self._proc.poll() if self._proc else None

    def rpc(self, method: str, params: list | None = None, timeout: float = 5.0):
        """One raw JSON-RPC call (no web3 needed); returns `result`."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        req = urllib.request.Request(self.rpc_url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
        if "error" in reply:
            raise AnvilError(f"{method}: {reply['error']}")
        return reply["result"]

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.rpc_url if self.port else "-"
        return f"<Anvil {where} chain_id={self.chain_id} pid={self.pid} {state}>"

    # -- internals ---------------------------------------------------------
    @property
    def _bind_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def _connect_host(self) -> str:
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host in ("::",):
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _command(self, binary: Path, port: int) -> list[str]:
        cmd = [
            str(binary),
            "--host", self.host,
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--mnemonic", self.mnemonic,
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_eth),
        ]  # fmt: skip
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.silent:
            cmd.append("--silent")
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path), "--state-interval", "1"]
        cmd += list(self.extra_args)
        return cmd

    def _spawn(self, binary: Path, port: int) -> None:
        if self.log_path is None or not self._log_given:
            fd, name = tempfile.mkstemp(prefix="fixbridge-anvil-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        # anvil's output goes to a file, never to a pipe nobody reads (a full
        # pipe would block the node).
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._command(binary, port),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            # Not in the terminal's process group: Ctrl-C reaches the program that started the
            # node, which stops it after itself (a node gone mid-stop would fail the last writes).
            start_new_session=True,
        )
        self.port = port
        with _running_lock:
            _running.add(self)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise AnvilError(f"anvil exited with code {code} while starting on {self.rpc_url}")
            try:
                got = int(self.rpc("eth_chainId", timeout=1.0), 16)
            except (OSError, urllib.error.URLError, ValueError, AnvilError) as exc:
                last_error = exc
                time.sleep(0.02)
                continue
            if got != self.chain_id:
                raise AnvilError(
                    f"{self.rpc_url} answered chain id {got}, expected {self.chain_id} "
                    "(is another node on that port?)"
                )
            return
        raise AnvilError(
            f"anvil did not answer eth_chainId on {self.rpc_url} within "
            f"{self.startup_timeout:g}s (last error: {last_error})"
        )

    def _read_log(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        with _running_lock:
            _running.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if not self._log_given and self.log_path is not None:
            try:
                self.log_path.unlink()
            except OSError:
                pass
            self.log_path = None
        self._proc = None
