"""Restarts and crashes: the journal carries ClOrdID uniqueness and in-flight orders across a
stop or a kill -9, and every order gets exactly one transaction and its terminal report."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from web3 import Web3

from conftest import ADDR, BridgeProcess, free_port, start_bridge
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus
from helpers import tx_count

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"


@pytest.fixture
def make_bridge(devnet, sessions_dir, tmp_path):
    """Bridges sharing one journal and one FIX store, as the same deployment restarted."""
    port = free_port()
    started: list[BridgeProcess] = []

    def make(crash_at: str | None = None) -> BridgeProcess:
        b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", tmp_path,
                         env={"FIXBRIDGE_CRASH_AT": crash_at} if crash_at else {}, port=port)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def persistent_client(bridge: BridgeProcess, path) -> FixClient:
    """A client that keeps its sequence numbers, so FIX resend delivers what it missed."""
    return FixClient("127.0.0.1", bridge.port, "CLIENT1", "FIXBRIDGE", data_dir=path, reset_seq=False).start()


def test_duplicate_cl_ord_id_after_restart(make_bridge, devnet, tmp_path, cl_ord_id):
    b = make_bridge()
    with FixClient("127.0.0.1", b.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c1") as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY := "1", Decimal("0.01"), tif="3"))
        assert c.reports_until_terminal(cl_ord_id)[-1][39] == "2"
    b.stop()
    b = make_bridge()
    sent = tx_count(devnet.rpc_url, ADDR[1])
    with FixClient("127.0.0.1", b.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c2") as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.01"), tif="3"))
        r = c.reports_until_terminal(cl_ord_id)
        assert [(m[150], m[39], m[103]) for m in r] == [("8", "8", "6")]
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent


@pytest.mark.parametrize("crash_at", ["before_sign", "after_write_ahead", "after_broadcast", "after_receipt", "before_report"])
def test_kill_9_mid_order_then_restart_finishes_it_once(make_bridge, devnet, tmp_path, cl_ord_id, crash_at):
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    b = make_bridge(crash_at=crash_at)
    c = persistent_client(b, tmp_path / "client")
    nonce_before = tx_count(devnet.rpc_url, ADDR[1])
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.02"), limit=Decimal("1000"), tif="4"))
    assert b.proc.wait(30) != 0  # the bridge killed itself at the crash point
    c.stop()
    b = make_bridge()
    c = persistent_client(b, tmp_path / "client")
    try:
        reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    finally:
        c.stop()
    assert reports[-1][39] == "2", [r.raw for r in reports]
    trade = [r for r in reports if r[150] == "F"]
    assert len(trade) == 1
    # Exactly one swap on chain for the order, and the journal agrees with the chain.
    j = Journal(b.journal_url)
    row = j.find_order(SESSION, cl_ord_id)
    swaps = [t for t in j.transactions_for(row.order_id) if t.purpose == "swap"]
    assert len(swaps) == 1 and swaps[0].tx_hash == trade[0][20001] and swaps[0].status == "mined"
    assert w3.eth.get_transaction_receipt(swaps[0].tx_hash).status == 1
    sent = [t for t in j.transactions_for(row.order_id) if t.status != "failed"]  # the swap (+ an approval)
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce_before + len(sent)
    assert row.status is OrdStatus.FILLED and len(j.fills_for(row.order_id)) == 1
    j.close()
