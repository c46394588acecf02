"""The bridge's HTTP port, end to end: /metrics agrees with the journal after real trades, /healthz,
/readyz turning 503 naming the chain when its anvil stops, the status page in a real browser
(chromium driven by Playwright) while a real client trades, and the token rule beyond loopback."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from support import FIXBRIDGE, BridgeProcess, free_port
from fixbridge.fix.client import FixClient, new_order_single

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
BUY, IOC = "1", "3"


def get(url: str, timeout: float = 10.0, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def web_bridge(devnet, sessions_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("status")
    port, web = free_port(), free_port()
    url = f"sqlite:///{d / 'journal.db'}"
    b = BridgeProcess(FIXBRIDGE + ["run", "--no-devnet", "--spec", str(devnet.spec_path), "--sessions",
                                   str(sessions_dir / "counterparties.toml"), "--journal", url, "--state-dir",
                                   str(d / "var"), "--port", str(port), "--metrics-port", str(web)], port, url, d)
    b.start()
    b.web = f"http://127.0.0.1:{web}"
    yield b
    b.stop()


@pytest.fixture(scope="module")
def trader(web_bridge, tmp_path_factory):
    c = FixClient("127.0.0.1", web_bridge.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path_factory.mktemp("trader")).start()
    yield c
    c.stop()


def trade(client: FixClient, cl: str, limit: str = "3200", qty: str = "0.1") -> list:
    client.send(new_order_single(cl, "WETH/USDC", BUY, Decimal(qty), limit=Decimal(limit), tif=IOC,
                                 ex_destination="uniswap_v2"))
    return client.reports_until_terminal(cl)


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families
    status, text = get(base + "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_banner_names_the_port(web_bridge):
    from helpers import eventually
    assert f"metrics: {web_bridge.web}/metrics" in eventually(web_bridge.log, lambda t: "metrics:" in t)


def test_metrics_match_the_journal_after_trades(web_bridge, trader):
    from fixbridge.journal import Journal
    outcomes = [trade(trader, "M-FILL-1"), trade(trader, "M-FILL-2"),
                trade(trader, "M-CANCEL", limit="1"),        # a bound that cannot be met: Canceled
                trade(trader, "M-REJECT", qty="-1")]          # a bad quantity: Rejected
    assert [r[-1][39] for r in outcomes] == ["2", "2", "4", "8"]
    with Journal(web_bridge.journal_url) as j, j.read_session() as s:
        from sqlalchemy import func, select
        from fixbridge.journal import schema as db
        by_status = dict(s.execute(select(db.Order.status, func.count()).group_by(db.Order.status)).all())
        fills = s.scalar(select(func.count()).select_from(db.Fill).where(db.Fill.busted_at.is_(None)))
    time.sleep(1.1)  # the scrape's journal snapshot is at most a second old
    m = scrape(web_bridge.web)
    exported = {dict(k[1])["status"]: v for k, v in m.items() if k[0] == "fixbridge_orders"}
    assert exported == {k: float(v) for k, v in by_status.items()}
    assert exported["Filled"] == 2 and exported["Canceled"] == 1 and exported["Rejected"] == 1
    assert m[("fixbridge_fills", ())] == fills == 2
    # What the hot path counted.
    assert m[("fixbridge_ack_latency_seconds_count", ())] == 4
    assert m[("fixbridge_fill_latency_seconds_count", ())] == 2
    assert m[("fixbridge_fix_messages_total", (("direction", "in"), ("msg_type", "D")))] == 4
    assert m[("fixbridge_fix_messages_total", (("direction", "out"), ("msg_type", "8")))] >= 7
    assert m[("fixbridge_session_logged_on", (("session", "CLIENT1"),))] == 1
    assert m[("fixbridge_journal_commit_seconds_count", ())] > 0   # the journal's commit is still timed
    assert m[("fixbridge_rpc_requests_total", (("chain", "devnet"), ("method", "eth_blockNumber")))] > 0
    assert m[("fixbridge_rpc_requests_total", (("chain", "devnet"), ("method", "eth_sendRawTransaction")))] >= 2
    assert m[("fixbridge_gas_spent_eth_total", (("chain", "devnet"),))] > 0
    head = m[("fixbridge_chain_head", (("chain", "devnet"),))]
    assert head > 0 and m[("fixbridge_watcher_lag_blocks", (("chain", "devnet"),))] >= 0
    assert m[("fixbridge_tx_in_flight", (("chain", "devnet"),))] == 0
    assert m[("fixbridge_halts_in_force", ())] == 0


def test_halts_and_reconcile_breaks_come_from_the_journal(web_bridge):
    from datetime import datetime, timezone
    from fixbridge.journal import Journal
    with Journal(web_bridge.journal_url) as j:
        j.halt("CLIENT5", "desk review", "alice")
        j.record_reconciliation_run(started_at=datetime.now(timezone.utc), chain_id=31337, from_block=1, to_block=9,
                                    status="breaks", breaks=2, results={"breaks": [
                                        {"kind": "fill_not_on_chain", "detail": "journal fill X has no Swap log"},
                                        {"kind": "unknown_tx", "detail": "a transfer the journal does not know"}]})
        try:
            time.sleep(1.1)
            m = scrape(web_bridge.web)
            assert m[("fixbridge_halts_in_force", ())] == 1
            assert m[("fixbridge_halts_active", (("scope", "CLIENT5"),))] == 1
            assert m[("fixbridge_reconcile_breaks", (("chain_id", "31337"), ("status", "breaks")))] == 2
            doc = json.loads(get(web_bridge.web + "/api/status")[1])
            assert doc["halts"][0]["reason"] == "desk review" and doc["reconcile"][0]["breaks"] == 2
            assert doc["reconcile"][0]["break_list"][0]["kind"] == "fill_not_on_chain"
        finally:
            j.resume("CLIENT5", "alice")


def test_healthz_and_readyz(web_bridge):
    status, body = get(web_bridge.web + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "alive"
    status, body = get(web_bridge.web + "/readyz")
    doc = json.loads(body)
    assert status == 200, doc
    assert doc["checks"]["chain:devnet"]["ok"] and doc["checks"]["acceptor"]["ok"]
    assert doc["checks"]["journal"]["ok"] and doc["checks"]["leases"]["ok"]


def test_status_page_in_a_real_browser(web_bridge, trader, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing and could not be installed here (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # A client's text is shown as text, in the page's first paint and in its updates.
            hostile = "M-</script><b>x</b>"
            assert trade(trader, hostile, qty="-1")[-1][39] == "8"
            page.goto(web_bridge.web + "/")
            assert hostile in page.locator("#recent").inner_text() and page.locator("#recent b").count() == 0
            # The page is live: the order traded after it loaded shows up by polling.
            reports = trade(trader, "M-LIVE")
            fill = [r for r in reports if r[150] == "F"][0]
            tx_hash, order_id = fill[20001], fill[37]
            row = page.locator("#recent tr", has_text="M-LIVE")
            row.wait_for(timeout=15_000)
            page.locator(f"#recent tr:has-text('M-LIVE') .tx-hash[data-tx='{tx_hash}']").wait_for(timeout=15_000)
            assert "Filled" in row.inner_text()
            shot = tmp_path / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nstatus page screenshot: {shot}")
            row.locator("a.order-link").click()
            page.wait_for_url(f"**/orders/{order_id}")
            assert page.locator("#order-id").inner_text() == order_id
            trail = page.locator("#trail").inner_text()
            assert tx_hash in trail and "NewOrderSingle" in trail and "fill" in trail
            shot = tmp_path / "order-trail.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"order trail screenshot: {shot}")
        finally:
            browser.close()


# ---- beyond loopback: a token, or no start ---------------------------------------------------------
def test_token_required_beyond_loopback():
    from fixbridge.web.server import ExposureError, check_exposure, is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "s3cret")
    with pytest.raises(ExposureError, match="FIXBRIDGE_STATUS_TOKEN"):
        check_exposure("0.0.0.0", None)


def test_run_refuses_a_public_port_without_a_token(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "FIXBRIDGE_STATUS_TOKEN"}
    r = subprocess.run(FIXBRIDGE + ["run", "--no-devnet", "--spec", str(tmp_path / "none.toml"), "--metrics-host",
                                    "0.0.0.0"], capture_output=True, text=True, timeout=60, env=env,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 2 and "FIXBRIDGE_STATUS_TOKEN" in r.stdout, r.stdout + r.stderr


def test_token_gate():
    """With a token every path but /healthz needs it (header, ?token= which sets a cookie), and the
    token is compared, never echoed."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from fixbridge.web.server import StatusServer, _TokenGate
    from starlette.middleware import Middleware
    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("page")), Route("/healthz", lambda r: PlainTextResponse("ok"))],
                    middleware=[Middleware(_TokenGate, token="s3cret")])
    server = StatusServer(app, "127.0.0.1", 0)
    server.start()
    try:
        base = server.url
        for _ in range(50):
            try:
                get(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        assert get(base + "/healthz") == (200, "ok")
        status, body = get(base + "/")
        assert status == 401 and "s3cret" not in body
        assert get(base + "/", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert get(base + "/", headers={"Authorization": "Bearer s3cret"}) == (200, "page")
        with urllib.request.urlopen(base + "/?token=s3cret", timeout=5) as r:
            assert r.status == 200 and "fixbridge_token=s3cret" in r.headers.get("set-cookie", "")
        assert get(base + "/", headers={"Cookie": "fixbridge_token=s3cret"}) == (200, "page")
    finally:
        server.stop()


def test_in_flight_transactions_with_age_and_fee(web_bridge, trader, devnet):
    """Mining paused: the swap waits in the mempool, and the page and /metrics show it in flight."""
    from helpers import eventually
    devnet.rpc("evm_setAutomine", [False])
    try:
        trader.send(new_order_single("M-WAIT", "WETH/USDC", BUY, Decimal("0.1"), limit=Decimal("3200"), tif=IOC,
                                     ex_destination="uniswap_v2"))
        new = trader.receive(30, "8")
        assert new[150] == "0" and new[11] == "M-WAIT"
        doc = eventually(lambda: json.loads(get(web_bridge.web + "/api/status")[1]), lambda d: d["in_flight"], 10)
        f = doc["in_flight"][0]
        assert f["order_id"] == new[37] and f["chain"] == "devnet" and f["attempts"] == 1 and f["age_s"] >= 0
        assert Decimal(f["max_fee_gwei"]) > 0 and Decimal(f["max_fee_eth"]) > 0 and f["tx_hash"].startswith("0x")
        assert [o for o in doc["orders"]["working"] if o["order_id"] == new[37]][0]["tx_hash"] == f["tx_hash"]
        m = scrape(web_bridge.web)
        assert m[("fixbridge_tx_in_flight", (("chain", "devnet"),))] == 1
        assert m[("fixbridge_tx_in_flight_age_seconds_gcount", ())] == 1
    finally:
        devnet.rpc("evm_setAutomine", [True])
        devnet.rpc("evm_mine")
    assert trader.reports_until_terminal("M-WAIT")[-1][39] == "2"


def test_dashboard_uses_only_exported_metrics(web_bridge):
    """docs/grafana-dashboard.json queries nothing the bridge does not export."""
    import re
    from prometheus_client.parser import text_string_to_metric_families
    doc = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    used = {n for p in doc["panels"] for t in p["targets"] for n in re.findall(r"fixbridge_[a-z_]+", t["expr"])}
    used |= set(re.findall(r"fixbridge_[a-z_]+", json.dumps(doc["templating"])))
    families = {f.name for f in text_string_to_metric_families(get(web_bridge.web + "/metrics")[1])}
    base = {re.sub(r"_(total|bucket|count|sum|gcount|gsum)$", "", n) for n in used}
    assert used and base <= families | {f + "_total" for f in families}, sorted(base - families)


def test_readyz_names_the_chain_when_its_node_stops(web_bridge, devnet):
    """Last in the module: it stops the module's anvil."""
    devnet.anvil.stop()
    deadline = time.monotonic() + 20
    while True:
        status, body = get(web_bridge.web + "/readyz")
        if status == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    doc = json.loads(body)
    assert status == 503, doc
    assert any(p.startswith("chain:devnet: ") and "devnet" in p[len("chain:devnet: "):] for p in doc["problems"]), doc
    assert not doc["checks"]["chain:devnet"]["ok"] and doc["checks"]["acceptor"]["ok"]
    assert get(web_bridge.web + "/healthz")[0] == 200  # alive all the same
