"""More venues and asset classes through FIX: Uniswap V3 with IOC partial fills, best-execution
routing with its evidence in the journal, listed options, reference data and positions."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
import quickfix as fix

from support import ADDR
from fixbridge.config import load_spec
from fixbridge.fix.client import new_order_single
from fixbridge.orders.model import OrdStatus
from helpers import balance

pytestmark = pytest.mark.e2e
S1 = "FIX.4.4:FIXBRIDGE->CLIENT1"
CALL = "ETH-20261231-3000-C"


def _msg(msg_type: str, fields: list[tuple[int, str]]) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(msg_type))
    for tag, value in fields:
        m.setField(fix.StringField(tag, value))
    return m


def test_v3_ioc_fills_what_the_limit_allows_then_cancels_the_rest(client, journal, devnet, cl_ord_id):
    weth0 = balance(devnet.rpc_url, devnet.deployment.weth, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("50"), limit=Decimal("2985"), tif="3",
                                 ex_destination="uniswap_v3"))
    reports = client.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("F", "1"), ("4", "4")]
    trade, cancel = reports[1], reports[2]
    filled = Decimal(trade[14])
    assert Decimal(0) < filled < Decimal(50) and Decimal(trade[151]) == Decimal(50) - filled
    assert Decimal(trade[31]) >= Decimal("2985") and Decimal(trade[6]) >= Decimal("2985")
    assert cancel[151] == "0" and Decimal(cancel[14]) == filled and "IOC" in cancel[58]
    assert weth0 - balance(devnet.rpc_url, devnet.deployment.weth, ADDR[1]) == int(filled * 10**18)
    row = journal.find_order(S1, cl_ord_id)
    assert row.status is OrdStatus.CANCELED and row.cum_qty == filled


def test_v3_fok_is_all_or_nothing(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("50"), limit=Decimal("2985"), tif="4",
                                 ex_destination="uniswap_v3"))
    last = client.reports_until_terminal(cl_ord_id)[-1]
    assert (last[150], last[39], last[14]) == ("4", "4", "0")


def test_router_picks_the_better_venue_and_journals_why(client, journal, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.2"), tif="3"))
    trade = client.reports_until_terminal(cl_ord_id)[-1]
    assert trade[39] == "2"
    row = journal.find_order(S1, cl_ord_id)
    (decision,) = [e for e in journal.events(row.order_id) if e.reason.startswith("routed to")]
    considered = {c["venue"]: int(c["net"]) for c in decision.detail["considered"]}
    assert set(considered) == {"uniswap_v2", "uniswap_v3"}
    best = min(considered, key=considered.get)  # a buy pays the least USDC net of gas
    assert decision.detail["chosen"] == best == trade[20004] == row.venue


def test_security_list_matches_the_spec(client, devnet):
    spec = load_spec(devnet.spec_path)
    client.send(_msg("x", [(320, "SL-1"), (559, "4")]))
    r = client.receive(15, "y")
    assert (r[320], r[560], int(r[393])) == ("SL-1", "0", len(spec.instruments))
    raw = r.raw.split("\x01")
    symbols = [f[3:] for f in raw if f.startswith("55=")]
    assert sorted(symbols) == sorted(spec.instruments)
    client.send(_msg("x", [(320, "SL-2"), (559, "1"), (167, "OPT")]))
    r = client.receive(15, "y")
    opts = {s for s, i in spec.instruments.items() if i.security_type == "OPT"}
    assert int(r[393]) == len(opts) and {f[3:] for f in r.raw.split("\x01") if f.startswith("55=")} == opts


def test_security_definition_of_an_option(client):
    client.send(_msg("c", [(320, "SD-1"), (321, "3"), (55, CALL)]))
    r = client.receive(15, "d")
    assert (r[323], r[55], r[167], r[541], r[202], r[201], r[231], r[311]) == (
        "1", CALL, "OPT", "20261231", "3000", "1", "1", "WETH")
    client.send(_msg("c", [(320, "SD-2"), (321, "3"), (55, "NOPE")]))
    r = client.receive(15, "d")
    assert r[323] == "6" and "Unknown symbol" in r[58]


def test_buy_and_sell_an_option_series(client, devnet, cl_ord_id):
    spec = load_spec(devnet.spec_path)
    token = spec.tokens[CALL].address
    held = balance(devnet.rpc_url, token, ADDR[1])
    buy = [(167, "OPT"), (541, "20261231"), (202, "3000"), (201, "1")]
    m = new_order_single(cl_ord_id + "-b", CALL, "1", Decimal("2"), limit=Decimal("200"), tif="4")
    for tag, v in buy:
        m.setField(fix.StringField(tag, v))
    client.send(m)
    trade = client.reports_until_terminal(cl_ord_id + "-b")[-1]
    assert trade[39] == "2" and Decimal(trade[31]) <= 200
    assert balance(devnet.rpc_url, token, ADDR[1]) - held == 2 * 10**18
    client.send(new_order_single(cl_ord_id + "-s", CALL, "2", Decimal("1"), tif="3"))
    assert client.reports_until_terminal(cl_ord_id + "-s")[-1][39] == "2"
    assert balance(devnet.rpc_url, token, ADDR[1]) - held == 1 * 10**18


@pytest.mark.parametrize("tag, value, words", [
    (202, "3100", "StrikePrice 3100 does not match the strike 3000"),
    (201, "0", "PutOrCall says put but the series is a call"),
    (541, "20270326", "MaturityDate 20270326 does not match the expiry 20261231"),
    (167, "FUT", "SecurityType FUT does not match"),
])
def test_option_fields_that_disagree_are_rejected(client, cl_ord_id, tag, value, words):
    m = new_order_single(cl_ord_id, CALL, "1", Decimal("1"), limit=Decimal("200"), tif="4")
    m.setField(fix.StringField(tag, value))
    client.send(m)
    (r,) = client.reports_until_terminal(cl_ord_id)
    assert r[39] == "8" and words in r[58]


def test_positions_are_the_wallets_on_chain_balances(client, devnet):
    spec = load_spec(devnet.spec_path)
    client.send(_msg("AN", [(710, "P-1"), (724, "0"), (1, "w1"), (581, "1"), (715, time.strftime("%Y%m%d")),
                            (60, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()))]))
    ack = client.receive(15, "AO")
    n = int(ack[727])
    assert ack[728] == "0" and n > 0
    reports = [client.receive(15, "AP") for _ in range(n)]
    for r in reports:
        tok = spec.tokens[r[55]]
        assert Decimal(r[704]) * 10**tok.decimals == balance(devnet.rpc_url, tok.address, ADDR[1])
    assert {"WETH", "USDC", "WBTC", CALL} <= {r[55] for r in reports}
    client.send(_msg("AN", [(710, "P-2"), (724, "0"), (1, "nobody"), (581, "1"), (715, time.strftime("%Y%m%d")),
                            (60, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()))]))
    ack = client.receive(15, "AO")
    assert ack[728] == "99" and "not bound" in ack[58]


def test_sell_to_open_writes_and_sells_in_one_transaction(client_factory, journal, devnet, cl_ord_id):
    """A writing session sells more of a series than it holds: the market mints the whole quantity
    against collateral and sells it through the V2 router in the same transaction."""
    from web3 import Web3

    from fixbridge.venues.options_market import OptionsMarketClient

    spec = load_spec(devnet.spec_path)
    series = spec.instruments["ETH-20261231-3500-C"]
    token = spec.tokens["ETH-20261231-3500-C"].address
    market = OptionsMarketClient(Web3(Web3.HTTPProvider(devnet.rpc_url)), spec.options_markets["options"].address)
    rpc, dep = devnet.rpc_url, devnet.deployment
    held, weth, usdc = (balance(rpc, token, ADDR[3]), balance(rpc, dep.weth, ADDR[3]), balance(rpc, dep.usdc, ADDR[3]))
    written = market.written(series.series_id, ADDR[3])
    c = client_factory("CLIENT3")
    c.send(new_order_single(cl_ord_id, "ETH-20261231-3500-C", "2", Decimal("15"), limit=Decimal("1"), tif="4"))
    trade = c.reports_until_terminal(cl_ord_id)[-1]
    assert trade[39] == "2" and Decimal(trade[14]) == 15
    assert balance(rpc, token, ADDR[3]) == held                       # minted and sold, not taken from the wallet
    assert weth - balance(rpc, dep.weth, ADDR[3]) == 15 * 10**18      # a call is collateralized in the underlying
    proceeds = balance(rpc, dep.usdc, ADDR[3]) - usdc
    assert proceeds == int(Decimal(trade[32]) * Decimal(trade[31]) * 10**6) and proceeds >= 15 * 10**6
    assert market.written(series.series_id, ADDR[3]) - written == 15 * 10**18
    row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", cl_ord_id)
    assert any("sell-to-open" in e.reason for e in journal.events(row.order_id))
    (tx,) = [t for t in journal.transactions_for(row.order_id) if t.purpose == "swap"]
    assert Web3(Web3.HTTPProvider(rpc)).eth.get_transaction(tx.tx_hash)["to"] == market.address


def test_a_session_not_allowed_to_write_cannot_sell_what_it_lacks(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "ETH-20261231-3500-C", "2", Decimal("500"), tif="4"))
    (r,) = client.reports_until_terminal(cl_ord_id)
    assert r[39] == "8" and "Insufficient balance" in r[58]
