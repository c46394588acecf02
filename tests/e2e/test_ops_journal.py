"""Compliance queries on a journal filled by real orders through the real bridge: the audit trail
of an order, order and fill listings with filters, in table / JSON / CSV, and the SQL views.

The commands run as a user runs them (`python -m fixbridge.cli journal ...`) against the bridge's
journal while the bridge is running."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text

from support import ROOT
from fixbridge.fix.client import new_order_single, order_status_request

pytestmark = pytest.mark.e2e
BUY, SELL, IOC, FOK = "1", "2", "3", "4"
S1, S3 = "FIX.4.4:FIXBRIDGE->CLIENT1", "FIX.4.4:FIXBRIDGE->CLIENT3"


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "fixbridge.cli", *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "250"}, timeout=60)
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def rows_of(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


@pytest.fixture(scope="module")
def traded(client_factory, bridge, journal):
    """A small trading day: fills, a cancel, a reject, a duplicate, a status request, an exact approval."""
    c1, c3 = client_factory("CLIENT1"), client_factory("CLIENT3")
    tag = datetime.now(timezone.utc).strftime("%H%M%S%f")
    ids = {k: f"OPS-{k}-{tag}" for k in ("buy", "sell", "nofill", "reject", "c3")}
    out: dict[str, list] = {}

    def run(c, key, msg):
        c.send(msg)
        out[key] = c.reports_until_terminal(ids[key])

    run(c1, "buy", new_order_single(ids["buy"], "WETH/USDC", BUY, Decimal("0.5"), limit=Decimal("3100"), tif=IOC))
    run(c1, "sell", new_order_single(ids["sell"], "WBTC/USDC", SELL, Decimal("0.01"), tif=IOC))
    run(c1, "nofill", new_order_single(ids["nofill"], "WETH/USDC", BUY, Decimal("1"), limit=Decimal("2000"), tif=FOK))
    run(c1, "reject", new_order_single(ids["reject"], "DOGE/USDC", BUY, Decimal("1"), limit=Decimal("1"), tif=IOC))
    # the same ClOrdID again is rejected as a duplicate, and that is part of the first order's trail
    c1.send(new_order_single(ids["buy"], "WETH/USDC", BUY, Decimal("0.5"), limit=Decimal("3100"), tif=IOC))
    out["dup"] = [c1.receive(30, "8")]
    c1.send(order_status_request(ids["buy"], req_id="ST-1"))
    out["status"] = [c1.receive(30, "8")]
    # CLIENT3 approves exactly per order, and reuses CLIENT1's ClOrdID "buy" on its own session
    run(c3, "c3", new_order_single(ids["c3"], "WETH/USDC", BUY, Decimal("0.1"), limit=Decimal("3200"), tif=IOC))
    c3.send(new_order_single(ids["buy"], "WETH/USDC", SELL, Decimal("0.1"), limit=Decimal("2000"), tif=IOC))
    out["c3dup"] = c3.reports_until_terminal(ids["buy"])
    return ids, out


def trade_of(reports):
    (t,) = [r for r in reports if r[150] == "F"]
    return t


def test_trail_json_has_every_step_in_time_order(traded, bridge, journal):
    ids, out = traded
    trade = trade_of(out["buy"])
    p = cli("journal", "trail", ids["buy"], "--session", S1, "--journal", bridge.journal_url, "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["order"]["order_id"] == trade[37] and doc["order"]["status"] == "Filled"
    assert doc["order"]["cum_qty"] == "0.5"  # exact decimals as text
    entries = doc["trail"]
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries)
    kinds = [(e["source"], e["what"].split(" 11=")[0]) for e in entries]
    # FIX in first, the decisions, the transaction's life, the receipt, the fill, every FIX out
    assert kinds[0] == ("fix in", "35=D NewOrderSingle")
    assert ("event", "- -> PendingNew") in kinds and ("event", "quote") in kinds
    assert ("event", "PendingNew -> New") in kinds and ("event", "New -> Filled") in kinds
    swap = trade[20001]
    tx_steps = [e["data"]["detail"]["status"] for e in entries
                if e["source"] == "tx" and e["data"]["detail"]["tx_hash"] == swap]
    assert tx_steps == ["signed", "broadcast", "mined"]
    (rc,) = [e for e in entries if e["source"] == "receipt" and e["data"]["tx_hash"] == swap]
    assert rc["data"]["status"] == 1 and rc["data"]["block_number"] == int(trade[20002])
    assert Decimal(rc["data"]["fee_wei"]) / 10**18 == Decimal(trade[137])
    (fill,) = [e for e in entries if e["source"] == "fill"]
    assert fill["data"]["exec_id"] == trade[17] and fill["data"]["last_qty"] == trade[32]
    assert fill["data"]["last_px"] == trade[31]
    fix_out = [e["data"] for e in entries if e["source"] == "fix out"]
    assert [(m["exec_type"], m["ord_status"]) for m in fix_out] == [("0", "0"), ("F", "2"), ("8", "8"), ("I", "2")]
    assert "103=6" in fix_out[2]["raw"]  # the duplicate's reject ...
    fix_in = [e["data"]["msg_type"] for e in entries if e["source"] == "fix in"]
    assert fix_in == ["D", "D", "H"]      # ... after the duplicate NewOrderSingle itself, and the status request
    # step order: received -> accepted -> signed -> broadcast -> mined -> receipt -> fill -> Filled -> report
    def at(pred):
        return next(i for i, e in enumerate(entries) if pred(e))
    swap_step = lambda st: lambda e: e["source"] == "tx" and e["data"]["detail"] == {**e["data"]["detail"], "tx_hash": swap, "status": st}
    steps = [at(lambda e: e["source"] == "fix in"),
             at(swap_step("signed")), at(swap_step("broadcast")), at(swap_step("mined")),
             at(lambda e: e["source"] == "receipt" and e["data"]["tx_hash"] == swap), at(lambda e: e["source"] == "fill"),
             at(lambda e: e["what"] == "New -> Filled"), at(lambda e: e["source"] == "fix out" and e["data"]["exec_type"] == "F")]
    assert steps == sorted(steps), steps
    # The New: after the order came in and before it filled; after its swap was signed only when the
    # order waited for its approval (pipelined: the swap goes out right behind the approval, the New
    # once the approval is mined), and then the trail says so first.
    new = at(lambda e: e["what"] == "PendingNew -> New")
    assert steps[0] < new < steps[-2], (new, steps)
    if new > steps[1]:
        assert "its approval" in entries[new]["detail"], entries[new]  # "accepted: ...; its approval 0x.. was mined"

    # by OrderID: the same trail
    by_id = json.loads(cli("journal", "trail", trade[37], "--journal", bridge.journal_url, "-f", "json").stdout)
    assert by_id == doc


def test_trail_table_and_csv(traded, bridge):
    ids, out = traded
    trade = trade_of(out["sell"])
    table = cli("journal", "trail", ids["sell"], "--journal", bridge.journal_url).stdout
    for needle in (f"Audit trail of {trade[37]}", "35=D NewOrderSingle", "150=F Trade", "tx signed", "tx mined",
                   "receipt block", "fill 0.01 @ " + trade[31], "New -> Filled"):
        assert needle in table, needle
    p = cli("journal", "trail", ids["sell"], "--journal", bridge.journal_url, "--format", "csv")
    rows = rows_of(p.stdout)
    assert list(rows[0]) == ["order_id", "session_id", "cl_ord_id", "ts", "source", "what", "detail"]
    assert {r["order_id"] for r in rows} == {trade[37]} and {r["cl_ord_id"] for r in rows} == {ids["sell"]}
    assert rows[0]["source"] == "fix in" and rows[-1]["source"] == "fix out"
    assert any(r["source"] == "fill" and r["detail"].startswith(trade[17]) for r in rows)
    json_doc = json.loads(cli("journal", "trail", ids["sell"], "--journal", bridge.journal_url, "-f", "json").stdout)
    assert len(rows) == len(json_doc["trail"])


def test_trail_shows_exact_approvals_and_ambiguous_clordid(traded, bridge):
    ids, out = traded
    doc = json.loads(cli("journal", "trail", ids["c3"], "--journal", bridge.journal_url, "-f", "json").stdout)
    (appr,) = [e for e in doc["trail"] if e["source"] == "approval"]
    assert appr["data"]["policy"] == "exact"
    approve_steps = [e["data"]["detail"]["status"] for e in doc["trail"] if e["source"] == "tx"
                     and e["data"]["detail"]["tx_hash"] == appr["data"]["tx_hash"]]
    assert approve_steps == ["signed", "broadcast", "mined"] or approve_steps == ["signed", "mined"]
    # ids["buy"] is a ClOrdID on CLIENT1 and on CLIENT3: the session must be named
    p = cli("journal", "trail", ids["buy"], "--journal", bridge.journal_url, ok=False)
    assert p.returncode == 2 and "pass --session" in p.stdout and S3 in p.stdout
    doc3 = json.loads(cli("journal", "trail", ids["buy"], "--session", S3, "--journal", bridge.journal_url,
                          "-f", "json").stdout)
    assert doc3["order"]["session_id"] == S3 and doc3["order"]["side"] == "SELL"
    p = cli("journal", "trail", "NO-SUCH-ORDER", "--journal", bridge.journal_url, ok=False)
    assert p.returncode == 2 and "no order 'NO-SUCH-ORDER'" in p.stdout


def test_orders_filters_and_formats(traded, bridge):
    ids, out = traded
    url = bridge.journal_url
    mine = set(ids.values())

    def cl_ids(*args):
        return [r["cl_ord_id"] for r in rows_of(cli("journal", "orders", "--journal", url, "-f", "csv", *args).stdout)
                if r["cl_ord_id"] in mine]

    assert cl_ids("--session", "CLIENT1") == [ids[k] for k in ("buy", "sell", "nofill", "reject")]
    assert cl_ids("--session", S3) == [ids["c3"], ids["buy"]]
    assert cl_ids("--session", "CLIENT1", "--symbol", "WETH/USDC", "--side", "buy") == [ids["buy"], ids["nofill"]]
    assert cl_ids("--side", "sell", "--session", "CLIENT1") == [ids["sell"]]
    assert cl_ids("--status", "canceled") == [ids["nofill"]]
    assert cl_ids("--status", "rejected", "--session", "CLIENT1") == [ids["reject"]]
    assert cl_ids("--status", "open") == []
    today = datetime.now(timezone.utc).date()
    assert cl_ids("--since", str(today), "--until", str(today), "--session", "CLIENT1") == [
        ids[k] for k in ("buy", "sell", "nofill", "reject")]
    assert cl_ids("--since", str(today + timedelta(days=1))) == []
    assert cl_ids("--until", str(today - timedelta(days=1))) == []
    assert cl_ids("--until", (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()) == []

    rows = {r["cl_ord_id"]: r for r in rows_of(cli("journal", "orders", "--journal", url, "-f", "csv",
                                                   "--session", "CLIENT1").stdout)}
    buy, trade = rows[ids["buy"]], trade_of(out["buy"])
    assert (buy["order_id"], buy["status"], buy["order_qty"], buy["price"], buy["cum_qty"], buy["avg_px"]) == (
        trade[37], "Filled", "0.5", "3100", "0.5", trade[6])
    assert rows[ids["reject"]]["rej_reason"] == "1" and "DOGE/USDC" in rows[ids["reject"]]["text"]
    assert datetime.fromisoformat(buy["created_at"]).tzinfo is not None

    doc = json.loads(cli("journal", "orders", "--journal", url, "-f", "json", "--session", "CLIENT1",
                         "--status", "filled").stdout)
    assert [o["cl_ord_id"] for o in doc if o["cl_ord_id"] in mine] == [ids["buy"], ids["sell"]]
    assert all(isinstance(o["cum_qty"], str) for o in doc)  # decimals as exact strings in JSON
    table = cli("journal", "orders", "--journal", url, "--session", "CLIENT1").stdout
    assert ids["nofill"] in table and "Canceled" in table

    bad = cli("journal", "orders", "--journal", url, "--since", "yesterday", ok=False)
    assert bad.returncode == 2 and "not an ISO date" in bad.stdout
    bad = cli("journal", "orders", "--journal", url, "--status", "Done", ok=False)
    assert bad.returncode == 2 and "unknown status" in bad.stdout


def test_fills_export_is_exact_and_sums_per_day(traded, bridge, tmp_path):
    ids, out = traded
    url = bridge.journal_url
    export = tmp_path / "fills.csv"
    cli("journal", "fills", "--journal", url, "-f", "csv", "--since", str(datetime.now(timezone.utc).date()),
        "-o", str(export))
    rows = {r["cl_ord_id"] + "@" + r["session_id"]: r for r in rows_of(export.read_text())}
    for key, sid in (("buy", S1), ("sell", S1), ("c3", S3)):
        r, t = rows[ids[key] + "@" + sid], trade_of(out[key])
        assert (r["exec_id"], r["last_qty"], r["last_px"], r["fee_eth"], r["tx_hash"], r["block_number"]) == (
            t[17], t[32], t[31], t[137], t[20001], t[20002])
        assert Decimal(r["notional"]) == Decimal(t[32]) * Decimal(t[31])  # exactly, no float on the way
        assert "E" not in r["notional"] and r["order_status"] == "Filled"
    assert ids["nofill"] + "@" + S1 not in rows  # a canceled order has no fill

    only = rows_of(cli("journal", "fills", "--journal", url, "-f", "csv", "--session", "CLIENT1", "--side", "sell",
                       "--symbol", "WBTC/USDC").stdout)
    assert ids["sell"] in [r["cl_ord_id"] for r in only] and {r["side"] for r in only} == {"SELL"}

    daily = json.loads(cli("journal", "fills", "--journal", url, "--daily", "-f", "json").stdout)
    weth_buys_1 = [d for d in daily if d["session_id"] == S1 and d["symbol"] == "WETH/USDC" and d["side"] == "BUY"]
    all_fills = rows_of(cli("journal", "fills", "--journal", url, "-f", "csv").stdout)
    mine = [r for r in all_fills if r["session_id"] == S1 and r["symbol"] == "WETH/USDC" and r["side"] == "BUY"]
    assert sum(d["fills"] for d in weth_buys_1) == len(mine)
    assert sum(Decimal(d["qty"]) for d in weth_buys_1) == sum(Decimal(r["last_qty"]) for r in mine)
    assert sum(Decimal(d["fees_eth"]) for d in weth_buys_1) == sum(Decimal(r["fee_eth"]) for r in mine)
    table = cli("journal", "fills", "--journal", url, "--session", "CLIENT3").stdout
    assert trade_of(out["c3"])[31] in table


def test_views_answer_the_common_questions(traded, journal):
    ids, out = traded
    trade = trade_of(out["buy"])
    with journal._engine.connect() as c:
        trail = c.execute(text("SELECT source, what FROM v_order_trail WHERE order_id = :o "
                               "ORDER BY ts, source_rank, ref_id"), {"o": trade[37]}).all()
        assert trail[0] == ("fix in", "D") and ("fill", f"0.5 @ {trade[31]}") in trail
        assert ("event transition", "New -> Filled") in trail and ("receipt", f"success in block {trade[20002]}") in trail
        daily = c.execute(text("SELECT fills, orders FROM v_fills_daily WHERE session_id = :s AND symbol = 'WBTC/USDC'"
                               " AND side = 'SELL'"), {"s": S1}).all()
        assert sum(r.fills for r in daily) >= 1
        assert c.execute(text("SELECT count(*) FROM v_open_orders")).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM v_pending_transactions")).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM v_fill_breaks")).scalar() == 0


def test_missing_journal_file_is_an_error(tmp_path):
    p = cli("journal", "orders", "--journal", f"sqlite:///{tmp_path}/nope.db", ok=False)
    assert p.returncode == 2 and "no journal" in p.stdout and not (tmp_path / "nope.db").exists()


def test_session_export_for_replay(traded, bridge, journal, tmp_path):
    """`fixbridge replay --journal URL --export` writes the session's recorded application messages."""
    out = tmp_path / "client1.json"
    p = cli("replay", "--session", S1, "--journal", bridge.journal_url, "--export", str(out))
    assert str(out) in p.stdout.replace("\n", "")
    doc = json.loads(out.read_text())
    app = [m for m in journal.fix_messages(session_id=S1) if m.msg_type not in ("0", "1", "2", "3", "4", "5", "A")]
    assert doc["session"] == S1 and [m["raw"] for m in doc["messages"]] == [m.raw for m in app]
    assert [m["direction"] for m in doc["messages"]] == [m.direction for m in app]
