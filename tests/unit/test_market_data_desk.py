"""The market data desk (fix/market_data.py) without a chain or an acceptor: a MarketState with one
V2 pair published by hand, the desk's messages captured instead of sent. What a subscriber sees
when a block changes the pair, when a block changes nothing of its own, and after a reorg (the
trades of the blocks that are gone are deleted). The e2e test_market_data.py does the same through
QuickFIX on a real chain; this one reaches the reorg."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import quickfix as fix
import pytest

from fixbridge.config import load_spec
from fixbridge.fix.market_data import MarketDataDesk
from fixbridge.fix.client import Received, market_data_request, md_entries
from fixbridge.market.pools import PoolKey, V2Pool
from fixbridge.market.state import BlockChange, Listing, MarketState, Trade

ROOT = Path(__file__).resolve().parents[2]
E18, E6 = 10**18, 10**6
WETH, USDC = "0x5fbdb2315678afecb367f032d93f642f64180aa3", "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
PAIR = PoolKey("uniswap_v2", "uniswap_v2", "devnet", "0xpair", WETH, USDC)
SESSION = fix.SessionID("FIX.4.4", "FIXBRIDGE", "CLIENT1")


@pytest.fixture
def desk():
    spec = load_spec(ROOT / "specs" / "devnet.toml")
    state = MarketState(spec)
    state.list({"WETH/USDC": Listing("WETH/USDC", "devnet", WETH, USDC, 18, 6, (PAIR,))})
    state.publish("devnet", 10, {PAIR.address: V2Pool(PAIR, 1000 * E18, 3_000_000 * E6)}, None)
    sent: list[Received] = []

    def capture(m: fix.Message, session) -> None:
        raw = m.toString()
        sent.append(Received(m.getHeader().getField(35), {}, raw))
    d = MarketDataDesk(state, spec, send=capture)
    d.start()
    yield d, state, sent
    d.stop()


def wait_for(sent: list, n: int) -> list:
    end = time.monotonic() + 5
    while len(sent) < n and time.monotonic() < end:
        time.sleep(0.005)
    return sent


def swap(state: MarketState, block: int, tx: str, r0: int, r1: int, a0: int, a1: int, reloaded: bool = False) -> None:
    trade = () if reloaded else (Trade("devnet", block, tx, 1, PAIR.address, a0, a1, "0xrouter", "0xtaker"),)
    state.publish("devnet", block, {PAIR.address: V2Pool(PAIR, r0, r1)},
                  BlockChange("devnet", block, frozenset({PAIR.address}), trade, reloaded))


def test_updates_follow_the_pair_and_a_reorg_deletes_its_trades(desk):
    d, state, sent = desk
    d.request(market_data_request("M1", ["WETH/USDC"], "1", depth=2), SESSION)
    [w] = wait_for(sent, 1)
    assert w.msg_type == "W"
    levels = {(e[269], e[290], e.get(275)) for e in md_entries(w)}
    assert levels == {(t, p, v) for t in "01" for p in "12" for v in (None, "uniswap_v2")}

    swap(state, 11, "0xt1", 1001 * E18, 2_997_004 * E6, E18, -2_996 * E6)  # someone sold 1 WETH
    x = wait_for(sent, 2)[1]
    ups = md_entries(x)
    assert x.msg_type == "X" and {e[279] for e in ups if e[269] in "01"} == {"1"}  # every level changed
    [trade] = [e for e in ups if e[269] == "2"]
    assert (trade[279], trade[278], trade[20001], trade[271], trade[270], trade[289]) == (
        "0", "0xt1:1", "0xt1", "1", "2996", "0xtaker")

    # A block of an unsubscribed pool changes nothing here.
    state.publish("devnet", 12, {}, BlockChange("devnet", 12, frozenset({"0xother"}), ()))
    # The chain reorganised below block 11: read again (the state as before the swap), trade deleted.
    swap(state, 10, "", 1000 * E18, 3_000_000 * E6, 0, 0, reloaded=True)
    x = wait_for(sent, 3)[2]
    ups = md_entries(x)
    assert ("2", "2", "0xt1:1") in {(e[279], e[269], e[278]) for e in ups}
    assert {e[279] for e in ups if e[269] in "01"} == {"1"}
    assert len(sent) == 3


def test_a_refused_request_changes_nothing(desk):
    d, state, sent = desk
    d.request(market_data_request("M1", ["WETH/USDC"], "1", depth=1), SESSION)
    d.request(market_data_request("M1", ["WETH/USDC"], "1", depth=1), SESSION)    # duplicate
    d.request(market_data_request("M2", ["WETH/USDC", "NOPE"], "1"), SESSION)      # one unknown: none subscribed
    d.request(market_data_request("M3", ["WETH/USDC"], "2"), SESSION)              # not subscribed
    wait_for(sent, 4)
    assert sorted(m.msg_type for m in sent) == ["W", "Y", "Y", "Y"]
    swap(state, 11, "0xt1", 1001 * E18, 2_997_004 * E6, E18, -2_996 * E6)
    wait_for(sent, 5)
    assert [m.msg_type for m in sent[4:]] == ["X"] and "262=M1\x01" in sent[4].raw
    d.request(market_data_request("M1", ["WETH/USDC"], "2"), SESSION)              # unsubscribed
    swap(state, 12, "0xt2", 1002 * E18, 2_994_013 * E6, E18, -2_991 * E6)
    d.request(market_data_request("M4", ["WETH/USDC"], "0", depth=1), SESSION)     # after that block, in order
    wait_for(sent, 6)
    assert [m.msg_type for m in sent[5:]] == ["W"] and Decimal(md_entries(sent[5])[0][270]) > 0
