"""Options at expiry: the oracle settles a series on chain; the bridge redeems what its wallets hold,
takes back the collateral of what they wrote, and tells each session with a PositionReport.
Its own devnet: the chain's clock is moved past the expiry."""
from __future__ import annotations

from decimal import Decimal

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as sel
from web3 import Web3

from support import ADDR, start_bridge, start_devnet
from fixbridge.config import load_spec
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from helpers import balance, eventually

pytestmark = pytest.mark.e2e
SERIES = "ETH-20261231-3000-C"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("expiry"))
    yield net
    net.anvil.stop()


@pytest.fixture(scope="module")
def bridge(chain, sessions_dir, tmp_path_factory):
    b = start_bridge([chain.spec_path], sessions_dir / "counterparties.toml", tmp_path_factory.mktemp("expiry-bridge"))
    yield b
    b.stop()


def test_settlement_at_expiry_reaches_holders_and_writers(bridge, chain, tmp_path):
    from fixbridge.devnet.deploy import DEPLOYER_KEY

    spec = load_spec(chain.spec_path)
    ins = spec.instruments[SERIES]
    rpc, dep = chain.rpc_url, chain.deployment
    w3 = Web3(Web3.HTTPProvider(rpc))
    holder = FixClient("127.0.0.1", bridge.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c1").start()
    writer = FixClient("127.0.0.1", bridge.port, "CLIENT3", "FIXBRIDGE", data_dir=tmp_path / "c3").start()
    try:
        writer.send(new_order_single("open-1", SERIES, "2", Decimal("15"), limit=Decimal("1"), tif="4"))
        assert writer.reports_until_terminal("open-1")[-1][39] == "2"  # holds 10, writes 15
        before = {a: balance(rpc, dep.weth, ADDR[a]) for a in (1, 3)}
        # Past the expiry, the oracle settles at 3300: the 3000 call is worth 300/3300 WETH a token.
        expiry = int(w3.eth.get_block("latest")["timestamp"])
        chain.rpc("evm_setNextBlockTimestamp", [max(expiry, 1798704000) + 60])
        chain.rpc("evm_mine")
        oracle = Account.from_key(DEPLOYER_KEY)
        tx = oracle.sign_transaction({"to": spec.options_markets["options"].address, "nonce": w3.eth.get_transaction_count(oracle.address),
                                      "data": sel("settle(uint256,uint256)") + encode(["uint256", "uint256"], [ins.series_id, 3300 * 10**6]),
                                      "gas": 200_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "chainId": 31337})
        assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction)).status == 1
        # CLIENT1 is bound to w1 and w3, so it hears of both wallets, in whichever order their
        # workers finish; CLIENT3 only of w3.
        h = holder.receive(60, "AP")
        if h[1] != "w1":
            h = holder.receive(60, "AP")
        wr = writer.receive(60, "AP")
    finally:
        holder.stop()
        writer.stop()
    # The holder redeemed its 10 tokens for 10 x 300/3300 WETH, rounded down to the wei.
    assert (h[325], h[55], h[730], h[731], h[704], h[705]) == ("Y", SERIES, "3300", "1", "10", "0")
    paid = (10 * 10**18 * 300) // 3300
    assert Decimal(h[708]) == Decimal(paid) / 10**18
    assert balance(rpc, dep.weth, ADDR[1]) - before[1] == paid
    assert balance(rpc, spec.tokens[SERIES].address, ADDR[1]) == 0
    # The writer also held 10 (redeemed) and wrote 15: it gets back 15 less what it owes, rounded up.
    owed = -((-15 * 10**18 * 300) // 3300)
    got = paid + 15 * 10**18 - owed
    assert (wr[704], wr[705]) == ("10", "15") and Decimal(wr[708]) == Decimal(got) / 10**18
    assert balance(rpc, dep.weth, ADDR[3]) - before[3] == got
    j = Journal(bridge.journal_url)
    try:
        assert j.pending_transactions() == []  # the redeem and release transactions were mined
        out = eventually(lambda: j.fix_messages(direction="out", msg_type="AP"), lambda out: len(out) >= 2)
        assert len(out) >= 2 and all("settled at 3300" in m.raw for m in out)
    finally:
        j.close()
