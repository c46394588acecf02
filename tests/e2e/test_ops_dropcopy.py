"""Drop copy: a session configured with `drop_copy_for = ["CLIENT1"]` gets a copy of every
ExecutionReport CLIENT1 gets (797=Y, 128=CLIENT1), also the ones sent while it was away (by FIX
resend), and cannot send orders (BusinessMessageReject 380=6)."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from support import FIXBRIDGE, KEYS, BridgeProcess, acceptor_cfg, free_port
from helpers import eventually
from fixbridge.config import ConfigError, load_sessions, load_spec
from fixbridge.fix.client import FixClient, new_order_single

COUNTERPARTIES = """
[wallets.w1]
chain = "devnet"
private_key = "{k1}"

[sessions.CLIENT1]
wallets = ["w1"]

[sessions.DROPCOPY1]
drop_copy_for = ["CLIENT1"]
"""


def _sessions(tmp: Path, text: str) -> Path:
    (tmp / "acceptor.cfg").write_text(acceptor_cfg(("CLIENT1", "DROPCOPY1"), extra="ResetOnLogon=N\n"))
    p = tmp / "counterparties.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("edit, key, words", [
    (lambda s: s.replace('drop_copy_for = ["CLIENT1"]', 'drop_copy_for = ["CLIENT9"]'), "sessions.DROPCOPY1.drop_copy_for",
     "unknown trading session 'CLIENT9'"),
    (lambda s: s.replace('drop_copy_for = ["CLIENT1"]', 'drop_copy_for = ["CLIENT1"]\nwallets = ["w1"]'),
     "sessions.DROPCOPY1.wallets", "trades nothing"),
    (lambda s: s.replace('drop_copy_for = ["CLIENT1"]', ""), "sessions.DROPCOPY1.wallets", "at least one wallet"),
])
def test_drop_copy_config_errors(devnet, tmp_path, edit, key, words):
    with pytest.raises(ConfigError) as e:
        load_sessions(_sessions(tmp_path, edit(COUNTERPARTIES.format(k1=KEYS[1]))), load_spec(devnet.spec_path))
    assert e.value.key == key and words in e.value.problem


@pytest.fixture(scope="module")
def dc_bridge(devnet, tmp_path_factory):
    d = tmp_path_factory.mktemp("dropcopy")
    sessions = _sessions(d, COUNTERPARTIES.format(k1=KEYS[1]))
    port = free_port()
    url = f"sqlite:///{d / 'journal.db'}"
    b = BridgeProcess(FIXBRIDGE + ["run", "--no-devnet", "--spec", str(devnet.spec_path), "--sessions", str(sessions),
                                   "--journal", url, "--state-dir", str(d / "var"), "--port", str(port)], port, url, d)
    b.start()
    yield b
    b.stop()


def test_drop_copy_gets_every_report_and_cannot_trade(dc_bridge, tmp_path):
    from fixbridge.journal import Journal
    trader = FixClient("127.0.0.1", dc_bridge.port, "CLIENT1", "FIXBRIDGE", data_dir=tmp_path / "c1").start()
    copy = FixClient("127.0.0.1", dc_bridge.port, "DROPCOPY1", "FIXBRIDGE", data_dir=tmp_path / "dc").start()
    try:
        trader.send(new_order_single("DC-1", "WETH/USDC", "1", Decimal("0.1"), limit=Decimal("3200"), tif="3",
                                     ex_destination="uniswap_v2"))
        mine = trader.reports_until_terminal("DC-1")
        copies = copy.reports_until_terminal("DC-1")
        assert [(r[150], r[39]) for r in mine] == [("0", "0"), ("F", "2")]
        assert [(c[150], c[39]) for c in copies] == [("0", "0"), ("F", "2")]
        for r, c in zip(mine, copies):
            assert c[797] == "Y" and c[128] == "CLIENT1" and 797 not in r.fields
            for tag in (37, 11, 17, 14, 151, 6, 38, 54, 55):
                assert c[tag] == r[tag], tag
        assert copies[1][32] == mine[1][32] and copies[1][31] == mine[1][31] and copies[1][20001] == mine[1][20001]

        # the drop copy session cannot trade: BusinessMessageReject, no order, no report
        copy.send(new_order_single("DC-X", "WETH/USDC", "1", Decimal("0.1"), limit=Decimal("3200"), tif="3"))
        rej = copy.receive(15, "j")
        assert rej[380] == "6" and rej[372] == "D" and "drop copy" in rej[58]
        j = Journal(dc_bridge.journal_url)
        try:
            assert j.find_order("FIX.4.4:FIXBRIDGE->DROPCOPY1", "DC-X") is None
            copied = eventually(lambda: j.fix_messages(session_id="FIX.4.4:FIXBRIDGE->DROPCOPY1", direction="out",
                                                       msg_type="8"), lambda c: len(c) >= 2)
            assert [m.exec_type for m in copied] == ["0", "F"] and all("|797=Y|" in m.raw for m in copied)
        finally:
            j.close()

        # away: the copies wait in the QuickFIX store and arrive by resend when it logs on again
        copy.stop()
        trader.send(new_order_single("DC-2", "WETH/USDC", "2", Decimal("0.1"), limit=Decimal("2500"), tif="3",
                                     ex_destination="uniswap_v2"))
        assert [r[150] for r in trader.reports_until_terminal("DC-2")] == ["0", "F"]
        copy = FixClient("127.0.0.1", dc_bridge.port, "DROPCOPY1", "FIXBRIDGE", data_dir=tmp_path / "dc",
                         reset_seq=False).start()
        late = copy.reports_until_terminal("DC-2")
        assert [(c[150], c[797], c[128]) for c in late] == [("0", "Y", "CLIENT1"), ("F", "Y", "CLIENT1")]
    finally:
        trader.stop()
        copy.stop()
