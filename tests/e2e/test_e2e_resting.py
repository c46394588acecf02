"""Resting orders as a desk uses them, end to end: a real QuickFIX initiator, the real bridge (its
own process) on a real anvil devnet, and an outside account (an anvil account that is none of the
bridge's wallets) whose swaps move the market.

- A GTC buy below the market rests (New, nothing sent), is amended (150=5 with the new ClOrdID), and
  fills when the outside account's swap pushes the price through its limit, at a price within it.
- A stop sell triggers (150=D Restated, 378=4) when the market falls to its StopPx, and trades at market.
- A GTD order expires at its time; a Day order at the session's close.
- Cancel (F) of a resting order is immediate; an amend of an order that is not resting, or below
  its filled quantity, gets OrderCancelReject 434=2 and changes nothing.
- AF lists the resting orders; q cancels them.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fixbridge.fix.client import (FixClient, new_order_single, order_cancel_replace_request, order_cancel_request,
                                  order_mass_cancel_request, order_mass_status_request)

from helpers import balance, eventually, tx_count
from market_support import outside_market, next_report, no_report, push_down, push_up, v2_price
from support import ADDR, start_bridge

pytestmark = pytest.mark.e2e
E18 = 10**18
BUY, SELL = "1", "2"
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"


@pytest.fixture(scope="module")
def chain(devnet, bridge):
    return outside_market(devnet)


def test_gtc_buy_rests_is_amended_and_fills_when_the_market_comes(client, chain, journal, devnet):
    w3, venues, outsider, dep = chain
    px = v2_price(chain)
    limit = (px * Decimal("0.97")).quantize(Decimal("0.01"))
    sent = tx_count(devnet.rpc_url, ADDR[1])
    client.send(new_order_single("GTC-1", "WETH/USDC", BUY, Decimal("0.01"), limit=limit, tif="1",
                                 ex_destination="uniswap_v2"))
    new = next_report(client, "GTC-1")
    assert (new[150], new[39], new[59], new[151], new[14]) == ("0", "0", "1", "0.01", "0"), new.raw
    no_report(client, 1.0)  # resting: nothing trades while the market is above the limit
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent
    row = journal.find_order(SESSION, "GTC-1")
    assert row.resting and row.status.value == "New"

    # Amend: a higher limit and a bigger size, under a new ClOrdID.
    limit2 = (px * Decimal("0.98")).quantize(Decimal("0.01"))
    client.send(order_cancel_replace_request("GTC-1a", "GTC-1", "WETH/USDC", BUY, "2", qty=Decimal("0.02"),
                                             limit=limit2, tif="1"))
    rep = next_report(client, "GTC-1a")
    assert (rep[150], rep[39], rep[41], rep[38], rep[44], rep[151]) == ("5", "0", "GTC-1", "0.02", str(limit2), "0.02"), rep.raw
    assert journal.find_order(SESSION, "GTC-1").order_id == journal.find_order(SESSION, "GTC-1a").order_id
    # The old ClOrdID is retired: a new order may not take it.
    client.send(new_order_single("GTC-1", "WETH/USDC", BUY, Decimal("0.01"), limit=limit, tif="3"))
    dup = next_report(client, "GTC-1")
    assert (dup[39], dup[103]) == ("8", "6"), dup.raw

    # Someone else sells WETH: the price falls through the limit, and the order fills within it.
    weth_before = balance(devnet.rpc_url, dep.weth, ADDR[1])
    push_down(chain, limit2 * Decimal("0.97"))
    reports = client.reports_until_terminal("GTC-1a", timeout=30)
    trades = [r for r in reports if r[150] == "F"]
    assert reports[-1][39] == "2" and trades, [r.raw for r in reports]
    assert all(Decimal(r[31]) <= limit2 for r in trades) and Decimal(reports[-1][6]) <= limit2
    assert sum(Decimal(r[32]) for r in trades) == Decimal("0.02") and reports[-1][14] == "0.02"
    assert balance(devnet.rpc_url, dep.weth, ADDR[1]) - weth_before == 2 * E18 // 100
    row = eventually(lambda: journal.get_order(row.order_id), lambda r: r.status.value == "Filled")
    assert row.status.value == "Filled" and not row.resting and row.cum_qty == Decimal("0.02")


def test_amend_rejections_change_nothing(client, chain, journal):
    px = v2_price(chain)
    client.send(new_order_single("AM-1", "WETH/USDC", SELL, Decimal("0.01"), limit=(px * 2).quantize(Decimal("0.01")),
                                 tif="1"))
    assert next_report(client, "AM-1")[150] == "0"
    bad = [("AM-1x", "AM-nope", {}, "Unknown order"),
           ("AM-1y", "AM-1", {"qty": Decimal("-1")}, "OrderQty must be positive"),
           ("AM-1z", "AM-1", {"tif": "3"}, "does not rest")]
    for new_id, orig, kw, words in bad:
        client.send(order_cancel_replace_request(new_id, orig, "WETH/USDC", SELL, "2", **kw))
        r = client.receive(15, "9")
        assert (r[11], r[434]) == (new_id, "2") and words in r[58], r.raw
    row = journal.find_order(SESSION, "AM-1")
    assert row.order_qty == Decimal("0.01") and row.time_in_force.value == "GTC" and row.resting
    # Cancel of a resting order: at once.
    client.send(order_cancel_request("AM-1c", "AM-1", SELL, "WETH/USDC"))
    r = next_report(client, "AM-1c")
    assert (r[150], r[39], r[41]) == ("4", "4", "AM-1"), r.raw
    # An amend of an order that is done.
    client.send(order_cancel_replace_request("AM-1d", "AM-1", "WETH/USDC", SELL, "2", qty=Decimal("0.02")))
    r = client.receive(15, "9")
    assert (r[434], r[102]) == ("2", "0") and "Too late" in r[58], r.raw


def test_stop_sell_triggers_when_the_market_falls_and_trades_at_market(client, chain, devnet):
    w3, venues, outsider, dep = chain
    px = v2_price(chain)
    stop = (px * Decimal("0.97")).quantize(Decimal("0.01"))
    client.send(new_order_single("STOP-1", "WETH/USDC", SELL, Decimal("0.01"), tif="1", stop_px=stop,
                                 ex_destination="uniswap_v2"))
    new = next_report(client, "STOP-1")
    assert (new[150], new[40] if 40 in new.fields else "3", new[99]) == ("0", "3", str(stop)), new.raw
    no_report(client, 1.0)
    push_down(chain, stop * Decimal("0.98"))
    reports = client.reports_until_terminal("STOP-1", timeout=30)
    trigger = reports[0]
    assert (trigger[150], trigger[378], trigger[39]) == ("D", "4", "0") and "Stop triggered" in trigger[58], trigger.raw
    assert reports[-1][39] == "2" and Decimal(reports[-1][14]) == Decimal("0.01")
    push_up(chain, px)  # leave the market where the other tests expect it


def test_resting_orders_one_block_meets_all_fire_once_each_and_fill(client, chain, journal, devnet):
    """Several resting buys that the same push of the market meets: the block's fires are journaled
    together (one unit) and each order goes to the chain once, and fills within its limit."""
    w3, venues, outsider, dep = chain
    px = v2_price(chain)
    ids = [f"MANY-{i}" for i in range(6)]
    limits = {cid: (px * (Decimal("0.970") - Decimal("0.0005") * i)).quantize(Decimal("0.01")) for i, cid in enumerate(ids)}
    weth_before = balance(devnet.rpc_url, dep.weth, ADDR[1])
    for cid in ids:
        client.send(new_order_single(cid, "WETH/USDC", BUY, Decimal("0.01"), limit=limits[cid], tif="1",
                                     ex_destination="uniswap_v2", account="w1"))
        assert next_report(client, cid)[150] == "0"
    push_down(chain, min(limits.values()) * Decimal("0.97"))
    done = {}
    end = time.monotonic() + 30
    while len(done) < len(ids) and time.monotonic() < end:
        r = client.receive(30, "8")
        if r[11] in limits and r[39] in ("2", "4", "8", "C"):
            done[r[11]] = r
    assert {c: r[39] for c, r in done.items()} == {c: "2" for c in ids}, {c: r.raw for c, r in done.items()}
    assert all(Decimal(done[c][6]) <= limits[c] for c in ids)
    for cid in ids:
        oid = journal.find_order(SESSION, cid).order_id
        fired = [e for e in journal.events(oid) if e.reason.startswith("fired:")]
        swaps = [t for t in journal.transactions_for(oid) if t.purpose == "swap"]
        assert len(fired) == 1 and len(swaps) == 1 and swaps[0].status == "mined", (cid, fired, swaps)
    assert balance(devnet.rpc_url, dep.weth, ADDR[1]) - weth_before == len(ids) * E18 // 100
    push_up(chain, px)


def test_gtd_expires_at_its_time(client, journal):
    at = datetime.now(timezone.utc) + timedelta(seconds=3)
    client.send(new_order_single("GTD-1", "WETH/USDC", BUY, Decimal("0.01"), limit=Decimal("1"), tif="6",
                                 expire_time=at))
    new = next_report(client, "GTD-1")
    assert (new[150], new[59]) == ("0", "6") and new[126].startswith(at.strftime("%Y%m%d-%H:%M:%S")), new.raw
    gone = next_report(client, "GTD-1", timeout=15)
    assert (gone[150], gone[39], gone[151]) == ("C", "C", "0") and "GTD" in gone[58], gone.raw
    assert datetime.now(timezone.utc) >= at


def test_mass_status_lists_resting_orders_and_mass_cancel_cancels_them(client, chain, journal):
    px = v2_price(chain)
    ids = [f"MS-{i}" for i in range(3)]
    for i, cid in enumerate(ids):
        client.send(new_order_single(cid, "WETH/USDC", BUY, Decimal("0.01"), limit=(px / 2 - i).quantize(Decimal("0.01")),
                                     tif="1"))
        assert next_report(client, cid)[150] == "0"
    client.send(order_mass_status_request("MSR-1", "7"))
    seen = {}
    while True:
        r = client.receive(15, "8")
        if r.get(584) == "MSR-1":
            seen[r[11]] = r
            if r.get(912) == "Y":
                break
    assert set(ids) <= set(seen) and all(seen[c][150] == "I" and seen[c][39] == "0" for c in ids)
    client.send(order_mass_cancel_request("MC-1", "7"))
    report = client.receive(15, "r")
    assert report[531] == "7" and int(report[533]) >= 3, report.raw
    canceled = set()
    end = time.monotonic() + 15
    while not set(ids) <= canceled and time.monotonic() < end:
        r = client.receive(15, "8")
        if r[39] == "4":
            canceled.add(r[41])
    assert set(ids) <= canceled
    assert all(not journal.find_order(SESSION, c).resting for c in ids)


def test_day_order_expires_at_the_sessions_close(devnet, tmp_path):
    """A session whose day closes a few seconds from now (UTC, HH:MM:SS): its Day order expires then.
    (Its own bridge, and a CompID no other client of this process uses: QuickFIX keeps one session per
    SessionID in a process.)"""
    from support import COUNTERPARTIES, KEYS, acceptor_cfg
    close = (datetime.now(timezone.utc) + timedelta(seconds=10)).strftime("%H:%M:%S")  # room for a slow start
    d = tmp_path / "sessions"
    d.mkdir()
    (d / "acceptor.cfg").write_text(acceptor_cfg(("CLIENT4",)))
    text = COUNTERPARTIES.format(k1=KEYS[1], k2=KEYS[2], k3=KEYS[3], k4=KEYS[4])
    (d / "counterparties.toml").write_text(text.replace("[sessions.CLIENT4]\n", f'[sessions.CLIENT4]\nday_close = "{close}"\n', 1))
    b = start_bridge([devnet.spec_path], d / "counterparties.toml", tmp_path / "bridge")
    c = FixClient("127.0.0.1", b.port, "CLIENT4", "FIXBRIDGE", data_dir=tmp_path / "client").start()
    try:
        c.send(new_order_single("DAY-1", "WETH/USDC", BUY, Decimal("0.01"), limit=Decimal("1"), tif="0"))
        new = next_report(c, "DAY-1")
        assert (new[150], new[59]) == ("0", "0"), new.raw
        gone = next_report(c, "DAY-1", timeout=40)
        assert (gone[150], gone[39]) == ("C", "C") and "Day order at the session's close" in gone[58], gone.raw
    finally:
        c.stop()
        b.stop()


def test_the_client_command_rests_amends_and_cancels(bridge, journal):
    """`fixbridge client buy --tif GTC`, `client amend`, `client cancel`, as a desk would type them (its
    own session, CLIENT3 (a funded wallet): the module's client holds CLIENT1)."""
    import os
    import subprocess

    from support import FIXBRIDGE, ROOT

    def cli(*args: str) -> str:
        r = subprocess.run(FIXBRIDGE + ["client", *args, "--port", str(bridge.port), "--sender", "CLIENT3"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    out = cli("buy", "WETH/USDC", "0.01", "--limit", "1", "--tif", "GTC", "--cl-ord-id", "CLI-R1")
    assert "New" in out and "resting" in out, out
    row = eventually(lambda: journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", "CLI-R1"), lambda r: r is not None and r.resting)
    assert row.resting and row.price == Decimal("1")
    out = cli("amend", "CLI-R1", "--limit", "2", "--qty", "0.02", "--new-cl-ord-id", "CLI-R2")
    assert "Replaced" in out, out
    amended = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", "CLI-R2")
    assert (amended.price, amended.order_qty, amended.order_id) == (Decimal("2"), Decimal("0.02"), row.order_id)
    out = cli("cancel", "CLI-R2")
    assert "Canceled" in out, out
    assert eventually(lambda: journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", "CLI-R2").status.value,
                      lambda s: s == "Canceled") == "Canceled"


def test_a_fill_reorged_out_puts_the_order_back_to_resting(client, chain, journal, devnet):
    """The outside account's swaps and the order's fill are in blocks a reorg replaces: the client gets
    the Trade Cancel (150=H, CumQty 0), the order's swap, sent again, can no longer meet its limit on
    the market as it is now, so the order rests again (New, nothing filled), and fills when the market
    comes back."""
    w3, venues, outsider, dep = chain
    px = v2_price(chain)
    limit = (px * Decimal("0.97")).quantize(Decimal("0.01"))
    client.send(new_order_single("RORG-1", "WETH/USDC", BUY, Decimal("0.01"), limit=limit, tif="1",
                                 ex_destination="uniswap_v2"))
    assert next_report(client, "RORG-1")[150] == "0"
    before = w3.eth.block_number
    push_down(chain, limit * Decimal("0.97"))
    fill = next_report(client, "RORG-1")
    assert (fill[150], fill[39]) == ("F", "2"), fill.raw
    time.sleep(0.3)
    devnet.rpc("anvil_reorg", [w3.eth.block_number - before, []])  # the pushes and the fill, gone
    bust = next_report(client, "RORG-1")
    assert (bust[150], bust[19], bust[39], bust[14]) == ("H", fill[17], "0", "0"), bust.raw
    row = journal.find_order(SESSION, "RORG-1")
    rested = eventually(lambda: journal.get_order(row.order_id), lambda r: r.resting, timeout=20)
    assert rested.resting and rested.cum_qty == 0 and rested.status.value == "New"
    assert any(e.reason.startswith("rests again") for e in journal.events(row.order_id))
    push_down(chain, limit * Decimal("0.97"))
    again = client.reports_until_terminal("RORG-1", timeout=30)[-1]
    assert (again[150], again[39], again[14]) == ("F", "2", "0.01") and again[17] != fill[17], again.raw
    fills = journal.fills_for(row.order_id)
    assert [f.busted_at is not None for f in fills] == [True, False]  # the journal keeps both
