"""Hostile input at the session level, over a raw socket: garbled bytes, bad CheckSum and
BodyLength, sequence numbers too high and too low, missing tags, wrong types, bad enums,
undefined tags, broken repeating groups, a wrong CompID. Each gets the answer FIX prescribes
(ignored / ResendRequest / Logout / session Reject with the right SessionRejectReason), nothing
reaches the chain, and another session keeps trading-desk service (status requests answered)
the whole time."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from support import ADDR
from fixbridge.fix.client import order_status_request
from helpers import eventually, tx_count
from security_support import RawFix, utc_now

pytestmark = pytest.mark.e2e
RAW = "CLIENT3"


@pytest.fixture(scope="module")
def other_session(client_factory):
    """CLIENT1 asks for an order status every 0.2 s while the hostile tests run; all must be answered."""
    c = client_factory("CLIENT1")
    stats = {"sent": 0, "answered": 0, "slowest": 0.0, "errors": []}
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                c.send(order_status_request(f"probe-{uuid.uuid4().hex[:8]}", req_id="probe"))
                stats["sent"] += 1
                c.receive(10, "8")
                stats["answered"] += 1
                stats["slowest"] = max(stats["slowest"], time.monotonic() - t0)
            except Exception as e:  # recorded, asserted at the end
                stats["errors"].append(repr(e))
            stop.wait(0.2)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield stats
    stop.set()
    t.join(15)
    assert stats["errors"] == [] and stats["answered"] == stats["sent"] > 10, stats
    assert stats["slowest"] < 5, stats


@pytest.fixture
def no_tx(devnet):
    before = {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR}
    yield
    assert {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR} == before


@pytest.fixture
def raw(bridge, other_session, no_tx):
    """A logged-on raw session as CLIENT3; logged out (or found closed) afterwards."""
    r = RawFix(bridge.port, RAW)
    ack = r.logon()
    assert ack.type == "A", ack.raw
    yield r
    if not r.eof:
        try:
            r.send("5")
            r.recv_until(lambda m: m.type == "5", 5)
        except Exception:
            pass
    r.close()
    time.sleep(0.2)  # let the acceptor see the disconnect before the next test logs on


def alive(r: RawFix) -> None:
    """The session still answers: a TestRequest gets its Heartbeat."""
    tid = f"T{uuid.uuid4().hex[:6]}"
    r.send("1", [(112, tid)])
    hb = r.recv_until(lambda m: m.type == "0" and m.get(112) == tid, 10, skip=())
    assert hb[112] == tid


def session_reject(r: RawFix, seq: int) -> "Msg":  # noqa: F821
    return r.recv_until(lambda m: m.type == "3" and m.get(45) == str(seq), 10)


def nos(cl: str, over: dict | None = None) -> list[tuple[int, str]]:
    f = {11: cl, 55: "WETH/USDC", 54: "1", 60: utc_now(), 40: "1", 59: "3", 38: "0.01"}
    f.update(over or {})
    return [(t, v) for t, v in f.items() if v is not None]


def swallowed_then_recovered(raw: RawFix) -> None:
    """Garbage that looked like the start of a message swallowed the next real one. FIX recovers
    through the sequence gap: the message after it gets a ResendRequest for the lost MsgSeqNum."""
    lost = raw.send("1", [(112, "lost")])
    assert [m for m in raw.expect_silence(1.0) if m.type == "0" and m.get(112) == "lost"] == []
    raw.send("1", [(112, "next")])
    rr = raw.recv_until(lambda m: m.type == "2", 10)
    assert rr[7] == str(lost), rr.raw
    raw.send("4", [(123, "Y"), (36, str(raw.seq))], seq=lost, advance=False, header=[(43, "Y"), (122, utc_now())])
    alive(raw)


def test_garbage_bytes_are_ignored(raw):
    raw.send_bytes(b"\x00\xff garbage that is not FIX at all \x01\x01=\x01" * 50)
    assert [m for m in raw.expect_silence(1.0) if m.type != "0"] == []
    alive(raw)


def test_broken_header_is_ignored_and_the_gap_recovered(raw):
    raw.send_bytes(b"8=FIX.4.4\x01 9=abc\x0135=D\x01")  # a start of message with no valid BodyLength
    swallowed_then_recovered(raw)


def test_bad_checksum_is_ignored_and_its_seqnum_not_used(raw, journal):
    seq = raw.seq
    bad = raw.build("D", nos(f"badsum-{seq}"), seq=seq, check="000")
    raw.send_bytes(bad)
    assert [m for m in raw.expect_silence(1.0) if m.type != "0"] == []
    alive(raw)  # sent with the same MsgSeqNum: the garbled message did not consume it
    assert journal.find_order(f"FIX.4.4:FIXBRIDGE->{RAW}", f"badsum-{seq}") is None


@pytest.mark.parametrize("delta", [-5, +40])
def test_bad_body_length_is_ignored(raw, journal, delta):
    seq = raw.seq
    good = raw.build("D", nos(f"badlen-{seq}"), seq=seq)
    n = int(good.split(b"\x019=")[1].split(b"\x01")[0])
    raw.send_bytes(raw.build("D", nos(f"badlen-{seq}"), seq=seq, body_length=n + delta))
    if delta > 0:  # the acceptor waits for the bytes BodyLength promised: give them, as junk
        raw.send_bytes(b"x" * delta)
        swallowed_then_recovered(raw)  # it read past the message's end into the next one
    else:
        assert [m for m in raw.expect_silence(1.0) if m.type not in ("0", "1")] == []
        alive(raw)  # the same MsgSeqNum again: the garbled message did not use it
    assert journal.find_order(f"FIX.4.4:FIXBRIDGE->{RAW}", f"badlen-{seq}") is None


def test_seqnum_too_high_gets_resend_request(raw):
    expected = raw.seq
    raw.send("1", [(112, "gap")], seq=expected + 5)
    rr = raw.recv_until(lambda m: m.type == "2", 10)
    assert rr[7] == str(expected) and rr[16] in ("0", str(expected + 4))
    # fill the gap as FIX says: a SequenceReset-GapFill for the missing range
    raw.send("4", [(123, "Y"), (36, str(expected + 6))], seq=expected, header=[(43, "Y"), (122, utc_now())])
    raw.seq = expected + 6
    alive(raw)


def test_seqnum_too_low_gets_logout_and_disconnect(raw, journal):
    raw.send("1", [(112, "old")], seq=1)  # 1 was the Logon
    lo = raw.recv_until(lambda m: m.type == "5", 10)
    assert "MsgSeqNum too low" in lo[58], lo.raw
    assert raw.closed_by_peer(10)
    out = eventually(lambda: journal.fix_messages(session_id=f"FIX.4.4:FIXBRIDGE->{RAW}", direction="out", msg_type="5"),
                     lambda out: any("MsgSeqNum too low" in m.raw for m in out))
    assert any("MsgSeqNum too low" in m.raw for m in out)  # the reason is journaled


@pytest.mark.parametrize("fields, tag, reason", [
    (nos("missing-side", {54: None}), 54, "1"),            # required tag missing
    (nos("bad-qty", {38: "lots"}), 38, "6"),               # incorrect data format
    (nos("bad-time", {60: "yesterday"}), 60, "6"),
    (nos("bad-price", {40: "2", 44: "1,5"}), 44, "6"),
    (nos("bad-side", {54: "Z"}), 54, "5"),                 # value out of range
    (nos("bad-ordtype", {40: "#"}), 40, "5"),
    (nos("bad-tif", {59: "Q"}), 59, "5"),
    (nos("undef-tag") + [(9999, "x")], 9999, "0"),           # invalid tag number
    (nos("empty-value", {1: ""}), 1, "4"),                  # tag without a value
    (nos("dup-tag") + [(55, "WBTC/USDC")], 55, "13"),        # tag appears more than once
    (nos("wrong-tag") + [(262, "X")], 262, "2"),             # tag not defined for this message type
])
def test_malformed_new_order_gets_session_reject(raw, journal, fields, tag, reason):
    seq = raw.send("D", fields)
    rej = session_reject(raw, seq)
    assert (rej.get(371), rej[372], rej[373]) == (str(tag), "D", reason), rej.raw
    assert rej.get(58)
    cl = dict(fields).get(11)
    assert journal.find_order(f"FIX.4.4:FIXBRIDGE->{RAW}", cl) is None  # nothing became an order
    out = eventually(lambda: journal.fix_messages(session_id=f"FIX.4.4:FIXBRIDGE->{RAW}", direction="out", msg_type="3"),
                     lambda out: any(m.seq_num is not None and f"|45={seq}|" in m.raw for m in out))
    assert any(m.seq_num is not None and f"|45={seq}|" in m.raw for m in out)  # the Reject is journaled
    alive(raw)


def test_missing_conditionally_required_field_gets_business_reject(raw, journal):
    """Symbol (55) sits in the Instrument component: the dictionary cannot require it, the bridge does."""
    seq = raw.send("D", nos("no-symbol", {55: None}))
    j = raw.recv_until(lambda m: m.type == "j" and m.get(45) == str(seq), 10)
    assert (j[372], j[380]) == ("D", "5") and "55" in j[58]
    assert journal.find_order(f"FIX.4.4:FIXBRIDGE->{RAW}", "no-symbol") is None
    alive(raw)


@pytest.mark.parametrize("group, reasons", [
    ([(453, "2"), (448, "P1"), (447, "D"), (452, "1")], {"16"}),         # NoPartyIDs=2, one entry
    ([(453, "1"), (447, "D"), (448, "P1"), (452, "1")], {"15", "16"}),   # delimiter (448) not first
    ([(453, "x"), (448, "P1")], {"6"}),                                  # NumInGroup not a number
])
def test_bad_repeating_group_gets_session_reject(raw, journal, group, reasons):
    fields = nos(f"grp-{raw.seq}")
    seq = raw.send("D", fields[:1] + group + fields[1:])
    rej = session_reject(raw, seq)
    assert rej[373] in reasons and rej[371] == "453", rej.raw
    assert journal.find_order(f"FIX.4.4:FIXBRIDGE->{RAW}", f"grp-{seq}") is None
    alive(raw)


def test_undefined_message_type_gets_session_reject(raw):
    seq = raw.send("ZZ", [(58, "what is this")])
    rej = session_reject(raw, seq)
    assert rej[373] == "11" and rej[372] == "ZZ"  # invalid MsgType
    alive(raw)


def test_wrong_comp_id_gets_reject_and_logout(raw):
    raw.send("1", [(112, "spoof")], sender="SOMEONE-ELSE")
    got = []
    while not raw.eof:
        try:
            got.append(raw.recv(5))
        except TimeoutError:
            break
    types = [m.type for m in got]
    assert "3" in types and "5" in types, [m.raw for m in got]
    rej = next(m for m in got if m.type == "3")
    assert rej[373] == "9"  # CompID problem
    assert raw.closed_by_peer(10)


def test_message_before_logon_is_not_served(bridge):
    with RawFix(bridge.port, "CLIENT4") as r:
        r.send("D", nos("before-logon"))
        assert r.closed_by_peer(10)  # the first message must be a Logon: the acceptor hangs up


def test_unknown_comp_id_cannot_log_on(bridge):
    with RawFix(bridge.port, "MALLORY") as r:
        r.send("A", [(98, "0"), (108, "30"), (141, "Y")])
        assert r.closed_by_peer(10)


def test_flood_of_garbage_then_service_continues(bridge, other_session):
    """Megabytes of junk on one connection do not stop the acceptor or the other session."""
    with RawFix(bridge.port, "CLIENT4") as r:
        try:
            for _ in range(64):
                r.send_bytes(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01" + b"\xab" * 16384)
        except OSError:
            pass  # the acceptor may hang up on us: that is fine
    assert bridge.proc.poll() is None
    with RawFix(bridge.port, "CLIENT4") as r:
        assert r.logon().type == "A"
        alive(r)
        r.send("5")
        r.recv_until(lambda m: m.type == "5", 5)
