"""Market data on FIX, end to end: a real QuickFIX initiator subscribes (MarketDataRequest) to the
real bridge on a real anvil devnet; it gets a snapshot (W) whose levels are the chain's own quotes
with the named rounding, then an incremental refresh (X) after an outside account's swap (an
anvil account that is none of the bridge's wallets), whose trade entry carries that swap's
transaction hash; an unsubscribe stops the updates; bad requests get a MarketDataRequestReject (Y)
and change nothing. The requests and refusals are journaled; the quotes are not."""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from web3 import Web3

from fixbridge.config.spec import load_spec
from fixbridge.fix.client import market_data_request, md_entries
from fixbridge.venues import build_venue
from fixbridge.venues.base import Exact

from helpers import eventually
from market_support import Outsider

E18, E6 = 10**18, 10**6
PX = Decimal("1e-10")  # PX_PLACES


@pytest.fixture(scope="module")
def chain(devnet, bridge):
    spec = load_spec(devnet.spec_path)
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    venues = {name: build_venue(v, w3) for name, v in spec.venues.items()}
    o = Outsider(w3, devnet.deployment)
    o.fund(100 * E18, 1_000_000 * E6, [venues["uniswap_v2"].router, venues["uniswap_v3"].router])
    return w3, venues, o, devnet.deployment


def _next(client, msg_type: str, md_req_id: str, timeout: float = 15.0):
    while True:
        m = client.receive(timeout, msg_type)
        if m.get(262) == md_req_id:
            return m


def test_snapshot_then_updates_after_an_outside_swap_then_unsubscribe(client, chain, journal):
    w3, venues, outsider, dep = chain
    client.send(market_data_request("MD-1", ["WETH/USDC"], "1", depth=0))
    snap = _next(client, "W", "MD-1")
    assert snap[55] == "WETH/USDC"
    entries = md_entries(snap)
    levels = {(e[269], e[290], e.get(275)): e for e in entries if e[269] in ("0", "1")}
    venues_seen = {e.get(275) for e in entries}
    assert venues_seen == {None, "uniswap_v2", "uniswap_v3/500", "uniswap_v3/3000"}  # None: the best of them
    assert {e[271] for e in entries} == {"0.1", "1", "10"}
    # Each level is the chain quoter's price for its size, bid rounded down, offer up.
    weth, usdc = dep.weth, dep.usdc
    bids, offers = {}, {}
    for key, fee in (("uniswap_v2", None), ("uniswap_v3/500", 500), ("uniswap_v3/3000", 3000)):
        v = venues[key.split("/")[0]]
        sell = v.quote(weth, usdc, Exact.INPUT, E18) if fee is None else v.quote_tier(weth, usdc, Exact.INPUT, E18, fee).amount
        buy = v.quote(usdc, weth, Exact.OUTPUT, E18) if fee is None else v.quote_tier(usdc, weth, Exact.OUTPUT, E18, fee).amount
        bids[key] = (Decimal(sell) / E6).quantize(PX, ROUND_FLOOR)
        offers[key] = (Decimal(buy) / E6).quantize(PX, ROUND_CEILING)
        assert Decimal(levels[("0", "2", key)][270]) == bids[key], key
        assert Decimal(levels[("1", "2", key)][270]) == offers[key], key
    assert Decimal(levels[("0", "2", None)][270]) == max(bids.values())
    assert Decimal(levels[("1", "2", None)][270]) == min(offers.values())

    # A second subscription, to see the first one's updates stop later.
    client.send(market_data_request("MD-2", ["WETH/USDC", "WBTC/USDC"], "1", depth=1, entry_types=("0", "2")))
    assert {_next(client, "W", "MD-2")[55], _next(client, "W", "MD-2")[55]} == {"WETH/USDC", "WBTC/USDC"}

    receipt = outsider.swap(venues["uniswap_v3"], weth, usdc, 2 * E18, 3000)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    inc = _next(client, "X", "MD-1")
    ups = md_entries(inc)
    [trade] = [e for e in ups if e.get(269) == "2"]
    assert (trade[279], trade[20001], trade[20002], trade[275], trade[55]) == (
        "0", tx, str(receipt["blockNumber"]), "uniswap_v3/3000", "WETH/USDC")
    assert trade[289] == outsider.address.lower() and trade[271] == "2"  # the outsider sold 2 WETH
    assert trade[278] == f"{tx}:{receipt['logs'][-1]['logIndex']}" or trade[278].startswith(tx)
    changed = {e[278] for e in ups if e[279] == "1"}
    assert "WETH/USDC:0:1:uniswap_v3/3000" in changed and "WETH/USDC:1:3:uniswap_v3/3000" in changed
    assert not any(e[278].endswith(":uniswap_v2") for e in ups)  # the V2 pair did not move
    inc2 = _next(client, "X", "MD-2")
    assert {e[269] for e in md_entries(inc2)} == {"0", "2"} and all(e.get(290) in (None, "1") for e in md_entries(inc2))

    # Unsubscribe MD-1: the next swap reaches MD-2 only.
    client.send(market_data_request("MD-1", ["WETH/USDC"], "2"))
    client.send(market_data_request("MD-3", ["WETH/USDC"], "0"))  # after the unsubscribe, in order
    _next(client, "W", "MD-3")
    client.drain()
    receipt = outsider.swap(venues["uniswap_v2"], usdc, weth, 5_000 * E6)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    inc2 = _next(client, "X", "MD-2")
    assert any(e.get(20001) == tx for e in md_entries(inc2))
    client.send(market_data_request("MD-4", ["WETH/USDC"], "0"))  # queued behind that block's updates
    _next(client, "W", "MD-4")
    assert not [m for m in client.drain() if m.msg_type == "X" and m.get(262) == "MD-1"]

    # The journal: requests in, and nothing of the quotes out.
    ins = eventually(lambda: journal.fix_messages(direction="in", msg_type="V"), lambda r: len(r) >= 5)
    assert len(ins) >= 5
    assert journal.fix_messages(direction="out", msg_type="W") == []
    assert journal.fix_messages(direction="out", msg_type="X") == []


@pytest.mark.parametrize("request_, reason, words", [
    (dict(md_req_id="BAD-1", symbols=["NOPE/USDC"]), "0", "Unknown symbol NOPE/USDC"),
    (dict(md_req_id="BAD-2", symbols=["WETH/USDC"], entry_types=("0", "5")), "8", "MDEntryType 5"),
    (dict(md_req_id="BAD-3", symbols=["WETH/USDC"], depth=-1), "5", "MarketDepth -1"),
    (dict(md_req_id="BAD-4", symbols=["WETH/USDC"], subscription="2"), None, "No subscription with MDReqID 'BAD-4'"),
], ids=["unknown symbol", "entry type", "depth", "unsubscribe unknown"])
def test_bad_requests_get_a_reject_and_change_nothing(client, journal, request_, reason, words):
    kw = dict(request_)
    client.send(market_data_request(kw.pop("md_req_id"), kw.pop("symbols"), **kw))
    y = _next(client, "Y", request_["md_req_id"])
    assert y.get(281) == reason and words in y[58]
    rows = eventually(lambda: journal.fix_messages(direction="out", msg_type="Y"),
                      lambda r: any(request_["md_req_id"] in x.raw for x in r))
    assert any(request_["md_req_id"] in x.raw for x in rows)


def test_a_duplicate_md_req_id_is_refused_and_the_first_subscription_goes_on(client, chain):
    w3, venues, outsider, dep = chain
    client.send(market_data_request("DUP", ["WETH/USDC"], "1", depth=1))
    _next(client, "W", "DUP")
    client.send(market_data_request("DUP", ["WBTC/USDC"], "1", depth=1))
    y = _next(client, "Y", "DUP")
    assert y[281] == "1"
    receipt = outsider.swap(venues["uniswap_v3"], dep.weth, dep.usdc, E18 // 2, 500)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    ups = md_entries(_next(client, "X", "DUP"))
    assert any(e.get(20001) == tx for e in ups) and {e[55] for e in ups} == {"WETH/USDC"}
    client.send(market_data_request("DUP", ["WETH/USDC"], "2"))


@pytest.fixture(scope="module")
def second_chain_bridge(devnet, sessions_dir, tmp_path_factory):
    """The bridge on devnet and devnet2, with wallets on devnet only: devnet2's pools ride on a
    block watcher of the market's own."""
    from fixbridge.devnet.anvil import Anvil
    from fixbridge.devnet.deploy import deploy_devnet
    from fixbridge.devnet.second_chain import SECOND_CHAIN_ID, write_second_spec
    from support import start_bridge

    d = tmp_path_factory.mktemp("chain2")
    node = Anvil("127.0.0.1", 0, chain_id=SECOND_CHAIN_ID, log_path=d / "anvil.log").start()
    try:
        dep = deploy_devnet(node.rpc_url, fund=[])
        write_second_spec(dep, d / "devnet2.toml")
        b = start_bridge([devnet.spec_path, d / "devnet2.toml"], sessions_dir / "counterparties.toml", d / "bridge")
        try:
            yield b, node, dep, load_spec([devnet.spec_path, d / "devnet2.toml"])
        finally:
            b.stop()
    finally:
        node.stop()


def test_an_instrument_on_a_chain_without_wallets_has_market_data(second_chain_bridge, tmp_path):
    from fixbridge.fix.client import FixClient
    b, node, dep, spec = second_chain_bridge
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    venue = next(build_venue(v, w3) for v in spec.venues.values() if v.chain == "devnet2")
    o = Outsider(w3, dep)
    o.fund(10 * E18, 100_000 * E6, [venue.router])
    with FixClient("127.0.0.1", b.port, "CLIENT2", "FIXBRIDGE", data_dir=tmp_path / "c") as c:
        c.send(market_data_request("MD2-1", ["WETH/USDC:devnet2"], "1", depth=1))
        snap = _next(c, "W", "MD2-1")
        assert {e.get(275) for e in md_entries(snap)} == {None, venue.name} and snap[55] == "WETH/USDC:devnet2"
        receipt = o.swap(venue, dep.weth, dep.usdc, E18 // 4)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        ups = md_entries(_next(c, "X", "MD2-1"))
        assert any(e.get(20001) == tx and e[55] == "WETH/USDC:devnet2" for e in ups)
