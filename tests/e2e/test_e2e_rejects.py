"""Bad input gets a clear answer and changes nothing: every reject a FIX client can meet,
with the proof that no transaction left any wallet and the journal says why."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import quickfix as fix

from fixbridge.fix.client import new_order_single, order_cancel_request
from fixbridge.orders.model import OrdStatus
from helpers import eventually, tx_count
from support import ADDR

pytestmark = pytest.mark.e2e
BUY, SELL = "1", "2"


@pytest.fixture
def no_tx_sent(devnet):
    """Asserts, after the test, that no wallet of the bridge sent a transaction."""
    before = {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR}
    yield
    assert {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR} == before


def reject_of(client, cl_ord_id):
    reports = client.reports_until_terminal(cl_ord_id)
    assert len(reports) == 1, [r.raw for r in reports]
    r = reports[0]
    assert (r[150], r[39], r[14], r[151]) == ("8", "8", "0", "0")
    return r


def journaled_reject(journal, session, cl_ord_id, reason):
    row = journal.find_order(f"FIX.4.4:FIXBRIDGE->{session}", cl_ord_id)
    assert row.status is OrdStatus.REJECTED and row.rej_reason == reason and row.text
    # Nothing reached the chain; a transaction the node refused is journaled as failed, with why.
    assert all(t.status == "failed" for t in journal.transactions_for(row.order_id))
    return row


@pytest.mark.parametrize("kwargs, reason, words", [
    (dict(symbol="DOGE/USDC", qty=Decimal("1")), 1, "Unknown symbol 'DOGE/USDC'"),
    (dict(qty=Decimal("0")), 13, "OrderQty must be a positive number"),
    (dict(qty=Decimal("-1")), 13, "OrderQty must be a positive number"),
    (dict(qty=Decimal("0.0000000000000000001")), 13, "finer than WETH's 18 decimals"),
    (dict(qty=None, cash_qty=Decimal("10.1234567")), 13, "finer than USDC's 6 decimals"),
    (dict(qty=None), 13, "exactly one of OrderQty (38) or CashOrderQty (152)"),
    (dict(qty=Decimal("1"), cash_qty=Decimal("3000")), 13, "exactly one of OrderQty"),
    (dict(qty=Decimal("1"), ord_type="2"), 99, "Price (44) is required for a limit order"),
    (dict(qty=Decimal("1"), limit=Decimal("-5")), 99, "Price must be positive"),
    (dict(qty=Decimal("1"), account="someone-else"), 15, "Account 'someone-else' is not bound"),
    (dict(qty=Decimal("1"), ex_destination="sushiswap"), 99, "ExDestination 'sushiswap' does not list WETH/USDC"),
    (dict(qty=Decimal("1"), expire_time=datetime.now(timezone.utc) - timedelta(minutes=1)), 4, "has already passed"),
    (dict(side=SELL, qty=Decimal("1000")), 99, "Insufficient balance: wallet w1 holds"),
    (dict(qty=Decimal("100000")), 99, "No venue can quote WETH/USDC for this size (not enough liquidity?): uniswap_v2: no pool can swap"),
])
def test_order_rejected_with_reason(client, journal, no_tx_sent, cl_ord_id, kwargs, reason, words):
    kwargs = {"symbol": "WETH/USDC", "side": BUY, **kwargs}
    client.send(new_order_single(cl_ord_id, kwargs.pop("symbol"), kwargs.pop("side"), kwargs.pop("qty"), tif="3", **kwargs))
    r = reject_of(client, cl_ord_id)
    assert r[103] == str(reason) and words in r[58], r[58]
    row = journaled_reject(journal, "CLIENT1", cl_ord_id, reason)
    assert row.order_id == r[37]
    out = eventually(lambda: journal.fix_messages(session_id=row.session_id, cl_ord_id=cl_ord_id, direction="out"),
                     lambda out: len(out) >= 1)
    assert [(m.msg_type, m.ord_status) for m in out] == [("8", "8")]


@pytest.mark.parametrize("ord_type, tif, words", [
    ("P", "3", "OrdType P (Pegged) is not supported"),
    ("1", "2", "TimeInForce 2 (OPG) is not supported"),
    ("1", "5", "TimeInForce 5 (GTX) is not supported"),
    ("1", "7", "TimeInForce 7 (At the close) is not supported"),
])
def test_unsupported_order_characteristics(client, journal, no_tx_sent, cl_ord_id, ord_type, tif, words):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("1"), tif=tif, ord_type=ord_type,
                                 limit=Decimal("3000") if ord_type == "P" else None))
    r = reject_of(client, cl_ord_id)
    assert r[103] == "11" and words in r[58]
    msgs = eventually(lambda: journal.fix_messages(session_id="FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id=cl_ord_id),
                      lambda msgs: len(msgs) >= 2)
    assert [(m.direction, m.msg_type, m.ord_status) for m in msgs] == [("in", "D", None), ("out", "8", "8")]


@pytest.mark.parametrize("tif, words", [
    ("3", "StopPx (99) is required"),                    # a stop (40=3) without its price
    ("1", "sized in OrderQty (38), not CashOrderQty"),   # a GTC limit by cash
    ("6", "GTD) needs ExpireTime (126) or ExpireDate (432)"),
    ("1-unfunded", "Insufficient balance"),              # a GTC sell of more WETH than the wallet holds
])
def test_resting_orders_refused_with_reason(client, journal, no_tx_sent, cl_ord_id, tif, words):
    if tif == "3":
        m = new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("1"), tif="1", ord_type="3")
    elif tif == "1":
        m = new_order_single(cl_ord_id, "WETH/USDC", BUY, None, cash_qty=Decimal("100"), tif="1", limit=Decimal("3000"))
    elif tif == "1-unfunded":
        m = new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("100000"), tif="1", limit=Decimal("99999"))
    else:
        m = new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("1"), tif="6", limit=Decimal("1000"))
    client.send(m)
    r = reject_of(client, cl_ord_id)
    assert words in r[58], r[58]


def test_missing_time_in_force_is_day_and_a_market_order_trades_at_once(client, cl_ord_id):
    """No TimeInForce (59) is Day; a Day market order trades at once, as on any venue."""
    m = new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"))
    m.removeField(59)
    client.send(m)
    reports = client.reports_until_terminal(cl_ord_id)
    assert [r[150] for r in reports][0] == "0" and reports[-1][39] == "2", [r.raw for r in reports]


def test_duplicate_cl_ord_id_is_rejected_and_sends_nothing(client, journal, devnet, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    first = client.reports_until_terminal(cl_ord_id)
    assert first[-1][39] == "2"
    sent = tx_count(devnet.rpc_url, ADDR[1])
    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    r = reject_of(client, cl_ord_id)
    assert r[103] == "6" and "Duplicate ClOrdID" in r[58] and r[37] == first[-1][37]
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent
    row = journal.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id)
    assert row.status is OrdStatus.FILLED  # the original order is untouched
    ins = journal.fix_messages(session_id=row.session_id, cl_ord_id=cl_ord_id, direction="in")
    assert len(ins) == 2


def test_a_resent_order_gets_its_status_not_a_reject(client, journal, devnet, cl_ord_id):
    """Sent again (PossResend=Y here; QuickFIX itself resends with PossDupFlag=Y when the acceptor asks
    for a message after a restart): the known order's status (150=I), no reject, no second
    transaction. (A QuickFIX initiator strips PossDupFlag from an ordinary send, hence 97.)"""
    import quickfix as fix

    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    first = client.reports_until_terminal(cl_ord_id)
    assert first[-1][39] == "2"
    sent = tx_count(devnet.rpc_url, ADDR[1])
    again = new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3")
    again.getHeader().setField(fix.StringField(97, "Y"))
    client.send(again)
    r = client.receive(30, "8")
    assert (r[11], r[150], r[39], r[37]) == (cl_ord_id, "I", "2", first[-1][37]) and r.get(103) is None
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent


def test_same_cl_ord_id_on_another_session_is_its_own_order(client_factory, cl_ord_id, no_tx_sent):
    c1, c2 = client_factory("CLIENT1"), client_factory("CLIENT2")
    for c in (c1, c2):  # both rejected for their own reasons, neither as a duplicate
        c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("1"), tif="3", ex_destination="nowhere"))
        assert reject_of(c, cl_ord_id)[103] == "99"


def test_insufficient_balance_names_the_token(client_factory, journal, no_tx_sent, cl_ord_id):
    c = client_factory("CLIENT2")  # wallet #2 holds ETH but no tokens
    c.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.1"), limit=Decimal("3100"), tif="3"))
    r = reject_of(c, cl_ord_id)
    assert "Insufficient balance: wallet w2 holds 0 USDC, the order may need 310" in r[58]
    journaled_reject(journal, "CLIENT2", cl_ord_id, 99)


def test_allowance_that_cannot_be_granted(client_factory, journal, devnet, no_tx_sent, cl_ord_id):
    devnet.rpc("anvil_setBalance", [ADDR[4], "0x0"])  # tokens, but no ETH to pay for an approval
    c = client_factory("CLIENT4")
    c.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.1"), tif="3"))
    r = reject_of(c, cl_ord_id)
    assert "Allowance for WETH cannot be granted" in r[58]
    journaled_reject(journal, "CLIENT4", cl_ord_id, 99)


def test_unsupported_message_type_gets_business_reject(client):
    m = fix.Message()
    m.getHeader().setField(fix.MsgType("R"))  # QuoteRequest
    m.setField(fix.StringField(131, "Q-1"))
    g = fix.Group(146, 55)
    g.setField(fix.StringField(55, "WETH/USDC"))
    m.addGroup(g)
    client.send(m)
    r = client.receive(15, "j")
    assert r[372] == "R" and r[380] == "3"


def test_malformed_values_get_session_reject(client, no_tx_sent, cl_ord_id):
    m = new_order_single(cl_ord_id, "WETH/USDC", BUY, None, tif="3")
    m.setField(fix.StringField(38, "lots"))  # not a Qty
    client.send(m)
    r = client.receive(15, "3")
    assert r[371] == "38" and r[373] == "6"  # incorrect data format for value
    m = new_order_single(cl_ord_id + "b", "WETH/USDC", BUY, Decimal("1"), tif="3")
    m.removeField(54)  # Side is required
    client.send(m)
    r = client.receive(15, "3")
    assert r[371] == "54" and r[373] == "1"  # required tag missing


def test_cancel_of_filled_and_unknown_orders_is_rejected(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", BUY, Decimal("0.01"), tif="3"))
    done = client.reports_until_terminal(cl_ord_id)[-1]
    client.send(order_cancel_request(cl_ord_id + "-x", cl_ord_id))
    r = client.receive(15, "9")
    assert (r[41], r[37], r[102], r[39]) == (cl_ord_id, done[37], "0", "2") and "Too late" in r[58]
    client.send(order_cancel_request(cl_ord_id + "-y", "no-such-order"))
    r = client.receive(15, "9")
    assert r[102] == "1" and "Unknown order" in r[58]


def test_bridge_keeps_serving_after_all_that(client, cl_ord_id):
    client.send(new_order_single(cl_ord_id, "WETH/USDC", SELL, Decimal("0.01"), tif="4"))
    assert client.reports_until_terminal(cl_ord_id)[-1][39] == "2"
