"""End to end: a QuickFIX initiator trades through the real bridge on a real anvil with the
real Uniswap V2; each test checks the ExecutionReports, the chain and the journal."""
from __future__ import annotations

from decimal import Decimal

import pytest
from web3 import Web3

from fixbridge.fix.client import new_order_single, order_status_request
from fixbridge.orders.model import OrdStatus
from helpers import balance, eventually, tx_count, units
from support import ADDR

pytestmark = pytest.mark.e2e
BUY, SELL, IOC, FOK = "1", "2", "3", "4"


def fill_of(reports):
    trades = [r for r in reports if r[150] == "F"]
    assert len(trades) == 1, [r.raw for r in reports]
    return trades[0]


def test_limit_buy_fills_and_moves_balances(client, journal, devnet, cl_ord_id):
    dep = devnet.deployment
    weth0, usdc0 = balance(devnet.rpc_url, dep.weth, ADDR[1]), balance(devnet.rpc_url, dep.usdc, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.5"), limit=Decimal("3100"), tif=IOC))
    reports = client.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("F", "2")]
    new, trade = reports
    assert new[14] == "0" and new[151] == "0.5" and new[38] == "0.5"
    # Trade: quantities from the Swap event, the on-chain proof in the user-defined tags.
    assert Decimal(trade[32]) == Decimal("0.5") and Decimal(trade[14]) == Decimal("0.5") and trade[151] == "0"
    px = Decimal(trade[31])
    assert Decimal("2990") < px <= Decimal("3100") and Decimal(trade[6]) == px
    tx_hash = trade[20001]
    assert trade[17].startswith(tx_hash + ":") and int(trade[20003]) == 31337 and int(trade[20002]) > 0
    assert trade[136] == "1" and trade[138] == "ETH" and Decimal(trade[137]) > 0
    # The chain agrees: exact output of 0.5 WETH, USDC paid = LastQty x LastPx (to the unit).
    r = Web3(Web3.HTTPProvider(devnet.rpc_url)).eth.get_transaction_receipt(tx_hash)
    assert r.status == 1 and r.blockNumber == int(trade[20002])
    assert balance(devnet.rpc_url, dep.weth, ADDR[1]) - weth0 == units("0.5", 18)
    paid = usdc0 - balance(devnet.rpc_url, dep.usdc, ADDR[1])
    assert paid == units(str(Decimal(trade[32]) * px), 6)
    assert paid <= units("1550", 6)  # the limit bound: 0.5 x 3100
    # The journal has every step, written before it happened.
    row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
    assert row.status is OrdStatus.FILLED and row.cum_qty == Decimal("0.5") and row.order_id == trade[37]
    assert [e.to_status for e in journal.events(row.order_id) if e.kind == "transition"] == [
        OrdStatus.PENDING_NEW, OrdStatus.NEW, OrdStatus.FILLED]
    swaps = [t for t in journal.transactions_for(row.order_id) if t.purpose == "swap"]
    assert len(swaps) == 1 and swaps[0].tx_hash == tx_hash and swaps[0].status == "mined" and swaps[0].raw_tx.startswith("0x02")
    (fill,) = journal.fills_for(row.order_id)
    assert fill.exec_id == trade[17] and fill.last_qty == Decimal("0.5") and fill.quote_units == paid
    msgs = eventually(lambda: journal.fix_messages(session_id=row.session_id, cl_ord_id=cl_ord_id),
                      lambda msgs: len(msgs) >= 3)
    assert [(m.direction, m.msg_type, m.exec_type) for m in msgs] == [("in", "D", None), ("out", "8", "0"), ("out", "8", "F")]


def test_limit_sell_exact_input(client, devnet, cl_ord_id):
    dep = devnet.deployment
    weth0, usdc0 = balance(devnet.rpc_url, dep.weth, ADDR[1]), balance(devnet.rpc_url, dep.usdc, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.25"), limit=Decimal("2900"), tif=FOK))
    trade = fill_of(client.reports_until_terminal(cl_ord_id))
    assert trade[39] == "2" and Decimal(trade[14]) == Decimal("0.25")
    got = balance(devnet.rpc_url, dep.usdc, ADDR[1]) - usdc0
    assert weth0 - balance(devnet.rpc_url, dep.weth, ADDR[1]) == units("0.25", 18)
    assert got >= units("725", 6)  # at least 0.25 x 2900
    assert Decimal(trade[31]) == (Decimal(got) / 10**6 / Decimal("0.25")).quantize(Decimal("1e-10"))


def test_market_orders_both_sides(client, cl_ord_id):
    for side in (BUY, SELL):
        cid = f"{cl_ord_id}-{side}"
        client.send(new_order_single(cid, "WBTC/USDC", side, Decimal("0.01"), tif=IOC))
        trade = fill_of(client.reports_until_terminal(cid))
        assert trade[39] == "2" and Decimal(trade[32]) == Decimal("0.01")
        assert Decimal("59000") < Decimal(trade[31]) < Decimal("61000")


def test_cash_order_qty_spends_exact_quote(client, devnet, cl_ord_id):
    dep = devnet.deployment
    usdc0 = balance(devnet.rpc_url, dep.usdc, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, cash_qty=Decimal("300"), limit=Decimal("3200"), tif=IOC))
    reports = client.reports_until_terminal(cl_ord_id)
    trade = fill_of(reports)
    assert usdc0 - balance(devnet.rpc_url, dep.usdc, ADDR[1]) == units("300", 6)
    assert trade[152] == "300" and Decimal("0.09") < Decimal(trade[14]) < Decimal("0.1")


def test_cross_pair_wbtc_weth(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WBTC/WETH", SELL, Decimal("0.001"), limit=Decimal("19"), tif=FOK))
    trade = fill_of(client.reports_until_terminal(cl_ord_id))
    assert Decimal("19") <= Decimal(trade[31]) < Decimal("21")


def test_limit_not_met_ends_canceled_without_a_fill(client, journal, devnet, cl_ord_id):
    sent_before = tx_count(devnet.rpc_url, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("1"), limit=Decimal("2000"), tif=FOK,
                                 ex_destination="uniswap_v2"))
    reports = client.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("4", "4")]
    assert reports[-1][14] == "0" and reports[-1][151] == "0"
    assert "EXCESSIVE_INPUT_AMOUNT" in reports[-1][58]
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent_before  # the simulation saved the gas
    row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
    assert row.status is OrdStatus.CANCELED and "EXCESSIVE_INPUT_AMOUNT" in row.text
    assert journal.fills_for(row.order_id) == []


def test_on_chain_revert_front_run(client, journal, devnet, cl_ord_id):
    """The bound holds at simulation, then a swap mined ahead of ours moves the price:
    our transaction reverts on chain and the order ends Canceled with the revert reason."""
    from fixbridge.devnet.deploy import DEPLOYER_KEY
    from eth_account import Account
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel
    import time

    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    dep = devnet.deployment
    # First a small V2 sell with automine on, so the wallet's approval of the V2 router is mined.
    client.send(new_order_single(cl_ord_id + "-warm", "WETH/USDC", SELL, Decimal("0.001"), tif=IOC, ex_destination="uniswap_v2"))
    assert client.reports_until_terminal(cl_ord_id + "-warm")[-1][39] == "2"
    devnet.rpc("evm_setAutomine", [False])
    try:
        # A sell that only fills near the current price.
        quote = w3.eth.call({"to": dep.router, "data": sel("getAmountsOut(uint256,address[])") + encode(
            ["uint256", "address[]"], [10**18, [dep.weth, dep.usdc]])})
        px = Decimal(int.from_bytes(bytes(quote)[-32:], "big")) / 10**6
        client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("1"), limit=(px * Decimal("0.995")).quantize(Decimal("0.01")),
                                     tif=FOK, ex_destination="uniswap_v2"))
        new = client.receive(30, "8")
        assert new[11] == cl_ord_id and new[150] == "0"
        for _ in range(100):  # wait for the bridge's transaction to reach the mempool
            row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
            if [t for t in journal.transactions_for(row.order_id) if t.purpose == "swap" and t.status == "broadcast"]:
                break
            time.sleep(0.05)
        # The front-runner (the deployer) dumps 100 WETH with a higher tip, so it is mined first.
        acct = Account.from_key(DEPLOYER_KEY)
        n = w3.eth.get_transaction_count(acct.address, "pending")
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        for data, to, value in ((sel("deposit()"), dep.weth, 100 * 10**18),
                                (sel("approve(address,uint256)") + encode(["address", "uint256"], [dep.router, 2**256 - 1]), dep.weth, 0),
                         (sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)") + encode(
                             ["uint256", "uint256", "address[]", "address", "uint256"],
                             [100 * 10**18, 0, [dep.weth, dep.usdc], acct.address, 2**40]), dep.router, 0)):
            tx = acct.sign_transaction({"to": to, "data": data, "value": value, "nonce": n, "gas": 300_000, "chainId": 31337,
                                        "maxFeePerGas": 4 * base + 50 * 10**9, "maxPriorityFeePerGas": 50 * 10**9})
            w3.eth.send_raw_transaction(tx.raw_transaction)
            n += 1
        devnet.rpc("evm_mine")
    finally:
        devnet.rpc("evm_setAutomine", [True])
    reports = [new] + client.reports_until_terminal(cl_ord_id)
    assert [(r[150], r[39]) for r in reports] == [("0", "0"), ("4", "4")]
    last = reports[-1]
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in last[58] and last[14] == "0"
    assert w3.eth.get_transaction_receipt(last[20001]).status == 0 and Decimal(last[137]) > 0
    row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
    (tx,) = [t for t in journal.transactions_for(row.order_id) if t.purpose == "swap"]
    assert tx.status == "reverted" and journal.fills_for(row.order_id) == []


def test_deadline_passed_on_chain_ends_expired(client, journal, devnet, cl_ord_id):
    import time
    from datetime import datetime, timedelta, timezone

    devnet.rpc("evm_setAutomine", [False])
    try:
        expire = datetime.now(timezone.utc) + timedelta(seconds=30)
        client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.1"), limit=Decimal("3500"), tif=IOC,
                                     expire_time=expire))
        assert client.receive(30, "8")[150] == "0"
        for _ in range(100):
            row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
            if any(t.purpose == "swap" for t in journal.transactions_for(row.order_id)):
                break
            time.sleep(0.05)
        devnet.rpc("evm_setNextBlockTimestamp", [int(expire.timestamp()) + 60])
        devnet.rpc("evm_mine")
    finally:
        devnet.rpc("evm_setAutomine", [True])
    last = client.reports_until_terminal(cl_ord_id)[-1]
    assert (last[150], last[39]) == ("C", "C") and "EXPIRED" in last[58] and last[14] == "0"


def test_status_request_answers_from_the_journal(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif=IOC))
    trade = fill_of(client.reports_until_terminal(cl_ord_id))
    client.send(order_status_request(cl_ord_id, side=SELL, req_id="Q1"))
    st = client.receive(15, "8")
    assert (st[150], st[39], st[790], st[11], st[37]) == ("I", "2", "Q1", cl_ord_id, trade[37])
    assert st[14] == trade[14] and st[6] == trade[6] and st[20001] == trade[20001]
    client.send(order_status_request("never-sent", req_id="Q2"))
    st = client.receive(15, "8")
    assert (st[150], st[39], st[103], st[790]) == ("I", "8", "5", "Q2")


def test_account_selects_a_bound_wallet(client, devnet, cl_ord_id):
    dep = devnet.deployment
    w3_before = balance(devnet.rpc_url, dep.weth, ADDR[3])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.01"), limit=Decimal("3500"), tif=IOC, account="w3"))
    trade = fill_of(client.reports_until_terminal(cl_ord_id))
    assert trade[1] == "w3"
    assert balance(devnet.rpc_url, dep.weth, ADDR[3]) - w3_before == units("0.01", 18)


def test_exact_approval_policy_approves_each_order_amount(client_factory, journal, devnet, cl_ord_id):
    c = client_factory("CLIENT3")
    for i in (1, 2):
        cid = f"{cl_ord_id}-{i}"
        c.send(new_order_single(cid, "WBTC/WETH", BUY, Decimal("0.002"), limit=Decimal("25"), tif=IOC))
        fill_of(c.reports_until_terminal(cid))
        row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", cid)
        (appr,) = journal.approvals_for(row.order_id)  # each order approves its own amount
        assert appr.policy == "exact" and appr.amount_units == units("0.05", 18)  # 0.002 x 25 WETH, the max input
        assert appr.token == devnet.deployment.weth and appr.spender == devnet.deployment.router
        assert any(e.kind == "approval" for e in journal.events(row.order_id))
