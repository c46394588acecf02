"""Clean stops, over and over (run by tests/e2e/test_e2e_stop_cycles*.py, one file per journal
backend so the two run on different pytest-xdist workers): `fixbridge run` started, traded through and stopped with SIGINT or
SIGTERM many times against one kept journal and FIX store (a deployment restarting). Every stop
exits 0 within 5 s, without a traceback or a segfault, and an order caught in flight by a stop is
finished by the next start: its client gets the terminal report, and there is one swap for it."""
from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path

from support import ADDR, BridgeProcess, free_port, start_bridge
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus
from helpers import eventually, tx_count

SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"
# Cycles per backend (the requirement: at least 50); FIXBRIDGE_STOP_CYCLES changes it for a soak run.
CYCLES = int(os.environ.get("FIXBRIDGE_STOP_CYCLES", "50"))
IN_FLIGHT_EVERY = 3  # every third cycle stops with an order just sent
STOP_SECONDS = 5.0   # the requirement: SIGINT/SIGTERM -> exit 0 within 5 s


def stop_with(bridge: BridgeProcess, sig: signal.Signals) -> int:
    """Send `sig` and return the exit code; TimeoutExpired if the bridge is still up after 5 s."""
    bridge.proc.send_signal(sig)
    return bridge.proc.wait(timeout=STOP_SECONDS)


def run_stop_cycles(backend: str, journal_url: str, devnet, sessions_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    traded: list[str] = []
    pending: str | None = None  # the order the last stop caught in flight
    # One client for all cycles, as an OMS that stays up while the bridge restarts: it logs on again
    # by itself, and what it missed comes by FIX resend (its store keeps the sequence numbers).
    c = FixClient("127.0.0.1", port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "client", reset_seq=False)
    try:
        for n in range(CYCLES):
            b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", state, port=port,
                             journal=journal_url)
            mining_off = False
            try:
                if n == 0:
                    c.start()
                assert eventually(lambda: c.logged_on, bool, timeout=30), n
                if pending is not None:  # the previous stop caught it in flight: this start finishes it
                    last = c.reports_until_terminal(pending, timeout=60)[-1]
                    assert last[39] == "2", (n, last.raw)
                    pending = None
                cid = f"cycle-{backend}-{n}"
                side = "1" if n % 2 == 0 else "2"  # buys and sells alternate: the wallet's balances stay put
                c.send(new_order_single(cid, "WETH/USDC", side, Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
                assert c.reports_until_terminal(cid, timeout=60)[-1][39] == "2", n
                traded.append(cid)
                if n % IN_FLIGHT_EVERY == IN_FLIGHT_EVERY - 1 and n < CYCLES - 1:  # the last start finishes it
                    pending = f"{cid}-in-flight"
                    # Half of these wait on the chain at the stop (its swap signed, not mined: mining is
                    # off); the others are stopped the moment they are sent, wherever they are.
                    on_chain = mining_off = (n // IN_FLIGHT_EVERY) % 2 == 0
                    if on_chain:
                        devnet.rpc("evm_setAutomine", [False])
                    c.send(new_order_single(pending, "WETH/USDC", "2" if side == "1" else "1", Decimal("0.01"),
                                            tif="3", ex_destination="uniswap_v2"))
                    traded.append(pending)
                    if on_chain:
                        new = c.receive(30, "8")
                        assert (new[11], new[150]) == (pending, "0"), new.raw  # signed and journaled
                sig = signal.SIGINT if n % 2 else signal.SIGTERM
                assert stop_with(b, sig) == 0, (n, sig, b.log()[-3000:])
                # The journal drained and the session logged out: nothing QuickFIX counted is missing.
                assert (state / "fix" / "clean-stop").exists(), (n, b.log()[-3000:])
                assert eventually(lambda: not c.logged_on, bool, timeout=10), n
            finally:
                b.kill9()  # only if the stop above failed
                if mining_off:  # the swap left in the node's mempool is mined while the bridge is down
                    devnet.rpc("evm_setAutomine", [True])
                    devnet.rpc("evm_mine")
            log = b.log()
            assert "Traceback" not in log and "Segmentation" not in log, (n, log[-5000:])
    finally:
        c.stop()
    assert pending is None
    # Each order filled by exactly one swap, and the wallet's nonces went to the journal's transactions only.
    j = Journal(journal_url)
    try:
        mined = 0
        for cid in traded:
            row = j.find_order(SESSION, cid)
            assert row is not None and row.status is OrdStatus.FILLED, cid
            txs = j.transactions_for(row.order_id)
            assert [t.status for t in txs if t.purpose == "swap"] == ["mined"], (cid, [(t.purpose, t.status) for t in txs])
            mined += sum(t.status in ("mined", "reverted") for t in txs)
    finally:
        j.close()
    assert tx_count(devnet.rpc_url, ADDR[1]) - nonce0 == mined
