"""One session, two chains: an instrument names the chain it trades on, and the bridge sends each
order from the session's wallet on that chain, in one run."""
from __future__ import annotations

from decimal import Decimal

import pytest

from support import ADDR, KEYS, acceptor_cfg, start_bridge
from fixbridge.fix.client import FixClient, new_order_single
from helpers import balance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    from fixbridge.devnet.anvil import Anvil
    from fixbridge.devnet.deploy import deploy_devnet
    from fixbridge.devnet.second_chain import SECOND_CHAIN_ID, write_second_spec

    d = tmp_path_factory.mktemp("chain2")
    node = Anvil("127.0.0.1", 0, chain_id=SECOND_CHAIN_ID, log_path=d / "anvil.log").start()
    dep = deploy_devnet(node.rpc_url, fund=[ADDR[1]])
    write_second_spec(dep, d / "devnet2.toml")
    yield node, dep, d / "devnet2.toml"
    node.stop()


@pytest.fixture(scope="module")
def bridge2(devnet, second, tmp_path_factory):
    d = tmp_path_factory.mktemp("two-chains")
    (d / "acceptor.cfg").write_text(acceptor_cfg(["CLIENT1"]))
    (d / "counterparties.toml").write_text(
        f'[wallets.a]\nchain = "devnet"\nprivate_key = "{KEYS[1]}"\n'
        f'[wallets.b]\nchain = "devnet2"\nprivate_key = "{KEYS[1]}"\n'
        '[sessions.CLIENT1]\nwallets = ["a", "b"]\n')
    b = start_bridge([devnet.spec_path, second[2]], d / "counterparties.toml", d)
    yield b
    b.stop()


def test_one_session_trades_on_both_chains(bridge2, devnet, second, tmp_path, cl_ord_id):
    node2, dep2, _ = second
    usdc1 = balance(devnet.rpc_url, devnet.deployment.usdc, ADDR[1])
    usdc2 = balance(node2.rpc_url, dep2.usdc, ADDR[1])
    with FixClient("127.0.0.1", bridge2.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c") as c:
        c.send(new_order_single(cl_ord_id + "-1", "WETH/USDC", "2", Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
        c.send(new_order_single(cl_ord_id + "-2", "WETH/USDC:devnet2", "2", Decimal("0.02"), tif="3"))
        one = c.reports_until_terminal(cl_ord_id + "-1")[-1]
        two = c.reports_until_terminal(cl_ord_id + "-2")[-1]
        # An Account on the wrong chain is refused with the reason.
        c.send(new_order_single(cl_ord_id + "-3", "WETH/USDC:devnet2", "2", Decimal("0.02"), tif="3", account="a"))
        wrong = c.reports_until_terminal(cl_ord_id + "-3")[-1]
    assert (one[39], one[20003], one[1] if 1 in one.fields else None) == ("2", "31337", None)
    assert (two[39], two[20003]) == ("2", "31338")
    assert balance(devnet.rpc_url, devnet.deployment.usdc, ADDR[1]) > usdc1
    assert balance(node2.rpc_url, dep2.usdc, ADDR[1]) > usdc2
    assert wrong[39] == "8" and "is on chain devnet; WETH/USDC:devnet2 trades on devnet2" in wrong[58]
