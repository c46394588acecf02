"""A slow and failing node: the bridge's RPC goes through a fault-injecting JSON-RPC proxy
(tests/rpc_proxy.py) in front of a real anvil that mines a block every second. The bridge is the
real subprocess, the client a real QuickFIX initiator; the test reads anvil directly.

Each test injects one fault and checks what the client receives, what the journal holds and what
the chain holds. The chaos test at the end sends a few hundred orders through random faults from a
seeded RNG (the seed is printed; FIXBRIDGE_CHAOS_SEED=<seed> runs the same faults again)."""
from __future__ import annotations

import os
import random
import time
from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils import keccak
from web3 import Web3

from support import ADDR, BACKENDS, KEYS, acceptor_cfg, start_bridge, start_devnet
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.orders.model import OrdStatus
from helpers import balance, eventually, tx_count
from rpc_proxy import RpcProxy

pytestmark = pytest.mark.e2e
S1 = "FIX.4.4:FIXBRIDGE->CLIENT1"
TERMINAL = ("2", "4", "8", "C")
RPC_TIMEOUT = "2"  # the bridge's per-request timeout (FIXBRIDGE_RPC_TIMEOUT): a hang is longer
SWAP_TOPICS = {  # Uniswap V2 pair and V3 pool Swap events
    "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex(),
    "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex(),
}


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    """A devnet that mines a block every second, as a real chain does."""
    net = start_devnet(tmp_path_factory.mktemp("hostile"), block_time=1)
    yield net
    net.anvil.stop()


def spec_through(devnet, proxy: RpcProxy, path: Path) -> Path:
    """The devnet's spec with its RPC URL pointing at the proxy."""
    text = devnet.spec_path.read_text()
    line = f'rpc_url = "{devnet.rpc_url}"'
    assert line in text
    path.write_text(text.replace(line, f'rpc_url = "{proxy.url}"'))
    return path


@pytest.fixture(scope="module")
def proxy(devnet):
    with RpcProxy(devnet.rpc_url, seed=1) as p:
        yield p


@pytest.fixture(scope="module")
def bridge(devnet, proxy, sessions_dir, tmp_path_factory):
    """This module's bridge talks to the chain only through the proxy."""
    d = tmp_path_factory.mktemp("bridge")
    b = start_bridge([spec_through(devnet, proxy, d / "devnet.toml")], sessions_dir / "counterparties.toml", d,
                     env={"FIXBRIDGE_RPC_TIMEOUT": RPC_TIMEOUT})
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def healthy_after(request):
    """Each test's faults end with it."""
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


@pytest.fixture(scope="module")
def approved(client):
    """A buy and a sell on each venue first, through a healthy node, so the wallet's approvals are mined."""
    warm(client, "warm")


def warm(client: FixClient, prefix: str) -> None:
    for venue in ("uniswap_v2", "uniswap_v3"):
        for side in ("1", "2"):
            cid = f"{prefix}-{venue}-{side}-{time.time_ns()}"
            client.send(new_order_single(cid, "WETH/USDC", side, Decimal("0.01"), tif="4", ex_destination=venue))
            assert client.reports_until_terminal(cid, timeout=60)[-1][39] == "2"


def w3_of(devnet) -> Web3:
    return Web3(Web3.HTTPProvider(devnet.rpc_url))


def swaps_of(journal, cl_ord_id: str, session: str = S1):
    row = journal.find_order(session, cl_ord_id)
    return row, [t for t in journal.transactions_for(row.order_id) if t.purpose in ("swap", "cancel")]


def check_filled(devnet, journal, cl_ord_id: str, reports) -> str:
    """New then one Trade, nothing else; one swap journaled, mined, on chain with its Swap event;
    the journal's fill is that event. Returns the transaction hash."""
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("F", "2")], [r.raw for r in reports]
    trade = reports[-1]
    row, txs = swaps_of(journal, cl_ord_id)
    assert row.status is OrdStatus.FILLED
    assert [(t.purpose, t.status) for t in txs] == [("swap", "mined")]
    receipt = w3_of(devnet).eth.get_transaction_receipt(txs[0].tx_hash)
    assert receipt["status"] == 1 and receipt["from"] == ADDR[1]
    swaps = [lg for lg in receipt["logs"] if "0x" + lg["topics"][0].hex() in SWAP_TOPICS]
    fills = eventually(lambda: journal.fills_for(row.order_id), lambda f: len(f) == 1)
    assert [(f.tx_hash, f.log_index) for f in fills] == [(txs[0].tx_hash, lg["logIndex"]) for lg in swaps]
    assert trade[20001] == txs[0].tx_hash and trade[17] == f"{txs[0].tx_hash}:{swaps[0]['logIndex']}"
    return txs[0].tx_hash


def check_nothing_sent(journal, cl_ord_id: str) -> None:
    row, txs = swaps_of(journal, cl_ord_id)
    assert txs == [] and journal.fills_for(row.order_id) == []


# ---- receipts the node serves late ---------------------------------------------------------------

def test_receipts_late_by_three_blocks_end_filled_never_canceled(client, journal, devnet, proxy, approved, cl_ord_id):
    """Before the fix the watcher gave up on a block's receipts after 5 x 10 ms and the nonce check
    took our own mined swap for a transaction the bridge did not send: the fill ended Canceled."""
    fault = proxy.late_receipts(3)
    ids = [f"{cl_ord_id}-{i}" for i in range(3)]
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    weth0, usdc0 = (balance(devnet.rpc_url, t, ADDR[1]) for t in (devnet.deployment.weth, devnet.deployment.usdc))
    for i, cid in enumerate(ids):
        client.send(new_order_single(cid, "WETH/USDC", "1" if i % 2 else "2", Decimal("0.01"), tif="3"))
    weth_moved = usdc_moved = 0
    for i, cid in enumerate(ids):
        reports = client.reports_until_terminal(cid, timeout=60)
        tx = check_filled(devnet, journal, cid, reports)
        mined_in = w3_of(devnet).eth.get_transaction_receipt(tx)["blockNumber"]
        assert int(reports[-1][20002]) == mined_in
        (fill,) = journal.fills_for(journal.find_order(S1, cid).order_id)
        sign = 1 if i % 2 else -1  # a buy receives WETH and pays USDC
        weth_moved, usdc_moved = weth_moved + sign * fill.base_units, usdc_moved - sign * fill.quote_units
    assert fault.fired > 0  # receipts really were held back
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce0 + len(ids)  # one transaction per order
    # The wallet's balances moved by exactly what the journal's fills say (gas is paid in ETH).
    assert balance(devnet.rpc_url, devnet.deployment.weth, ADDR[1]) - weth0 == weth_moved
    assert balance(devnet.rpc_url, devnet.deployment.usdc, ADDR[1]) - usdc0 == usdc_moved


def test_block_announced_before_its_receipts_are_served(client, journal, devnet, proxy, approved, cl_ord_id):
    fault = proxy.receipts_delay(1.5)
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    check_filled(devnet, journal, cl_ord_id, client.reports_until_terminal(cl_ord_id, timeout=60))
    assert fault.fired > 0


# ---- a node error where the order is decided: a terminal report naming it, nothing sent ----------

FAULTS = {
    "json-rpc -32000": lambda p, m: p.error(m, message="injected: header not found"),
    "http 429": lambda p, m: p.http_status(429, m),
    "http 503": lambda p, m: p.http_status(503, m),
    "connection reset": lambda p, m: p.reset(m),
    "timeout": lambda p, m: p.hang(float(RPC_TIMEOUT) + 1.0, m),
}
SAYS = {"json-rpc -32000": "header not found", "http 429": "HTTP 429", "http 503": "HTTP 503",
        "connection reset": "ConnectionResetError", "timeout": "timed out"}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_node_error_while_simulating_ends_canceled_with_the_reason(client, journal, devnet, proxy, approved,
                                                                   cl_ord_id, fault):
    """After New: Canceled, Text naming the node's error, nothing signed or sent. (An IOC on the V3
    venue is always simulated: its price limit makes a partial fill possible.)"""
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    FAULTS[fault](proxy, "eth_estimateGas")
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3", ex_destination="uniswap_v3"))
    reports = client.reports_until_terminal(cl_ord_id, timeout=60)
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("4", "4")], [r.raw for r in reports]
    text = reports[-1][58]
    assert "node error while simulating" in text and SAYS[fault] in text and "nothing was sent" in text
    check_nothing_sent(journal, cl_ord_id)
    row = journal.find_order(S1, cl_ord_id)
    assert row.status is OrdStatus.CANCELED and row.text == text
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce0


def test_insufficient_funds_for_gas_is_not_retried_and_ends_the_order(client, journal, devnet, proxy, approved,
                                                                      cl_ord_id):
    fault = proxy.error("eth_estimateGas", message="insufficient funds for gas * price + value")
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3", ex_destination="uniswap_v3"))
    last = client.reports_until_terminal(cl_ord_id, timeout=60)[-1]
    assert (last[150], last[39]) == ("4", "4") and "insufficient funds for gas" in last[58]
    assert fault.fired == 1  # a refusal, not the node's trouble: asked once
    check_nothing_sent(journal, cl_ord_id)


@pytest.mark.parametrize("fault", ["json-rpc -32000", "http 503", "connection reset"])
def test_node_error_while_deciding_is_a_reject_with_the_reason(client, journal, devnet, proxy, approved, cl_ord_id,
                                                               fault):
    """A node error on the reads that decide an order, before New: Rejected (39=8), Text naming the
    node's error (the quote comes from the live market state; the funds check reads the chain)."""
    # A new block first: reads the intake already made at this block (an order before this one)
    # are answered from its pin, and rightly so; this order's quote must reach the node.
    devnet.rpc("evm_mine")
    FAULTS[fault](proxy, "eth_call")
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    reports = client.reports_until_terminal(cl_ord_id, timeout=60)
    assert [(r[150], r[39]) for r in reports] == [("8", "8")], [r.raw for r in reports]
    assert "node error while checking funds" in reports[0][58] and SAYS[fault] in reports[0][58]
    check_nothing_sent(journal, cl_ord_id)
    assert journal.find_order(S1, cl_ord_id).status is OrdStatus.REJECTED


def test_an_order_is_quoted_from_the_live_market_state_not_the_node(client, journal, devnet, proxy, approved,
                                                                     cl_ord_id):
    """Routing reads the one market state the feed keeps from each block's logs: a market order routed
    over both venues fills without one quote call reaching the node (no Router02 getAmountsIn/Out,
    no QuoterV2), and the journal's route event has both venues' quotes."""
    from fixbridge.config.spec import load_spec
    from eth_utils import function_signature_to_4byte_selector as sel
    spec = load_spec(devnet.spec_path)
    router = spec.venues["uniswap_v2"].router.lower()
    quoter = spec.venues["uniswap_v3"].quoter.lower()
    quote_sels = {"0x" + sel(f).hex() for f in ("getAmountsOut(uint256,address[])", "getAmountsIn(uint256,address[])")}
    proxy.eth_calls.clear()
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    reports = client.reports_until_terminal(cl_ord_id, timeout=60)
    assert reports[-1][39] == "2", [r.raw for r in reports]
    asked = [k for k in proxy.eth_calls if k[0] == quoter or (k[0] == router and k[1] in quote_sels)]
    assert asked == [], proxy.eth_calls
    row = journal.find_order(S1, cl_ord_id)
    routed = [e for e in journal.events(row.order_id) if e.kind == "quote" and e.detail and "considered" in e.detail]
    assert routed and {c["venue"] for c in routed[0].detail["considered"]} == {"uniswap_v2", "uniswap_v3"}


def test_transient_errors_are_retried_and_the_order_fills(client, journal, devnet, proxy, approved, cl_ord_id):
    """A few failures of each kind on the reads that decide an order, fewer than the retries: filled."""
    faults = [proxy.http_status(429, ["eth_call", "eth_estimateGas"], times=2),
              proxy.error(["eth_call", "eth_blockNumber", "eth_getBlockByNumber"], times=2),
              proxy.reset("eth_estimateGas", times=1),
              proxy.hang(float(RPC_TIMEOUT) + 1.0, "eth_estimateGas", times=1)]
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3", ex_destination="uniswap_v3"))
    check_filled(devnet, journal, cl_ord_id, client.reports_until_terminal(cl_ord_id, timeout=60))
    assert all(f.fired for f in faults)


# ---- a broadcast whose answer is lost --------------------------------------------------------------

def test_broadcast_reset_before_the_node_got_it_is_sent_again(client, journal, devnet, proxy, approved, cl_ord_id):
    """Every try of the broadcast is reset (the node never got it): the swap stays journaled and in
    flight, the resender sends its journaled bytes again once the node answers, and it fills."""
    fault = proxy.reset("eth_sendRawTransaction", times=6)
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    tx = check_filled(devnet, journal, cl_ord_id, client.reports_until_terminal(cl_ord_id, timeout=60))
    assert fault.fired == 6
    row = journal.find_order(S1, cl_ord_id)
    events = [e.reason for e in journal.events(row.order_id)]
    assert any(f"broadcast of {tx} got no answer" in e for e in events) and any(f"sent again: {tx}" in e for e in events)


def test_broadcast_answer_lost_after_the_node_took_it(client, journal, devnet, proxy, approved, cl_ord_id):
    """The node takes the swap but its answers hang past the bridge's timeout: the swap is mined
    meanwhile and reported Filled, sent once."""
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    fault = proxy.hang(float(RPC_TIMEOUT) + 1.0, "eth_sendRawTransaction", times=2, forward=True)
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    check_filled(devnet, journal, cl_ord_id, client.reports_until_terminal(cl_ord_id, timeout=60))
    assert fault.fired >= 1
    time.sleep(float(RPC_TIMEOUT) * 2 + 2)  # the lost answers' retries: refused ("already known", "nonce too low")
    assert not [m.raw for m in client.drain() if m.msg_type == "8" and m.get(11) == cl_ord_id]
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce0 + 1
    row, txs = swaps_of(journal, cl_ord_id)
    assert row.status is OrdStatus.FILLED and [(t.purpose, t.status) for t in txs] == [("swap", "mined")]


# ---- what the bridge reads about the chain -------------------------------------------------------

def test_stale_latest_does_not_bust_or_cancel_fills(client, journal, devnet, proxy, approved, cl_ord_id):
    """The node's latest flips between current and two blocks behind (a load balancer's backends):
    no false rollback, so no Trade Cancel of a reported fill, and every order fills."""
    fault = proxy.stale_latest(2, probability=0.5)
    ids = [f"{cl_ord_id}-{i}" for i in range(4)]
    for i, cid in enumerate(ids):
        client.send(new_order_single(cid, "WETH/USDC", "1" if i % 2 else "2", Decimal("0.01"), tif="3"))
        check_filled(devnet, journal, cid, client.reports_until_terminal(cid, timeout=60))
    time.sleep(3)  # a false rollback would bust these fills within a block or two
    assert not [m.raw for m in client.drain() if m.msg_type == "8" and m.get(11) in ids]
    for cid in ids:
        row = journal.find_order(S1, cid)
        assert [f.busted_at for f in journal.fills_for(row.order_id)] == [None]
    assert fault.fired > 0


def test_get_block_receipts_unsupported_falls_back_and_remembers(client, journal, devnet, proxy, approved, cl_ord_id):
    fault = proxy.unsupported("eth_getBlockReceipts")
    asked = proxy.calls["eth_getBlockReceipts"]
    ids = [f"{cl_ord_id}-{i}" for i in range(3)]
    for i, cid in enumerate(ids):
        client.send(new_order_single(cid, "WETH/USDC", "1" if i % 2 else "2", Decimal("0.01"), tif="3"))
        check_filled(devnet, journal, cid, client.reports_until_terminal(cid, timeout=60))
    assert fault.fired == 1 and proxy.calls["eth_getBlockReceipts"] == asked + 1  # asked once, then per transaction


# ---- chaos ----------------------------------------------------------------------------------------

CHAOS_ORDERS = int(os.environ.get("FIXBRIDGE_CHAOS_ORDERS") or 200)
CHAOS_WAVE = 25
CHAOS = "FIX.4.4:FIXBRIDGE->CHAOS"


def add_random_faults(p: RpcProxy, rng: random.Random) -> list[str]:
    """Faults of every kind, each at a random rate, scoped to random methods."""
    reads = ["eth_call", "eth_estimateGas", "eth_blockNumber", "eth_getBlockByNumber", "eth_getTransactionReceipt",
             "eth_getBlockReceipts", "eth_getTransactionCount", "eth_getTransactionByHash", "eth_gasPrice"]
    some = lambda: rng.sample(reads, rng.randint(3, len(reads)))  # noqa: E731
    made = [p.late_receipts(rng.randint(1, 3), probability=rng.uniform(0.2, 0.5)),
            p.receipts_delay(rng.uniform(0.2, 1.0), probability=rng.uniform(0.1, 0.3)),
            p.error(some(), probability=rng.uniform(0.02, 0.06)),
            p.error("eth_sendRawTransaction", probability=rng.uniform(0.0, 0.03), message="injected: txpool is full"),
            p.http_status(429, probability=rng.uniform(0.02, 0.05)),
            p.http_status(rng.choice([500, 502, 503, 504]), probability=rng.uniform(0.01, 0.03)),
            p.reset(probability=rng.uniform(0.01, 0.03)),
            p.reset("eth_sendRawTransaction", probability=rng.uniform(0.02, 0.1), forward=True),
            p.hang(1.5, some(), probability=rng.uniform(0.001, 0.004)),
            p.hang(1.5, "eth_sendRawTransaction", probability=rng.uniform(0.0, 0.05), forward=rng.random() < 0.5),
            p.stale_latest(rng.randint(1, 3), probability=rng.uniform(0.1, 0.5))]
    if rng.random() < 0.5:
        made.append(p.unsupported("eth_getBlockReceipts"))
    return [f"{f.kind}({sorted(f.methods) if f.methods else 'all'}, p={f.probability:.3f})" for f in made]


def add_burst(p: RpcProxy, rng: random.Random):
    """A method failing every time for a moment (while a wave of orders goes in)."""
    method = rng.choice(["eth_call", "eth_estimateGas", "eth_blockNumber", "eth_sendRawTransaction",
                         "eth_getTransactionReceipt", "eth_getTransactionCount"])
    return rng.choice([lambda: p.error(method), lambda: p.http_status(503, method), lambda: p.reset(method)])()


@pytest.mark.parametrize("backend", BACKENDS)
def test_chaos(devnet, tmp_path, journal_url):
    """On SQLite and PostgreSQL journals alike (`backend`)."""
    seed = int(os.environ.get("FIXBRIDGE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nchaos seed {seed} (FIXBRIDGE_CHAOS_SEED={seed} to run it again)")
    rng = random.Random(seed)
    # Its own wallet (#4), session and bridge: the module's bridge trades wallet #1.
    (tmp_path / "acceptor.cfg").write_text(acceptor_cfg(("CHAOS",)))
    (tmp_path / "counterparties.toml").write_text(
        f'[wallets.w4]\nchain = "devnet"\nprivate_key = "{KEYS[4]}"\n\n'
        '[sessions.CHAOS]\nwallets = ["w4"]\nmax_slippage_bps = 100\n')
    wallet = ADDR[4]
    started = time.monotonic()
    with RpcProxy(devnet.rpc_url, seed=seed) as p:
        b = start_bridge([spec_through(devnet, p, tmp_path / "devnet.toml")], tmp_path / "counterparties.toml",
                         tmp_path / "state", env={"FIXBRIDGE_RPC_TIMEOUT": "1"}, journal=journal_url)
        from fixbridge.journal import Journal
        journal = Journal(b.journal_url)
        try:
            with FixClient("127.0.0.1", b.port, "CHAOS", "FIXBRIDGE", data_dir=tmp_path / "client") as c:
                warm(c, "chaos-warm")  # the approvals, through a healthy node
                first_block = w3_of(devnet).eth.block_number + 1
                print("faults:", *add_random_faults(p, rng), sep="\n  ")
                reports: dict[str, list] = {}
                ids = [f"chaos-{seed}-{i}" for i in range(CHAOS_ORDERS)]
                bursts: list[str] = []
                for start in range(0, len(ids), CHAOS_WAVE):
                    wave = ids[start:start + CHAOS_WAVE]
                    burst = add_burst(p, rng) if rng.random() < 0.4 else None
                    if burst is not None:
                        bursts.append(f"{burst.kind} {sorted(burst.methods or [])}")
                    for cid in wave:
                        reports[cid] = []
                        side = rng.choice("12")
                        qty = Decimal(rng.randint(1, 50)) / 1000
                        kw = {}
                        if rng.random() < 0.1:  # a limit the pool cannot meet: Canceled by the simulation
                            kw["limit"] = Decimal("100") if side == "1" else Decimal("100000")
                        if rng.random() < 0.2:
                            kw["ex_destination"] = rng.choice(["uniswap_v2", "uniswap_v3"])
                        c.send(new_order_single(cid, "WETH/USDC", side, qty, tif=rng.choice("34"), **kw))
                    if burst is not None:
                        time.sleep(rng.uniform(0.3, 2.0))
                        p.remove(burst)
                    collect(c, reports, wave, timeout=120)
                    if burst is not None:
                        time.sleep(1.0)  # the next wave meets a node that answers again (else: all rejected, unreachable)
                print("bursts:", *bursts, sep="\n  ")
                p.clear()
                time.sleep(4)  # a healthy node for a few blocks: anything still to come would come now
                collect(c, reports, [], timeout=0.5)
            last_block = w3_of(devnet).eth.block_number
            check_chaos(devnet, journal, reports, wallet, first_block, last_block)
        finally:
            journal.close()
            b.stop()
        injected = sorted(((k, m), n) for (k, m), n in p.injected.items())
    print(f"chaos: {CHAOS_ORDERS} orders in {time.monotonic() - started:.0f}s; requests {dict(p.calls)}; injected:",
          *[f"{k} {m}: {n}" for (k, m), n in injected], sep="\n  ")


def collect(c: FixClient, reports: dict[str, list], wave: list[str], timeout: float) -> None:
    """Every ExecutionReport into `reports` (by ClOrdID) until each order of `wave` has a terminal one."""
    end = time.monotonic() + timeout
    while any(not any(r[39] in TERMINAL for r in reports[cid]) for cid in wave):
        left = end - time.monotonic()
        if left <= 0:
            missing = [cid for cid in wave if not any(r[39] in TERMINAL for r in reports[cid])]
            raise AssertionError(f"no terminal report for {missing}")
        try:
            m = c.receive(left)
        except TimeoutError:
            continue
        if m.msg_type == "8":
            reports.setdefault(m[11], []).append(m)
    for m in c.drain():
        if m.msg_type == "8":
            reports.setdefault(m[11], []).append(m)


def check_chaos(devnet, journal, reports: dict[str, list], wallet: str, first: int, last: int) -> None:
    w3 = w3_of(devnet)
    # The chain: every transaction the wallet sent during the run, its receipt and Swap events.
    on_chain: dict[str, dict] = {}
    for n in range(first, last + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"] == wallet:
                on_chain["0x" + tx["hash"].hex()] = w3.eth.get_transaction_receipt(tx["hash"])
    chain_swaps = {(h, lg["logIndex"]) for h, r in on_chain.items() if r["status"] == 1
                   for lg in r["logs"] if "0x" + lg["topics"][0].hex() in SWAP_TOPICS}
    journal_fills: set[tuple[str, int]] = set()
    outcomes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    swaps_by_order: dict[str, list[str]] = {}
    for h in on_chain:
        t = journal.get_transaction(h)
        assert t is not None, f"{h} on chain from the wallet, not in the journal"
        if t.order_id is not None and t.purpose == "swap":
            swaps_by_order.setdefault(t.order_id, []).append(h)
    for cid, got in reports.items():
        terminal = [r for r in got if r[39] in TERMINAL]
        assert len(terminal) == 1, f"{cid}: {len(terminal)} terminal reports: {[r.raw for r in got]}"
        assert not [r for r in got if r[150] == "H"], f"{cid}: a Trade Cancel without a reorg"
        row = journal.find_order(CHAOS, cid)
        assert row is not None and row.status.terminal, cid
        mined = swaps_by_order.get(row.order_id, [])
        assert len(mined) <= 1, f"{cid}: {len(mined)} swap transactions on chain"
        ok = [h for h in mined if on_chain[h]["status"] == 1]
        fills = {(f.tx_hash, f.log_index) for f in journal.fills_for(row.order_id, include_busted=False)}
        journal_fills |= fills
        outcome = terminal[0][39]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "2":
            why = (terminal[0].get(58) or "")[:90]
            reasons[why] = reasons.get(why, 0) + 1
        if ok:  # its swap executed on chain: the client was told so, never Canceled
            trades = [r for r in got if r[150] == "F"]
            assert trades and trades[-1][20001] == ok[0], f"{cid}: swap {ok[0]} on chain, reports {[r.raw for r in got]}"
            assert outcome in ("1", "2") or (outcome == "4" and trades), f"{cid}: swap on chain but ended {outcome}"
            assert {(f[0], f[1]) for f in fills} == {s for s in chain_swaps if s[0] == ok[0]}
        else:
            assert outcome != "2" and not fills, f"{cid}: ended {outcome} with fills {fills} but no swap on chain"
    assert journal_fills == chain_swaps, (journal_fills ^ chain_swaps)
    print(f"chaos outcomes (39): {outcomes}; wallet transactions {len(on_chain)}, swaps {len(chain_swaps)}; why not filled:",
          *[f"{n} x {why}" for why, n in sorted(reasons.items(), key=lambda x: -x[1])], sep="\n  ")
