"""Application-level fuzzing: NewOrderSingle, OrderCancelRequest and OrderStatusRequest with hostile
field values (huge, negative, zero, NaN/Infinity, overlong, unicode, wrong types, missing and
undefined tags) sent through a real QuickFIX initiator to the real bridge on a real devnet.

Every case must end in a clear reject the client can read — a session Reject (35=3), a
BusinessMessageReject (35=j), an OrderCancelReject (35=9) or an ExecutionReport with OrdStatus 8 —
with a Text (58). Afterwards: no transaction left any wallet (nonces unchanged), every inbound
message is in the journal (or its session Reject is), no order is left without a terminal status
and a report of it, and the bridge process is still up.

CLIENT2 trades from wallet #2, which holds ETH but no tokens: even an order the fuzzer happens
to make valid cannot be funded, so "no transaction" is a hard guarantee, not luck.
"""
from __future__ import annotations

import collections
import os
import time
import uuid
from datetime import datetime, timezone

import pytest
import quickfix as fix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import ADDR
from fixbridge.fix.translate import utc_timestamp
from helpers import eventually, tx_count

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT2"
MAX_EXAMPLES = int(os.environ.get("FIXBRIDGE_FUZZ_EXAMPLES", "150"))  # ~150: well under a minute

NASTY = [
    "", "0", "-0", "00", "-1", "+1", "1e5", "1E-400", "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf",
    "0x1f", "1_000", " 1", "1 ", "\uff11", "\u0661", "0." + "0" * 40 + "1", "9" * 100, "9" * 60 + "." + "9" * 60,
    "1.2.3", "--1", "1,5", ".", "-.", "null", "None", "true", "\u202e", "\U0001f4a5", "\u03a9", "' OR 1=1 --",
    "%s%n%x", "\\", "\x7f", "\x00", "=", "8=FIX.4.4", "10=000", "-99999999999999999999", "0.000000000000000001",
    "1e308", "4.9e-324", "18446744073709551616", "-2147483649", "2147483648", "WETH/USDC", "WBTC/WETH", "1", "2",
    "3", "4", "C", "uniswap_v2", "w1", "w2", "20991231-23:59:59", "20000101-00:00:00", "99999999-99:99:99",
]
text = st.text(alphabet=st.characters(blacklist_characters="\x01", blacklist_categories=("Cs",)), max_size=30)
values = st.one_of(
    st.sampled_from(NASTY),
    text,
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet="0123456789.-+eE", min_size=1, max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from(["A", "9", "\u00e9", "\U0001f4a5", "0"]), st.integers(200, 3000)),
)
# Values that pass QuickFIX's type checks, so the bridge's own validation, routing, quoting and
# funding code gets them (most of the time a typed value is drawn; sometimes anything at all).
decimal_text = st.one_of(
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.decimals(min_value=-10**15, max_value=10**15, allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
    st.sampled_from(["0", "-0", "0.0", "00.000", "1" + "0" * 40, "0." + "0" * 30 + "1", "9" * 60 + "." + "9" * 30,
                     "0.01", "0.000001", "0.0000001", "1000000", "-0.01", "3000", "0.1"]),
)
timestamp = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 31)).map(
        lambda d: d.strftime("%Y%m%d-%H:%M:%S")),
    st.sampled_from(["20000101-00:00:00.000", "29991231-23:59:59.999"]),
)
TYPED = {
    38: decimal_text, 152: decimal_text, 44: decimal_text, 202: decimal_text,
    54: st.sampled_from(list("123456789ABCDEFG")), 40: st.sampled_from(list("123456789ABCDEGHIJKP")),
    59: st.sampled_from(list("01234567")), 201: st.sampled_from(["0", "1"]),
    60: timestamp, 126: timestamp,
    167: st.sampled_from(["OPT", "CS", "FUT", "FOR"]), 200: st.sampled_from(["202612", "209901", "000000"]),
    11: st.one_of(text.filter(bool), st.sampled_from(NASTY).filter(bool)),
    41: st.one_of(text.filter(bool), st.sampled_from(["fz-nothing", "x"])),
}
FIELDS = {
    "D": [11, 55, 54, 38, 152, 44, 40, 59, 1, 100, 126, 60, 167, 200, 201, 202],
    "F": [11, 41, 37, 55, 54, 60, 38],
    "H": [11, 37, 790, 55, 54],
}
EXTRA_TAGS = [9999, 5001, 20001, 262, 453, 58, 7, 35]


@st.composite
def cases(draw):
    msg_type = draw(st.sampled_from(["D", "D", "D", "F", "H"]))
    cl = f"fz-{uuid.uuid4().hex[:12]}"
    base = {
        "D": {11: cl, 55: "WETH/USDC", 54: draw(st.sampled_from(["1", "2"])), 40: "2", 59: "3", 38: "0.01",
              44: "3000"},
        "F": {11: cl, 41: draw(st.sampled_from(["fz-nothing", cl, "x"])), 55: "WETH/USDC", 54: "1"},
        "H": {11: draw(st.sampled_from([cl, "fz-nothing"])), 55: "WETH/USDC", 54: "1"},
    }[msg_type]
    if msg_type in ("D", "F"):
        base[60] = utc_timestamp(datetime.now(timezone.utc))
    if draw(st.booleans()):  # well-typed but hostile: reaches the bridge's own checks
        tag_values = st.sampled_from(FIELDS[msg_type]).flatmap(
            lambda t: st.tuples(st.just(t), TYPED.get(t, text.filter(bool))))
    else:                    # anything: missing tags, wrong types, garbage
        tag_values = st.sampled_from(FIELDS[msg_type]).flatmap(
            lambda t: st.tuples(st.just(t), st.one_of(values, st.none(), *([TYPED[t]] if t in TYPED else []))))
    mutations = draw(st.lists(tag_values, min_size=1, max_size=4))
    fields = dict(base)
    for tag, value in mutations:
        if value is None:
            fields.pop(tag, None)
        else:
            fields[tag] = value
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(EXTRA_TAGS))] = draw(values)
    return msg_type, fields


def build(msg_type: str, fields: dict[int, str]) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(msg_type))
    for tag, value in fields.items():
        if tag == 35:
            continue
        m.setField(fix.StringField(tag, value))
    return m


def answer_to(client, msg_type: str, fields: dict[int, str], seq: str, timeout: float = 20.0):
    """The message that answers the one sent with MsgSeqNum `seq`."""
    cl = fields.get(11)
    end = time.monotonic() + timeout
    while True:
        m = client.receive(max(0.1, end - time.monotonic()))
        if m.msg_type in ("3", "j") and m.get(45) == seq:
            return m
        if m.msg_type in ("8", "9") and cl is not None and m.get(11) == cl:
            return m


def test_fuzz_orders(bridge, journal, client_factory, devnet, record_property):
    client = client_factory("CLIENT2")
    nonces = {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR}
    started = datetime.now(timezone.utc)
    stats: collections.Counter = collections.Counter()
    sent: list[tuple[int, str, dict]] = []

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(case=cases())
    def one(case):
        msg_type, fields = case
        client.drain()
        msg = build(msg_type, fields)
        client.send(msg)
        seq = msg.getHeader().getField(34)
        sent.append((int(seq), msg_type, fields))
        a = answer_to(client, msg_type, fields, seq)
        stats["cases"] += 1
        stats[f"{msg_type}->{a.msg_type}"] += 1
        assert a.get(58), f"no Text in {a.raw!r}"
        if a.msg_type == "3":
            assert a.get(373) is not None
        elif a.msg_type == "8":
            assert a[39] == "8" and a.get(103) is not None, a.raw
        elif a.msg_type == "9":
            assert msg_type == "F" and a.get(102) in ("0", "1"), a.raw
        else:
            assert a.msg_type == "j" and a.get(380) is not None, a.raw
        assert bridge.proc.poll() is None, "the bridge died"

    t0 = time.monotonic()
    one()
    elapsed = time.monotonic() - t0
    print(f"\nfuzz: {stats['cases']} cases in {elapsed:.1f}s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k != "cases"))
    record_property("fuzz_cases", stats["cases"])
    assert stats["cases"] >= MAX_EXAMPLES * 0.9

    # nothing reached the chain, from any wallet
    assert {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR} == nonces

    # every order the fuzzing made ends terminal, with its terminal report journaled as sent
    end = time.monotonic() + 20
    while any(o.session_id == SESSION for o in journal.open_orders()) and time.monotonic() < end:
        time.sleep(0.2)
    assert [o.order_id for o in journal.open_orders() if o.session_id == SESSION] == []
    assert [o.order_id for o in journal.unreported_terminal_orders(started) if o.session_id == SESSION] == []
    for o in (journal.find_order(SESSION, f[11]) for _, t, f in sent if t == "D" and isinstance(f.get(11), str)):
        if o is not None:
            assert o.status.terminal and all(tx.status == "failed" for tx in journal.transactions_for(o.order_id))

    # every inbound message is journaled, or the session Reject that answered it is
    def unanswered():
        ins = {m.seq_num for m in journal.fix_messages(session_id=SESSION, direction="in")}
        rejects = {m.raw.split("|45=")[1].split("|")[0] for m in journal.fix_messages(session_id=SESSION, direction="out",
                                                                                     msg_type="3") if "|45=" in m.raw}
        return [(s, t) for s, t, _ in sent if s not in ins and str(s) not in rejects]
    missing = eventually(unanswered, lambda m: m == [])
    assert missing == []
    assert bridge.proc.poll() is None
