"""Resting orders survive a kill -9, on SQLite and PostgreSQL: after the restart the client's mass
status lists each of them once, still resting (nothing was sent while the bridge was away), and when
an outside account's swaps bring the market, each fills exactly once: one swap per order on chain."""
from __future__ import annotations

from decimal import Decimal

import pytest

from fixbridge.fix.client import FixClient, new_order_single, order_mass_status_request
from fixbridge.journal import Journal
from fixbridge.orders.model import OrdStatus

from helpers import tx_count
from market_support import outside_market, next_report, push_down, v2_price
from support import ADDR, BACKENDS, BridgeProcess, free_port, start_bridge

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"


@pytest.fixture(scope="module")
def chain(devnet):
    return outside_market(devnet)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resting_orders_survive_a_kill_9_and_fill_once(backend: str, journal_url: str, devnet, chain, sessions_dir,
                                                       tmp_path) -> None:
    port = free_port()

    def bridge() -> BridgeProcess:
        return start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", tmp_path, port=port,
                            journal=journal_url)

    def client() -> FixClient:
        return FixClient("127.0.0.1", port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "client", reset_seq=False).start()

    px = v2_price(chain)
    ids = [f"KR-{backend}-{i}" for i in range(3)]
    limits = {cid: (px * (Decimal("0.96") - Decimal("0.01") * i)).quantize(Decimal("0.01")) for i, cid in enumerate(ids)}
    b, c = bridge(), client()
    try:
        for cid in ids:
            c.send(new_order_single(cid, "WETH/USDC", "1", Decimal("0.01"), limit=limits[cid], tif="1",
                                    ex_destination="uniswap_v2"))
            assert next_report(c, cid)[150] == "0"
        sent = tx_count(devnet.rpc_url, ADDR[1])
        b.kill9()
        c.stop()
        j = Journal(journal_url)
        try:
            assert sorted(r.cl_ord_id for r in j.resting_orders(SESSION)) == sorted(ids)
        finally:
            j.close()
        b, c = bridge(), client()
        c.send(order_mass_status_request("KR-AF", "7"))
        listed = []
        while True:
            r = c.receive(15, "8")
            if r.get(584) == "KR-AF":
                listed.append(r)
                if r.get(912) == "Y":
                    break
        assert sorted(r[11] for r in listed) == sorted(ids)  # each once: neither lost nor doubled
        assert all((r[150], r[39], r[14]) == ("I", "0", "0") for r in listed)
        assert tx_count(devnet.rpc_url, ADDR[1]) == sent  # nothing sent while they rested

        push_down(chain, min(limits.values()) * Decimal("0.97"))
        for cid in ids:
            done = c.reports_until_terminal(cid, timeout=30)
            assert done[-1][39] == "2" and Decimal(done[-1][6]) <= limits[cid], [m.raw for m in done]
    finally:
        c.stop()
        b.stop()
    j = Journal(journal_url)
    try:
        for cid in ids:
            row = j.find_order(SESSION, cid)
            assert row.status is OrdStatus.FILLED and not row.resting
            # One swap mined (a stuck one may have had re-priced copies at its nonce: replaced, never mined).
            swaps = [t for t in j.transactions_for(row.order_id) if t.purpose == "swap"]
            assert [t.status for t in swaps].count("mined") == 1 and {t.nonce for t in swaps} == {swaps[0].nonce}, (
                cid, [(t.purpose, t.status, t.nonce) for t in swaps])
    finally:
        j.close()
