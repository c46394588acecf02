"""The chain as it really behaves: blocks every second, many orders per block, confirmations,
stuck and dropped transactions, nonces used behind the bridge's back, reorgs, a node that goes
away. A real anvil with --block-time; the bridge as a subprocess; a real FIX initiator."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from eth_account import Account
from web3 import Web3

from support import ADDR, BACKENDS, KEYS, acceptor_cfg, start_bridge, start_devnet
from fixbridge.fix.client import FixClient, new_order_single, order_cancel_request
from fixbridge.orders.model import OrdStatus
from helpers import tx_count

pytestmark = pytest.mark.e2e
S1 = "FIX.4.4:FIXBRIDGE->CLIENT1"
S6 = "FIX.4.4:FIXBRIDGE->CLIENT6"  # the PostgreSQL bridge's session (pg_chain)
GWEI = 10**9
CEILING = 100 * GWEI   # this module's chain: re-pricing never bids more (max_fee_per_gas_gwei)
BUMP_PERCENT = 50      # and each re-price bids 50 % more (fee_bump_percent), after 2 blocks


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    """A devnet that mines a block every second, as a real chain does (its state saved every second,
    so the outage test can restart it). The shared bridge, journal and client fixtures run on it."""
    d = tmp_path_factory.mktemp("chain")
    net = start_devnet(d, block_time=1, extra_args=["--state", str(d / "state.json"), "--state-interval", "1"])
    # Not the defaults, so the tests show the chain's replacement policy is the one honoured.
    text = net.spec_path.read_text()
    for line, ours in (("replace_after_blocks = 3", "replace_after_blocks = 2"),
                       ("fee_bump_percent = 20", f"fee_bump_percent = {BUMP_PERCENT}"),
                       ('max_fee_per_gas_gwei = "500"', f'max_fee_per_gas_gwei = "{CEILING // GWEI}"')):
        assert line in text
        text = text.replace(line, ours)
    net.spec_path.write_text(text)
    yield net
    net.anvil.stop()


@pytest.fixture(scope="module")
def approved(client):
    """One buy and one sell first, so the wallet's approvals are mined before mining is paused."""
    for side in ("1", "2"):
        cid = f"warm-{side}-{time.time_ns()}"
        client.send(new_order_single(cid, "WETH/USDC", side, Decimal("0.01"), tif="3"))
        assert client.reports_until_terminal(cid, timeout=60)[-1][39] == "2"


@pytest.fixture(scope="module")
def pg_chain(devnet, pg_new_database, tmp_path_factory):
    """A second bridge on this chain, journaling to PostgreSQL: CLIENT6 trading from wallet #4 (no
    other test of this module uses it), its approvals mined. (client, journal)"""
    from fixbridge.journal import Journal

    d = tmp_path_factory.mktemp("pg-bridge")
    (d / "acceptor.cfg").write_text(acceptor_cfg(["CLIENT6"]))
    (d / "counterparties.toml").write_text(f'[wallets.w4]\nchain = "devnet"\nprivate_key = "{KEYS[4]}"\n'
                                           '[sessions.CLIENT6]\nwallets = ["w4"]\n')
    b = start_bridge([devnet.spec_path], d / "counterparties.toml", d / "state", journal=pg_new_database())
    c = FixClient("127.0.0.1", b.port, "CLIENT6", "FIXBRIDGE", data_dir=d / "client").start()
    j = Journal(b.journal_url)
    try:
        for side in ("1", "2"):
            cid = f"pg-warm-{side}-{time.time_ns()}"
            c.send(new_order_single(cid, "WETH/USDC", side, Decimal("0.01"), tif="3"))
            assert c.reports_until_terminal(cid, timeout=60)[-1][39] == "2"
        yield c, j
    finally:
        j.close()
        c.stop()
        b.stop()


@pytest.fixture
def paused(devnet, approved):
    """Interval mining off for the test: blocks come only when the test mines them."""
    devnet.rpc("anvil_setIntervalMining", [0])
    yield
    devnet.rpc("anvil_setIntervalMining", [1])


def swap_txs(journal, cl_ord_id, session=S1):
    row = journal.find_order(session, cl_ord_id)
    return row, [t for t in journal.transactions_for(row.order_id) if t.purpose in ("swap", "cancel")]


def wait_for(pred, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def wait_broadcast(journal, cl_ord_id, n=1, session=S1):
    def ready():
        try:
            row, txs = swap_txs(journal, cl_ord_id, session)
        except AttributeError:
            return None
        return txs if len([t for t in txs if t.status == "broadcast"]) >= n else None
    return wait_for(ready, what=f"{n} broadcast transaction(s) for {cl_ord_id}")


def node_has(devnet, tx_hash: str) -> bool:
    """The node holds the transaction (in its mempool or mined). A journal row alone is not enough:
    the write-ahead row is committed before the broadcast, by design."""
    return devnet.rpc("eth_getTransactionByHash", [tx_hash]) is not None


def wait_in_mempool(devnet, journal, cl_ord_id, pick, what):
    """The journaled transaction `pick` chooses, once the node has it."""
    def ready():
        t = pick(swap_txs(journal, cl_ord_id)[1])
        return t if t is not None and node_has(devnet, t.tx_hash) else None
    return wait_for(ready, what=what)


def test_many_orders_share_blocks(client, journal, devnet, cl_ord_id):
    """Pipelining: 24 orders sent at once are mined in a few blocks, gapless nonces, all filled."""
    ids = [f"{cl_ord_id}-{i}" for i in range(24)]
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    for i, cid in enumerate(ids):
        side = "1" if i % 2 == 0 else "2"
        client.send(new_order_single(cid, "WETH/USDC", side, Decimal("0.01"), tif="3"))
    blocks, nonces = set(), []
    for cid in ids:
        trade = client.reports_until_terminal(cid, timeout=60)[-1]
        assert trade[39] == "2", trade.raw
        blocks.add(int(trade[20002]))
        row = journal.find_order(S1, cid)
        nonces += [t.nonce for t in journal.transactions_for(row.order_id) if t.status == "mined"]  # swaps + approvals
    assert len(blocks) <= 6, f"24 swaps took {len(blocks)} blocks"
    assert sorted(nonces) == list(range(nonce0, nonce0 + len(nonces))) and len(nonces) >= 24
    assert tx_count(devnet.rpc_url, ADDR[1]) >= nonce0 + 24


def test_fills_after_confirmations(bridge, devnet, tmp_path, cl_ord_id):
    with FixClient("127.0.0.1", bridge.port, "CLIENT5", "FIXBRIDGE", data_dir=tmp_path / "c5") as c:
        c.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
        trade = c.reports_until_terminal(cl_ord_id, timeout=60)[-1]
        head = Web3(Web3.HTTPProvider(devnet.rpc_url)).eth.block_number
    assert trade[39] == "2" and head >= int(trade[20002]) + 2  # reported 3 blocks deep, not before


def test_cancel_of_a_pending_transaction_replaces_it(client, journal, devnet, paused, cl_ord_id):
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    assert client.receive(30, "8")[150] == "0"
    wait_broadcast(journal, cl_ord_id)
    client.send(order_cancel_request(cl_ord_id + "-c", cl_ord_id, side="2", symbol="WETH/USDC"))
    pending = client.receive(30, "8")
    assert (pending[150], pending[39], pending[11], pending[41]) == ("6", "6", cl_ord_id + "-c", cl_ord_id)
    wait_in_mempool(devnet, journal, cl_ord_id, lambda txs: next((t for t in txs if t.purpose == "cancel"), None),
                    what="the no-op replacement in the node's mempool")
    devnet.rpc("evm_mine")
    done = client.reports_until_terminal(cl_ord_id + "-c", timeout=30)[-1]
    assert (done[150], done[39], done[14], done[41]) == ("4", "4", "0", cl_ord_id)
    row, txs = swap_txs(journal, cl_ord_id)
    assert row.status is OrdStatus.CANCELED and journal.fills_for(row.order_id) == []
    assert {t.purpose: t.status for t in txs} == {"swap": "replaced", "cancel": "mined"}
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce0 + 1  # the nonce went to the no-op, not the swap


def test_underpriced_transaction_is_repriced(client, journal, devnet, paused, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    wait_broadcast(journal, cl_ord_id)
    base = Web3(Web3.HTTPProvider(devnet.rpc_url)).eth.get_block("latest")["baseFeePerGas"]
    devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(base * 50)])  # our max fee no longer covers it
    for _ in range(4):
        devnet.rpc("evm_mine")
        time.sleep(0.3)
    wait_in_mempool(devnet, journal, cl_ord_id, lambda txs: txs[1] if len(txs) >= 2 else None,
                    what="a re-priced replacement in the node's mempool")
    devnet.rpc("evm_mine")
    trade = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert trade[39] == "2"
    row, txs = swap_txs(journal, cl_ord_id)
    assert [t.status for t in txs] == ["replaced", "mined"] and txs[0].nonce == txs[1].nonce
    assert txs[1].max_fee_per_gas > txs[0].max_fee_per_gas and trade[20001] == txs[1].tx_hash
    bumped = txs[0].max_priority_fee_per_gas * (100 + BUMP_PERCENT) // 100
    assert txs[1].max_priority_fee_per_gas == bumped  # the chain's fee_bump_percent, not a default


def test_repricing_stops_at_the_chains_ceiling(client, journal, devnet, paused, cl_ord_id):
    """The base fee jumps over the chain's max_fee_per_gas_gwei: the swap is re-priced once, to
    the ceiling, then waits there (journaled, not re-priced again) until the base fee falls back."""
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    wait_broadcast(journal, cl_ord_id)
    devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(2 * CEILING)])  # then -12.5 % per empty block
    try:
        for _ in range(5):  # base fees 200, 175, 153, 134, 117 gwei: all over the ceiling
            devnet.rpc("evm_mine")
            time.sleep(0.4)
        wait_for(lambda: any("max_fee_per_gas_gwei allows" in e.reason
                             for e in journal.events(swap_txs(journal, cl_ord_id)[0].order_id)), what="held at the ceiling")
        row, txs = swap_txs(journal, cl_ord_id)
        assert [t.max_fee_per_gas for t in txs][1:] == [CEILING] and row.status is OrdStatus.NEW
        for _ in range(4):  # 103, then 90 gwei: the ceiling's bid is included
            devnet.rpc("evm_mine")
            time.sleep(0.2)
        trade = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    finally:
        devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        devnet.rpc("evm_mine")
    row, txs = swap_txs(journal, cl_ord_id)
    assert trade[39] == "2" and trade[20001] == txs[1].tx_hash
    assert [(t.status, t.max_fee_per_gas <= CEILING) for t in txs] == [("replaced", True), ("mined", True)]


def test_a_swap_unmined_past_its_deadline_is_replaced_by_a_noop_and_expires(client, journal, devnet, paused, cl_ord_id):
    """The base fee stays over what the swap may bid (the ceiling) until its deadline passes: mined
    after that it could only revert, so a no-op takes its nonce and the order ends Expired."""
    expire = datetime.now(timezone.utc) + timedelta(seconds=30)
    nonce0 = tx_count(devnet.rpc_url, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3", expire_time=expire))
    wait_broadcast(journal, cl_ord_id)
    try:
        devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(10 * CEILING)])  # over the ceiling for ~17 blocks
        devnet.rpc("evm_setNextBlockTimestamp", [int(expire.timestamp()) + 1])
        devnet.rpc("evm_mine")  # past the deadline, without the swap: it cannot pay this base fee
        noop = wait_in_mempool(devnet, journal, cl_ord_id, lambda txs: next((t for t in txs if t.purpose == "cancel"), None),
                               what="a no-op replacing the expired swap")
        devnet.rpc("evm_mine")
        last = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    finally:
        devnet.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        devnet.rpc("evm_mine")
    assert (last[150], last[39], last[14]) == ("C", "C", "0") and "deadline passed" in last[58]
    assert last[20001] == noop.tx_hash
    row, txs = swap_txs(journal, cl_ord_id)
    assert row.status is OrdStatus.EXPIRED and journal.fills_for(row.order_id) == []
    assert {t.purpose: t.status for t in txs} == {"swap": "replaced", "cancel": "mined"}
    assert tx_count(devnet.rpc_url, ADDR[1]) == nonce0 + 1  # the nonce went to the no-op, not the swap


def test_dropped_transaction_is_rebroadcast(client, journal, devnet, paused, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    (tx,) = wait_broadcast(journal, cl_ord_id)
    devnet.rpc("anvil_dropTransaction", [tx.tx_hash])
    for _ in range(4):
        devnet.rpc("evm_mine")
        time.sleep(0.3)
    wait_for(lambda: any("rebroadcast" in e.reason for e in journal.events(swap_txs(journal, cl_ord_id)[0].order_id)),
             what="rebroadcast")
    wait_for(lambda: node_has(devnet, tx.tx_hash), what="the same transaction back in the node's mempool")
    devnet.rpc("evm_mine")
    trade = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert trade[39] == "2" and trade[20001] == tx.tx_hash  # the same journaled bytes, mined


def test_a_run_of_lost_nonces_is_sent_again_at_once(client, journal, devnet, paused, cl_ord_id):
    """The node loses a wallet's whole run of pending swaps (anvil drops a transaction with every
    later nonce of its sender, as it does by itself when a full block skips one swap for gas and
    the next, smaller one fits): at the next block the bridge sends every lost one again, in one go,
    rather than one nonce per `replace_after_blocks`; all five fill in the block after."""
    ids = [f"{cl_ord_id}-{i}" for i in range(5)]
    for i, cid in enumerate(ids):
        client.send(new_order_single(cid, "WETH/USDC", "1" if i % 2 else "2", Decimal("0.01"), tif="3"))
    txs = [wait_broadcast(journal, cid)[0] for cid in ids]
    wait_for(lambda: all(node_has(devnet, t.tx_hash) for t in txs), what="the five swaps at the node")
    lowest = min(txs, key=lambda t: t.nonce)
    devnet.rpc("anvil_dropTransaction", [lowest.tx_hash])  # drops it and every later nonce behind it
    assert not any(node_has(devnet, t.tx_hash) for t in txs)
    devnet.rpc("evm_mine")  # an empty block: the bridge sees its lowest swap is gone
    wait_for(lambda: all(node_has(devnet, t.tx_hash) for t in txs), what="all five back at the node after one block")
    devnet.rpc("evm_mine")
    trades = [client.reports_until_terminal(cid, timeout=30)[-1] for cid in ids]
    assert [(m[39], m[20001]) for m in trades] == [("2", t.tx_hash) for t in txs]  # the journaled bytes
    assert len({m[20002] for m in trades}) == 1  # one block holds them all
    for cid, t in zip(ids, txs):
        events = journal.events(journal.find_order(S1, cid).order_id)
        assert any(f"rebroadcast {t.tx_hash}: the node no longer had it" in e.reason for e in events), cid


def test_nonce_used_outside_the_bridge(client, journal, devnet, paused, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    (tx,) = wait_broadcast(journal, cl_ord_id)
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    # Someone with the wallet's key sends their own transaction at the bridge's nonce, paying more.
    acct = Account.from_key(KEYS[1])
    outside = acct.sign_transaction({"to": acct.address, "value": 0, "nonce": tx.nonce, "gas": 21000, "chainId": 31337,
                                     "maxFeePerGas": 10 * tx.max_fee_per_gas, "maxPriorityFeePerGas": 5 * tx.max_priority_fee_per_gas})
    w3.eth.send_raw_transaction(outside.raw_transaction)
    devnet.rpc("evm_mine")
    last = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert (last[150], last[39], last[14]) == ("4", "4", "0") and "used by a transaction the bridge did not send" in last[58]
    # The bridge moved its nonce past it: the next order trades.
    client.send(new_order_single(cl_ord_id + "-next", "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    wait_broadcast(journal, cl_ord_id + "-next")
    devnet.rpc("evm_mine")
    assert client.reports_until_terminal(cl_ord_id + "-next", timeout=30)[-1][39] == "2"


# Approvals, pipelined. After the re-pricing tests: their transactions change the base fee those
# tests scale from.
S3 = "FIX.4.4:FIXBRIDGE->CLIENT3"  # wallet #3, approval_policy "exact": every order approves its own amount


def order_txs(journal, cl_ord_id, session=S3):
    row = journal.find_order(session, cl_ord_id)
    return row, journal.transactions_for(row.order_id)


def approval_and_swap_at_node(journal, devnet, cl_ord_id):
    """The order's approval and swap by purpose, once the node holds both; else None."""
    try:
        _, txs = order_txs(journal, cl_ord_id)
    except AttributeError:
        return None
    by = {t.purpose: t for t in txs if node_has(devnet, t.tx_hash)}
    return by if {"approve", "swap"} <= set(by) else None


def test_first_order_of_a_fresh_wallet_sends_approval_and_swap_into_one_block(client_factory, journal, devnet,
                                                                              cl_ord_id):
    """Approvals are pipelined: wallet #3 has never approved the router for WBTC; its first sell
    sends the approval and, right behind it at the next nonce, the swap, without waiting for the
    approval's receipt. Both land in one block (this chain mines every second); the client gets
    New, then Trade."""
    c = client_factory("CLIENT3")
    nonce0 = tx_count(devnet.rpc_url, ADDR[3])
    c.send(new_order_single(cl_ord_id, "WBTC/USDC", "2", Decimal("0.001"), tif="3"))
    reports = c.reports_until_terminal(cl_ord_id, timeout=60)
    assert [(m[150], m[39]) for m in reports] == [("0", "0"), ("F", "2")], [m.raw for m in reports]
    row, txs = order_txs(journal, cl_ord_id)
    by_purpose = {t.purpose: t for t in txs}
    assert set(by_purpose) == {"approve", "swap"} and all(t.status == "mined" for t in txs)
    approve, swap = by_purpose["approve"], by_purpose["swap"]
    assert (approve.nonce, swap.nonce) == (nonce0, nonce0 + 1)
    blocks = {journal.receipt(t.tx_hash).block_number for t in txs}
    assert blocks == {int(reports[-1][20002])}, "the approval and the swap were mined in different blocks"
    (granted,) = journal.approvals_for(row.order_id)
    assert granted.tx_hash.lower() == approve.tx_hash.lower()


def test_an_approval_that_reverts_rejects_its_order_and_the_wallet_trades_on(client_factory, journal, devnet,
                                                                             paused, cl_ord_id):
    """The approval passes its simulation and is sent, its swap behind it; then the token refuses
    every call when the block is mined (its code swapped for a bare REVERT): the approval reverts.
    The order ends Rejected (39=8) with the reason, its New never sent; the swap behind it
    reverted in the same block, and the wallet's next order is approved and filled."""
    c = client_factory("CLIENT3")
    weth = devnet.deployment.weth
    code = devnet.rpc("eth_getCode", [weth, "latest"])
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))

    def both_at_node():
        try:
            _, txs = order_txs(journal, cl_ord_id)
        except AttributeError:
            return None
        held = {t.purpose for t in txs if node_has(devnet, t.tx_hash)}
        return held >= {"approve", "swap"}
    wait_for(both_at_node, what="the approval and its swap at the node")
    devnet.rpc("anvil_setCode", [weth, "0x60006000fd"])  # PUSH1 0 PUSH1 0 REVERT
    try:
        devnet.rpc("evm_mine")
    finally:
        devnet.rpc("anvil_setCode", [weth, code])
    reports = c.reports_until_terminal(cl_ord_id, timeout=30)
    assert [(m[150], m[39]) for m in reports] == [("8", "8")], [m.raw for m in reports]
    assert "Approval of WETH reverted" in reports[-1][58]
    row, txs = order_txs(journal, cl_ord_id)
    assert row.status is OrdStatus.REJECTED and journal.fills_for(row.order_id) == []
    assert {t.purpose: t.status for t in txs} == {"approve": "reverted", "swap": "reverted"}
    devnet.rpc("anvil_setIntervalMining", [1])
    nxt = f"{cl_ord_id}-next"
    c.send(new_order_single(nxt, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    assert c.reports_until_terminal(nxt, timeout=60)[-1][39] == "2"


def test_two_orders_needing_one_approval_send_one(bridge, journal, devnet, tmp_path, cl_ord_id):
    """CLIENT5 (wallet #3, standing approvals, fills 3 blocks deep) sells WBTC twice at once, with
    no WBTC allowance left (the 'exact' approval above was used by its swap): one approval goes out,
    both swaps follow it, both orders get New then Trade."""
    s5 = "FIX.4.4:FIXBRIDGE->CLIENT5"
    ids = [f"{cl_ord_id}-{i}" for i in range(2)]
    with FixClient("127.0.0.1", bridge.port, "CLIENT5", "FIXBRIDGE", data_dir=tmp_path / "c5") as c:
        for cid in ids:
            c.send(new_order_single(cid, "WBTC/USDC", "2", Decimal("0.001"), tif="3"))
        for cid in ids:
            reports = c.reports_until_terminal(cid, timeout=60)
            assert [(m[150], m[39]) for m in reports] == [("0", "0"), ("F", "2")], [m.raw for m in reports]
    txs = [t for cid in ids for t in order_txs(journal, cid, s5)[1]]
    assert sorted(t.purpose for t in txs) == ["approve", "swap", "swap"], [(t.purpose, t.status) for t in txs]
    assert all(t.status == "mined" for t in txs)


def test_dropped_approval_is_rebroadcast_and_its_swap_follows(client_factory, journal, devnet, paused, cl_ord_id):
    """An approval is looked after like a swap: the node loses it (the swap behind it cannot be mined
    without it), the bridge sends the journaled approval again, and the order gets New, then Trade."""
    c = client_factory("CLIENT3")
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.02"), tif="3"))
    sent = lambda: approval_and_swap_at_node(journal, devnet, cl_ord_id)  # noqa: E731
    approve = wait_for(sent, what="the approval and its swap at the node")["approve"]
    devnet.rpc("anvil_dropTransaction", [approve.tx_hash])
    for _ in range(4):
        devnet.rpc("evm_mine")
        time.sleep(0.3)
    order_id = order_txs(journal, cl_ord_id)[0].order_id
    wait_for(lambda: any("rebroadcast" in e.reason and approve.tx_hash in e.reason for e in journal.events(order_id)),
             what="the approval rebroadcast")
    wait_for(lambda: node_has(devnet, approve.tx_hash), what="the same approval back in the node's mempool")
    devnet.rpc("evm_mine")
    reports = c.reports_until_terminal(cl_ord_id, timeout=30)
    assert [(m[150], m[39]) for m in reports] == [("0", "0"), ("F", "2")], [m.raw for m in reports]
    assert {t.purpose: t.status for t in order_txs(journal, cl_ord_id)[1]} == {"approve": "mined", "swap": "mined"}


def test_an_approval_whose_nonce_is_used_outside_rejects_its_order(client_factory, journal, devnet, paused,
                                                                   cl_ord_id):
    """Someone with wallet #3's key takes the nonce of the bridge's pending approval: the order that
    waited on it is Rejected (it never had a New), naming the outside use; nothing of it fills, and
    the wallet's next order trades (a new approval, at the next nonce)."""
    c = client_factory("CLIENT3")
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.02"), tif="3"))
    sent = lambda: approval_and_swap_at_node(journal, devnet, cl_ord_id)  # noqa: E731
    approve = wait_for(sent, what="the approval and its swap at the node")["approve"]
    acct = Account.from_key(KEYS[3])
    outside = acct.sign_transaction({"to": acct.address, "value": 0, "nonce": approve.nonce, "gas": 21000,
                                     "chainId": 31337, "maxFeePerGas": 10 * int(approve.max_fee_per_gas),
                                     "maxPriorityFeePerGas": 5 * int(approve.max_priority_fee_per_gas)})
    Web3(Web3.HTTPProvider(devnet.rpc_url)).eth.send_raw_transaction(outside.raw_transaction)
    devnet.rpc("evm_mine")
    reports = c.reports_until_terminal(cl_ord_id, timeout=30)
    assert [(m[150], m[39]) for m in reports] == [("8", "8")], [m.raw for m in reports]
    assert "used by a transaction the bridge did not send" in reports[0][58]
    row, txs = order_txs(journal, cl_ord_id)
    assert row.status is OrdStatus.REJECTED and journal.fills_for(row.order_id) == []
    assert "mined" not in {t.status for t in txs if t.purpose == "swap"}, [(t.purpose, t.status) for t in txs]
    devnet.rpc("anvil_setIntervalMining", [1])
    nxt = cl_ord_id + "-next"
    c.send(new_order_single(nxt, "WETH/USDC", "2", Decimal("0.02"), tif="3"))
    assert c.reports_until_terminal(nxt, timeout=60)[-1][39] == "2"


def test_a_reorg_that_takes_back_an_approval_sends_it_again(client_factory, journal, devnet, paused, cl_ord_id):
    """Wallet #3's approval and the swap behind it are mined in one block, reported (New, Trade),
    and the block is reorged out: the Trade is canceled (150=H), the approval is in flight again
    with the swap, both are sent again, and the next block fills the order once more."""
    c = client_factory("CLIENT3")
    c.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.02"), tif="3"))
    sent = lambda: approval_and_swap_at_node(journal, devnet, cl_ord_id)  # noqa: E731
    wait_for(sent, what="the approval and its swap at the node")
    devnet.rpc("evm_mine")
    first = c.reports_until_terminal(cl_ord_id, timeout=30)
    assert [(m[150], m[39]) for m in first] == [("0", "0"), ("F", "2")], [m.raw for m in first]
    time.sleep(0.3)
    devnet.rpc("anvil_reorg", [1, []])  # the block replaced by an empty one
    bust = c.receive(30, "8")
    assert (bust[150], bust[19], bust[39]) == ("H", first[-1][17], "0")
    order_id = order_txs(journal, cl_ord_id)[0].order_id
    wait_for(lambda: any("approval is in flight again" in e.reason for e in journal.events(order_id)),
             what="the approval taken back")
    by = wait_for(sent, what="the approval and the swap back at the node")
    devnet.rpc("evm_mine")
    again = c.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert (again[150], again[39]) == ("F", "2") and again[17] != first[-1][17]
    receipt = devnet.rpc("eth_getTransactionReceipt", [by["approve"].tx_hash])
    assert receipt is not None and int(receipt["status"], 16) == 1
    assert journal.find_order(S3, cl_ord_id).status is OrdStatus.FILLED


@pytest.mark.parametrize("depth, backend", [(1, "sqlite"), (3, "sqlite"), (5, "sqlite"),
                                            pytest.param(3, "postgres", marks=BACKENDS[1].marks)])
def test_reorg_cancels_reported_fill_then_reports_new_outcome(request, devnet, cl_ord_id, depth, backend):
    # On PostgreSQL: a bridge of its own (pg_chain), set up before mining is paused.
    client, journal = ((request.getfixturevalue("client"), request.getfixturevalue("journal")) if backend == "sqlite"
                       else request.getfixturevalue("pg_chain"))
    session = S1 if backend == "sqlite" else S6
    request.getfixturevalue("paused")
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    wait_broadcast(journal, cl_ord_id, session=session)
    devnet.rpc("evm_mine")
    first = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert first[150] == "F"
    for _ in range(depth - 1):
        devnet.rpc("evm_mine")
    time.sleep(0.3)
    devnet.rpc("anvil_reorg", [depth, []])  # the last `depth` blocks replaced by empty ones
    bust = client.receive(30, "8")
    assert (bust[150], bust[19], bust[39], bust[14]) == ("H", first[17], "0", "0")
    wait_for(lambda: swap_txs(journal, cl_ord_id, session)[1][0].status == "broadcast", what="back in flight")
    devnet.rpc("evm_mine")
    again = client.reports_until_terminal(cl_ord_id, timeout=30)[-1]
    assert again[150] == "F" and again[39] == "2" and again[17] != first[17]
    row = journal.find_order(session, cl_ord_id)
    fills = journal.fills_for(row.order_id)
    assert [f.busted_at is not None for f in fills] == [True, False]  # the journal keeps both
    assert row.status is OrdStatus.FILLED


def test_node_outage_then_recovery(client, journal, devnet, bridge, cl_ord_id):
    """anvil killed mid-flight and restarted from its saved state: orders meanwhile are rejected
    with the reason, the in-flight one is rebroadcast from the journal and fills."""
    from fixbridge.devnet.anvil import Anvil

    devnet.rpc("anvil_setIntervalMining", [0])
    # With mining paused the chain stands still: keep a whole copy of the state anvil saves each second.
    saved, snapshot = devnet.spec_path.parent / "state.json", devnet.spec_path.parent / "snapshot.json"
    def copy_whole() -> bool:
        time.sleep(1.2)
        text = saved.read_text()
        try:
            json.loads(text)
        except ValueError:
            return False  # caught mid-write
        snapshot.write_text(text)
        return True
    wait_for(copy_whole, what="a complete anvil state file")
    client.send(new_order_single(cl_ord_id, "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    (tx,) = wait_broadcast(journal, cl_ord_id)
    port = devnet.anvil.port
    devnet.anvil._kill()  # a crash: its mempool is lost
    time.sleep(1.5)
    client.send(new_order_single(cl_ord_id + "-down", "WETH/USDC", "1", Decimal("0.01"), tif="3"))
    down = client.reports_until_terminal(cl_ord_id + "-down", timeout=30)[-1]
    assert down[39] == "8" and "unreachable" in down[58]
    assert bridge.proc.poll() is None  # the bridge stayed up
    node = Anvil("127.0.0.1", port, block_time=1, log_path=devnet.anvil.log_path,
                 extra_args=["--state", str(snapshot), "--state-interval", "1"]).start()
    devnet.anvil = node
    trade = client.reports_until_terminal(cl_ord_id, timeout=60)[-1]
    assert trade[39] == "2" and trade[20001] == tx.tx_hash
