"""Strict FIX on the wire (issue 13): every message type the bridge sends, built by the bridge's own
builders with every optional group present, serialised as the session sends it and checked against
specs/FIX44.xml (and, for a FIX 4.2 session, specs/FIX42.xml) twice:

- by QuickFIX's DataDictionary (header/body/trailer placement, values, required fields, user-defined
  tags, group counts); it does not look at the order of the fields inside a group entry, and its
  parser takes them in any order, so
- by a strict reader written here from the XML: a group entry starts with its delimiter, and a field
  is taken only after the fields the definition puts before it; one that comes late is dropped, as a
  strict engine drops it (a SecurityList entry written 55,15,107,167,... arrives as Symbol and
  Currency only).

Unit-level: no chain, no acceptor.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as fix44

from fixbridge.config import load_spec
from fixbridge.engine.positions import Position
from fixbridge.engine.settlement import SettlementReport
from fixbridge.fix import dialects, mass, refdata
from fixbridge.fix import translate as t
from fixbridge.orders.model import (ExecEvent, ExecutionReport, Order, OrdStatus, OrdType, RejectReason, Side,
                                    TimeInForce)
from fixbridge.orders.units import fmt

ROOT = Path(__file__).resolve().parents[2]
DICTIONARY = ROOT / "specs" / "FIX44.xml"
SPECS = [ROOT / "specs" / "devnet.toml", ROOT / "specs" / "devnet2.toml"]
CALL = "ETH-20261231-3000-C"


# ---- the dictionary's definition order --------------------------------------------------------

@dataclass
class Layout:
    """The fields of a message section or of a group entry, in definition order (components
    expanded); a nested group is one position, its count tag, with its own layout."""
    position: dict[int, int] = field(default_factory=dict)
    groups: dict[int, "GroupLayout"] = field(default_factory=dict)


@dataclass
class GroupLayout(Layout):
    count: int = 0
    delim: int = 0


@dataclass
class Dictionary:
    header: Layout
    trailer: Layout
    messages: dict[str, Layout]
    names: dict[int, str]

    def name(self, tag: int) -> str:
        return f"{self.names.get(tag, '?')} ({tag})"


def load_dictionary(path: Path) -> Dictionary:
    root = ET.parse(path).getroot()
    numbers = {f.get("name"): int(f.get("number")) for f in root.find("fields")}
    components = {c.get("name"): c for c in root.find("components")}

    def items(node: ET.Element) -> list[int | GroupLayout]:
        out: list[int | GroupLayout] = []
        for child in node:
            if child.tag == "field":
                out.append(numbers[child.get("name")])
            elif child.tag == "component":
                out.extend(items(components[child.get("name")]))
            elif child.tag == "group":
                inner = items(child)
                first = inner[0]
                g = GroupLayout(count=numbers[child.get("name")],
                                delim=first if isinstance(first, int) else first.count)
                fill(g, inner)
                out.append(g)
        return out

    def fill(layout: Layout, members: list[int | GroupLayout]) -> Layout:
        for m in members:
            tag = m if isinstance(m, int) else m.count
            layout.position.setdefault(tag, len(layout.position))
            if isinstance(m, GroupLayout):
                layout.groups[tag] = m
        return layout

    return Dictionary(header=fill(Layout(), items(root.find("header"))),
                      trailer=fill(Layout(), items(root.find("trailer"))),
                      messages={m.get("msgtype"): fill(Layout(), items(m)) for m in root.find("messages")},
                      names={n: name for name, n in numbers.items()})


DD = load_dictionary(DICTIONARY)
DICTIONARY_42 = ROOT / "specs" / "FIX42.xml"
DD42 = load_dictionary(DICTIONARY_42)


# ---- a strict reader of the raw tag=value sequence --------------------------------------------

Entry = dict  # tag -> value, or -> list[Entry] for a group's count tag


@dataclass
class Reading:
    header: Entry
    body: Entry
    trailer: Entry
    problems: list[str]


def tokens(raw: str) -> list[tuple[int, str]]:
    return [(int(k), v) for k, v in (p.split("=", 1) for p in raw.split("\x01") if p)]


def _group(toks: list[tuple[int, str]], i: int, g: GroupLayout, declared: str, where: str,
           problems: list[str], DD: Dictionary = DD) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    last = -1
    while i < len(toks):
        tag, value = toks[i]
        if tag == g.delim:
            entries.append({})
            last = -1
        elif tag not in g.position:
            break  # not a field of this group: the group is over
        elif not entries:
            problems.append(f"{where}: the entry starts with {DD.name(tag)}, not its delimiter {DD.name(g.delim)}")
            break
        here = f"{where}[{len(entries)}]"
        pos = g.position[tag]
        keep = pos > last
        if keep:
            entries[-1][tag] = value
            last = pos
        else:
            prev = next(tg for tg, p in g.position.items() if p == last)
            problems.append(f"{here}: {DD.name(tag)} after {DD.name(prev)}: out of definition order")
        i += 1
        if tag in g.groups:
            sub, i = _group(toks, i, g.groups[tag], value, f"{here}/{DD.name(tag)}", problems, DD)
            if keep:
                entries[-1][tag] = sub
    if str(len(entries)) != declared:
        problems.append(f"{where}: count {declared}, {len(entries)} entries")
    return entries, i


def _section(toks: list[tuple[int, str]], i: int, layout: Layout, where: str,
             problems: list[str], DD: Dictionary = DD) -> tuple[Entry, int]:
    """Header, body or trailer: its own fields in any order (FIX allows it), groups strictly."""
    out: Entry = {}
    while i < len(toks) and toks[i][0] in layout.position:
        tag, value = toks[i]
        if tag in out:
            problems.append(f"{where}: {DD.name(tag)} twice")
        out[tag] = value
        i += 1
        if tag in layout.groups:
            out[tag], i = _group(toks, i, layout.groups[tag], value, f"{where}/{DD.name(tag)}", problems, DD)
    return out, i


def read_strict(raw: str, DD: Dictionary = DD) -> Reading:
    toks = tokens(raw)
    problems: list[str] = []
    if [tag for tag, _ in toks[:3]] != [8, 9, 35]:
        problems.append(f"the message starts {[tag for tag, _ in toks[:3]]}, not 8, 9, 35")
    msg_type = dict(toks[:3]).get(35, "")
    assert msg_type in DD.messages, f"MsgType {msg_type!r} is not in the dictionary"
    header, i = _section(toks, 0, DD.header, "header", problems, DD)
    body, i = _section(toks, i, DD.messages[msg_type], msg_type, problems, DD)
    trailer, i = _section(toks, i, DD.trailer, "trailer", problems, DD)
    if i < len(toks):
        problems.append(f"{DD.name(toks[i][0])} at field {i + 1} is not where a {msg_type} allows it")
    if toks and toks[-1][0] != 10:
        problems.append("CheckSum (10) is not the last field")
    return Reading(header, body, trailer, problems)


def test_the_strict_reader_catches_what_the_issue_describes():
    """The reader itself: the issue's SecurityList entry (tag order) loses the option fields; the
    same fields in definition order keep them; a wrong count and a missing delimiter are problems."""
    def wire(body: str) -> str:
        return f"8=FIX.4.4\x019=0\x0135=y\x0149=A\x0156=B\x0134=1\x0152=20260101-00:00:00\x01{body}10=000\x01"

    issue = wire("320=1\x01322=2\x01560=0\x01146=1\x0155=X\x0115=USDC\x01107=d\x01167=OPT\x01202=3000\x01")
    r = read_strict(issue)
    assert r.body[146] == [{55: "X", 15: "USDC"}]
    assert any("SecurityDesc (107) after Currency (15)" in p for p in r.problems)
    good = wire("320=1\x01322=2\x01560=0\x01146=1\x0155=X\x01167=OPT\x01202=3000\x01107=d\x0115=USDC\x01")
    assert read_strict(good).problems == [] and read_strict(good).body[146][0][202] == "3000"
    assert "count 2, 1 entries" in " ".join(read_strict(good.replace("146=1", "146=2")).problems)
    no_delim = wire("320=1\x01322=2\x01560=0\x01146=1\x01167=OPT\x0155=X\x01")
    assert "not its delimiter Symbol (55)" in " ".join(read_strict(no_delim).problems)


# ---- QuickFIX's own validation ----------------------------------------------------------------

def _strict_dictionary(path: Path) -> fix.DataDictionary:
    dd = fix.DataDictionary(str(path))
    dd.checkFieldsOutOfOrder(True)
    dd.checkFieldsHaveValues(True)
    dd.checkUserDefinedFields(True)
    dd.allowUnknownMsgFields(False)
    return dd


@pytest.fixture(scope="module")
def qf_dictionary() -> fix.DataDictionary:
    return _strict_dictionary(DICTIONARY)


@pytest.fixture(scope="module")
def qf_dictionary_42() -> fix.DataDictionary:
    return _strict_dictionary(DICTIONARY_42)


_seq = iter(range(1, 1_000_000))


def on_the_wire(m: fix.Message, begin_string: str = fix.BeginString_FIX44) -> str:
    """The message as Session::sendToTarget writes it: the session fills these header fields and
    serialises the message as built (no reordering on the way out)."""
    h = m.getHeader()
    h.setField(fix.BeginString(begin_string))
    h.setField(fix.SenderCompID("FIXBRIDGE"))
    h.setField(fix.TargetCompID("CLIENT1"))
    h.setField(fix.MsgSeqNum(next(_seq)))
    h.setField(fix.SendingTime())
    return m.toString()


def check_strict(m: fix.Message, dd: fix.DataDictionary, begin_string: str = fix.BeginString_FIX44,
                 layout: Dictionary = DD) -> tuple[str, fix.Message, Reading]:
    raw = on_the_wire(m, begin_string)
    parsed = fix.Message(raw, dd, True)  # True: BodyLength and CheckSum checked too
    dd.validate(parsed)                  # raises on a field out of place, a bad value, a missing tag, ...
    reading = read_strict(raw, layout)
    assert reading.problems == [], f"{raw.replace(chr(1), '|')}\n" + "\n".join(reading.problems)
    return raw, parsed, reading


def test_both_checks_are_live(qf_dictionary):
    """A check that accepts everything proves nothing: each of these is refused by QuickFIX and by
    the strict reader."""
    def both(m: fix.Message, qf_error: type, words: str) -> None:
        raw = on_the_wire(m)
        with pytest.raises(qf_error):
            qf_dictionary.validate(fix.Message(raw, qf_dictionary, True))
        if words:
            assert words in " ".join(read_strict(raw).problems)

    m = t.business_message_reject(_request("R"), "x")
    m.setField(t.TAG_CHAIN_TX_HASH, "0xab")  # a user-defined tag of ExecutionReport only
    both(m, fix.TagNotDefinedForMessage, "ChainTxHash (20001) at field")
    m = t.execution_report(_fill())
    m.setField(136, "2")                      # one MiscFees entry, count 2
    both(m, fix.RepeatingGroupCountMismatch, "8/NoMiscFees (136): count 2, 1 entries")
    raw = on_the_wire(refdata.positions_ack(_request("AN", (710, "P-1")), "w1", 1))
    parts = [p for p in raw.split("\x01") if p and p[:2] not in ("8=", "9=") and not p.startswith("10=")]
    sender = next(p for p in parts if p.startswith("49="))
    parts.remove(sender)
    parts.append(sender)  # a header field after the body's
    body = "\x01".join(parts) + "\x01"
    head = f"8=FIX.4.4\x019={len(body)}\x01"
    moved = f"{head}{body}10={sum((head + body).encode()) % 256:03d}\x01"
    with pytest.raises(fix.TagOutOfOrder):
        qf_dictionary.validate(fix.Message(moved, qf_dictionary, True))
    assert "SenderCompID (49) at field" in " ".join(read_strict(moved).problems)


# ---- what the bridge sends, built by its builders ---------------------------------------------

@pytest.fixture(scope="module")
def spec():
    return load_spec(SPECS)


def _request(msg_type: str, *fields: tuple[int, str], seq: int = 7) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(msg_type))
    m.getHeader().setField(fix.MsgSeqNum(seq))
    for tag, value in fields:
        m.setField(fix.StringField(tag, value))
    return m


def _fill(**over) -> ExecutionReport:
    er = dict(order_id="O-1", cl_ord_id="C-1", exec_id="0xabc:3", event=ExecEvent.TRADE, ord_status=OrdStatus.FILLED,
              side=Side.BUY, symbol="WETH/USDC", order_qty=Decimal("0.5"), cash_order_qty=None,
              price=Decimal("3100"), cum_qty=Decimal("0.5"), leaves_qty=Decimal("0"), avg_px=Decimal("3001.5"),
              last_qty=Decimal("0.5"), last_px=Decimal("3001.5"), text="filled on uniswap_v3",
              fee_eth=Decimal("0.000123456789"), tx_hash="0x" + "ab" * 32, block_number=42, chain_id=31337,
              venue="uniswap_v3", account="w1", transact_time=datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc))
    er.update(over)
    return ExecutionReport(**er)


def _resting(**over) -> ExecutionReport:
    """A resting order's report: nothing filled, its TimeInForce and ExpireTime echoed."""
    base = dict(ord_status=OrdStatus.NEW, exec_id="R-1", last_qty=None, last_px=None, fee_eth=None, tx_hash=None,
                block_number=None, chain_id=None, cum_qty=Decimal(0), leaves_qty=Decimal("0.5"), avg_px=Decimal(0),
                text=None, time_in_force=TimeInForce.GTD, expire_time=datetime(2026, 12, 31, 22, tzinfo=timezone.utc))
    base.update(over)
    return _fill(**base)


def _order(cl_ord_id: str, order_id: str) -> Order:
    return Order(session_id="FIX.4.4:FIXBRIDGE->CLIENT1", cl_ord_id=cl_ord_id, symbol="WETH/USDC", side=Side.BUY,
                 ord_type=OrdType.LIMIT, time_in_force=TimeInForce.IOC, order_qty=Decimal(1), order_id=order_id,
                 status=OrdStatus.NEW)


def _position(symbol: str, kind: str) -> Position:
    return Position(wallet="w1", wallet_address="0x" + "11" * 20, symbol=symbol, address="0x" + "22" * 20,
                    security_type=kind, quantity=Decimal("2.5"), currency="USDC", price=Decimal("123.45"),
                    value=Decimal("308.625"))


def outbound(spec) -> dict[str, fix.Message]:
    """One of each message the bridge sends, with every optional group it can carry."""
    new_order = _request("D", (11, "C-9"), (55, "WETH/USDC"), (54, "1"), (38, "1"), (44, "3000"), (1, "w1"), seq=9)
    positions = _request("AN", (710, "P-1"), (724, "0"), (1, "w1"), (581, "1"))
    return {
        "ExecutionReport Trade with MiscFees": t.execution_report(_fill()),
        "ExecutionReport New": t.execution_report(_fill(event=ExecEvent.NEW, ord_status=OrdStatus.NEW, exec_id="N-1",
                                                        last_qty=None, last_px=None, fee_eth=None, tx_hash=None,
                                                        cum_qty=Decimal(0), leaves_qty=Decimal("0.5"),
                                                        avg_px=Decimal(0), text=None)),
        "ExecutionReport PendingNew": t.execution_report(_fill(event=ExecEvent.PENDING_NEW,
                                                               ord_status=OrdStatus.PENDING_NEW, exec_id="P-1",
                                                               last_qty=None, last_px=None, fee_eth=None, tx_hash=None,
                                                               block_number=None, chain_id=None, venue=None,
                                                               cum_qty=Decimal(0), leaves_qty=Decimal("0.5"),
                                                               avg_px=Decimal(0), text=None)),
        "ExecutionReport Trade Cancel": t.execution_report(_fill(event=ExecEvent.TRADE_CANCEL, ord_status=OrdStatus.NEW,
                                                                 exec_id="0xdef:1", exec_ref_id="0xabc:3")),
        "ExecutionReport Rejected": t.execution_report(_fill(event=ExecEvent.REJECTED, ord_status=OrdStatus.REJECTED,
                                                             rej_reason=RejectReason.UNKNOWN_SYMBOL, fee_eth=None,
                                                             cum_qty=Decimal(0), leaves_qty=Decimal(0))),
        "ExecutionReport status (150=I)": t.execution_report(_fill(event=ExecEvent.ORDER_STATUS, ord_status_req_id="S-1",
                                                                   orig_cl_ord_id="C-0")),
        "ExecutionReport drop copy": t.drop_copy(_fill(), "CLIENT1"),
        "ExecutionReport resting New (GTD, 126)": t.execution_report(_resting(event=ExecEvent.NEW)),
        "ExecutionReport replaced (150=5)": t.execution_report(_resting(event=ExecEvent.REPLACED, orig_cl_ord_id="C-0")),
        "ExecutionReport stop triggered (150=D)": t.execution_report(_resting(event=ExecEvent.TRIGGERED,
                                                                              stop_px=Decimal("2900"), price=None)),
        "OrderCancelReject to an amend (434=2)": t.order_cancel_reject(
            order_id="O-1", cl_ord_id="C-2", orig_cl_ord_id="C-1", ord_status=OrdStatus.NEW, too_late=False,
            text="OrderQty 0.1 is not above the 0.2 already filled", replace=True),
        "ExecutionReport unparsed reject": t.unparsed_reject(new_order, RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                                                             "TimeInForce 0 (Day) is not supported"),
        "OrderCancelReject": t.order_cancel_reject(order_id="O-1", cl_ord_id="C-2", orig_cl_ord_id="C-1",
                                                   ord_status=OrdStatus.FILLED, too_late=True, text="too late"),
        "BusinessMessageReject": t.business_message_reject(_request("R", (131, "Q-1"), seq=11),
                                                           "This is a drop copy session", "6"),
        "SecurityList all": refdata.security_list(_request("x", (320, "SL-1"), (559, "4")), spec),
        "SecurityList options": refdata.security_list(_request("x", (320, "SL-2"), (559, "1"), (167, "OPT")), spec),
        "SecurityList none": refdata.security_list(_request("x", (320, "SL-3"), (559, "0"), (55, "NOPE")), spec),
        "SecurityDefinition option": refdata.security_definition(_request("c", (320, "SD-1"), (321, "3"), (55, CALL)),
                                                                 spec),
        "SecurityDefinition pair": refdata.security_definition(_request("c", (320, "SD-2"), (321, "3"),
                                                                        (55, "WETH/USDC:devnet2")), spec),
        "SecurityDefinition unknown": refdata.security_definition(_request("c", (320, "SD-3"), (321, "3"),
                                                                           (55, "NOPE")), spec),
        "RequestForPositionsAck": refdata.positions_ack(positions, "w1", 2),
        "RequestForPositionsAck refused": refdata.positions_ack(positions, "nobody", 0, "99", "not bound"),
        "PositionReport option": refdata.position_report(positions, _position(CALL, "OPT"), 2, date(2026, 1, 15)),
        "PositionReport token": refdata.position_report(positions, _position("WETH", "FOR"), 2, date(2026, 1, 15)),
        "OrderMassCancelReport": mass.mass_cancel_report("MC-1", mass.MassScope("1", "WETH/USDC", Side.BUY), [
            _order("C-1", "O-1"), _order("C-2", "O-2")]),
        "OrderMassCancelReport none": mass.mass_cancel_report("MC-2", mass.MassScope("7"), []),
        "OrderMassCancelReport rejected": mass.mass_cancel_report("MC-3", mass.MassScope("1", "NOPE"), [],
                                                                  rejected="Unknown symbol 'NOPE'"),
        **{f"ExecutionReport mass status {i + 1} of 2": t.execution_report(er) for i, er in enumerate(
            mass.status_reports("MS-1", [_fill(event=ExecEvent.ORDER_STATUS, ord_status=OrdStatus.NEW, fee_eth=None),
                                         _fill(event=ExecEvent.ORDER_STATUS, ord_status=OrdStatus.PENDING_CANCEL,
                                               fee_eth=None)],
                                mass.MassScope("7"), _fill()))},
        "ExecutionReport mass status, no working order": t.execution_report(mass.status_reports(
            "MS-2", [], mass.MassScope("7"), _fill(event=ExecEvent.ORDER_STATUS, ord_status=OrdStatus.REJECTED,
                                                   order_id="NONE", fee_eth=None, text="No working orders"))[0]),
        "PositionReport settlement": refdata.settlement_report(SettlementReport(
            wallet="w1", wallet_address="0x" + "11" * 20, symbol=CALL, settlement_price=Decimal("3300"),
            currency="USDC", held=Decimal("10"), written=Decimal("15"), received=Decimal("3000.5"),
            tx_hashes=("0x" + "cd" * 32,))),
    }


CASES = list(outbound(load_spec(SPECS)))


@pytest.mark.parametrize("case", CASES)
def test_every_outbound_message_is_strict_fix(case, spec, qf_dictionary):
    check_strict(outbound(spec)[case], qf_dictionary)


def test_the_outbound_messages_carry_their_groups(spec, qf_dictionary):
    """The cases above do exercise every group the bridge writes."""
    seen = set()
    for m in outbound(spec).values():
        seen |= {tag for tag, _ in tokens(on_the_wire(m))}
    assert {136, 137, 138, 139, 146, 711, 311, 702, 703, 704, 705, 753, 707, 708, 797, 128, 534, 535, 41, 584, 911,
            912} <= seen
    assert {m.getHeader().getField(35) for m in outbound(spec).values()} == {"8", "9", "j", "y", "d", "AO", "AP", "r"}


def test_a_mass_cancel_report_names_each_order_in_its_group(qf_dictionary):
    raw, parsed, reading = check_strict(mass.mass_cancel_report(
        "MC-1", mass.MassScope("7"), [_order("C-1", "O-1"), _order("C-2", "O-2")]), qf_dictionary)
    assert (reading.body[530], reading.body[531], reading.body[533]) == ("7", "7", "2")
    assert reading.body[534] == [{41: "C-1", 535: "O-1"}, {41: "C-2", 535: "O-2"}]
    rejected = read_strict(on_the_wire(mass.mass_cancel_report("MC-3", mass.MassScope("1", "NOPE"), [],
                                                               rejected="Unknown symbol")))
    assert (rejected.body[531], rejected.body[532], rejected.body[533]) == ("0", "99", "0")


def test_mass_status_reports_count_and_mark_the_last():
    ers = mass.status_reports("MS-1", [_fill(event=ExecEvent.ORDER_STATUS)] * 3, mass.MassScope("7"), _fill())
    got = [read_strict(on_the_wire(t.execution_report(er))).body for er in ers]
    assert [(b[150], b[584], b[911], b.get(912)) for b in got] == [("I", "MS-1", "3", None)] * 2 + [("I", "MS-1", "3", "Y")]
    empty = read_strict(on_the_wire(t.execution_report(mass.status_reports(
        "MS-2", [], mass.MassScope("7"), _fill(event=ExecEvent.ORDER_STATUS, ord_status=OrdStatus.REJECTED))[0]))).body
    assert (empty[150], empty[39], empty[584], empty[911], empty[912]) == ("I", "8", "MS-2", "0", "Y")


# ---- FIX 4.2 sessions: the same reports in 4.2's fields, against specs/FIX42.xml ---------------

def outbound_42() -> dict[str, fix.Message]:
    d = dialects.Fix42
    new_order = _request("D", (11, "C-9"), (21, "1"), (55, "WETH/USDC"), (54, "1"), (38, "1"), (44, "3000"), seq=9)
    return {
        "Fill": d.execution_report(_fill()),
        "Partial fill": d.execution_report(_fill(ord_status=OrdStatus.PARTIALLY_FILLED, leaves_qty=Decimal("0.2"))),
        "New": d.execution_report(_fill(event=ExecEvent.NEW, ord_status=OrdStatus.NEW, exec_id="N-1", last_qty=None,
                                        last_px=None, fee_eth=None, tx_hash=None, cum_qty=Decimal(0),
                                        leaves_qty=Decimal("0.5"), avg_px=Decimal(0), text=None)),
        "Trade Cancel": d.execution_report(_fill(event=ExecEvent.TRADE_CANCEL, ord_status=OrdStatus.NEW,
                                                 exec_id="0xdef:1", exec_ref_id="0xabc:3")),
        "Canceled": d.execution_report(_fill(event=ExecEvent.CANCELED, ord_status=OrdStatus.CANCELED,
                                             orig_cl_ord_id="C-0")),
        "PendingCancel": d.execution_report(_fill(event=ExecEvent.PENDING_CANCEL, ord_status=OrdStatus.PENDING_CANCEL,
                                                  fee_eth=None)),
        "Expired": d.execution_report(_fill(event=ExecEvent.EXPIRED, ord_status=OrdStatus.EXPIRED)),
        "Rejected": d.execution_report(_fill(event=ExecEvent.REJECTED, ord_status=OrdStatus.REJECTED,
                                             rej_reason=RejectReason.UNKNOWN_SYMBOL, fee_eth=None,
                                             cum_qty=Decimal(0), leaves_qty=Decimal(0))),
        "status": d.execution_report(_fill(event=ExecEvent.ORDER_STATUS, ord_status_req_id="S-1")),
        "drop copy": d.drop_copy(_fill(), "CLIENT1"),
        "resting New (GTD, 126)": d.execution_report(_resting(event=ExecEvent.NEW)),
        "replaced (150=5)": d.execution_report(_resting(event=ExecEvent.REPLACED, orig_cl_ord_id="C-0")),
        "stop triggered (150=D)": d.execution_report(_resting(event=ExecEvent.TRIGGERED, stop_px=Decimal("2900"),
                                                              price=None)),
        "OrderCancelReject to an amend (434=2)": d.order_cancel_reject(
            order_id="O-1", cl_ord_id="C-2", orig_cl_ord_id="C-1", ord_status=OrdStatus.NEW, too_late=False,
            text="not above what is filled", replace=True),
        "unparsed reject": d.unparsed_reject(new_order, RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC, "Day"),
        "OrderCancelReject": d.order_cancel_reject(order_id="O-1", cl_ord_id="C-2", orig_cl_ord_id="C-1",
                                                   ord_status=OrdStatus.FILLED, too_late=True, text="too late"),
        "BusinessMessageReject": d.business_message_reject(_request("AF", (584, "M-1"), seq=11), "Unsupported", "3"),
        "BusinessMessageReject drop copy": d.business_message_reject(_request("D", seq=12), "drop copy", "6"),
    }


@pytest.mark.parametrize("case", list(outbound_42()))
def test_every_outbound_fix42_message_is_strict_fix42(case, qf_dictionary_42):
    m = outbound_42()[case]
    assert m.getHeader().getField(8) == "FIX.4.2"  # built on quickfix42's typed messages
    check_strict(m, qf_dictionary_42, fix.BeginString_FIX42, DD42)


def test_fix42_reports_speak_42():
    """ExecTransType 20 on every report; a fill is ExecType 2 (1 if partial), a status answer
    ExecTransType 3 with the OrdStatus as ExecType, a Trade Cancel ExecTransType 1; the gas in
    ChainFee (20006): 4.2 has no MiscFees, OrdStatusReqID or CopyMsgIndicator."""
    body = {k: read_strict(on_the_wire(m, fix.BeginString_FIX42), DD42).body for k, m in outbound_42().items()}
    assert (body["Fill"][20], body["Fill"][150], body["Fill"][39]) == ("0", "2", "2")
    assert (body["Partial fill"][150], body["Partial fill"][39]) == ("1", "1")
    assert (body["New"][20], body["New"][150]) == ("0", "0")
    assert (body["status"][20], body["status"][150]) == ("3", "2") and 790 not in body["status"]
    assert (body["Trade Cancel"][20], body["Trade Cancel"][150], body["Trade Cancel"][19]) == ("1", "0", "0xabc:3")
    assert (body["Expired"][150], body["Canceled"][150], body["PendingCancel"][150]) == ("C", "4", "6")
    assert body["Fill"][20006] == "0.000123456789" and 136 not in body["Fill"]
    assert body["Fill"][32] == "0.5" and body["Fill"][20001] == "0x" + "ab" * 32
    assert 797 not in body["drop copy"]
    copy = read_strict(on_the_wire(outbound_42()["drop copy"], fix.BeginString_FIX42), DD42)
    assert copy.header[128] == "CLIENT1"
    assert (body["unparsed reject"][20], body["unparsed reject"][150], body["unparsed reject"][103]) == ("0", "8", "0")
    assert (body["Rejected"][103], body["BusinessMessageReject drop copy"][380]) == ("1", "0")


@pytest.mark.parametrize("event", list(ExecEvent))
@pytest.mark.parametrize("status", list(OrdStatus))
def test_every_domain_report_has_a_fix42_exec_type(event, status):
    valid = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E"}  # FIX42.xml ExecType
    assert dialects.exec_type_42(event, status) in valid
    assert dialects.exec_trans_type_42(event) in {"0", "1", "3"}


def test_a_fix42_order_names_its_maturity_day():
    msg = _request("D", (11, "C-1"), (21, "1"), (55, CALL), (54, "1"), (40, "2"), (59, "4"), (38, "1"), (44, "5"),
                   (167, "OPT"), (200, "202612"), (205, "31"), (201, "1"), (202, "3000"))
    order = dialects.Fix42.parse_new_order(msg, "FIX.4.2:FIXBRIDGE->CLIENT42")
    assert (order.claims.maturity_month_year, order.claims.maturity_date, order.claims.put_or_call) == (
        "202612", "20261231", "C")
    assert dialects.for_session("FIX.4.2:FIXBRIDGE->CLIENT42") is dialects.Fix42
    assert dialects.for_session("FIX.4.4:FIXBRIDGE->CLIENT1") is dialects.Fix44


def test_a_strict_engine_keeps_every_option_field_of_a_security_list(spec, qf_dictionary):
    raw = on_the_wire(refdata.security_list(_request("x", (320, "SL-1"), (559, "4")), spec))
    options = {s: i for s, i in spec.instruments.items() if i.security_type == "OPT"}
    want = {167: "SecurityType", 202: "StrikePrice", 201: "PutOrCall", 541: "MaturityDate",
            200: "MaturityMonthYear", 231: "ContractMultiplier", 947: "StrikeCurrency", 711: "NoUnderlyings",
            15: "Currency"}

    # What an engine that enforces definition order keeps of each entry.
    reading = read_strict(raw)
    entries = {e[55]: e for e in reading.body[146]}
    assert len(entries) == int(reading.body[393]) == len(spec.instruments)
    for symbol, ins in options.items():
        e = entries[symbol]
        lost = [f"{name} ({tag})" for tag, name in want.items() if tag not in e]
        assert not lost, f"a strict engine reads {symbol} without {', '.join(lost)}: {e}"
        assert (e[167], e[202], e[201], e[541]) == ("OPT", fmt(ins.strike), "1" if ins.put_or_call == "C" else "0",
                                                   ins.expiry.strftime("%Y%m%d"))
        assert e[711] == [{311: ins.underlying}] and e[15] == e[947] == ins.quote

    # QuickFIX, parsing with the dictionary: the same fields in each NoRelatedSym entry.
    parsed = fix.Message(raw, qf_dictionary, True)
    qf_dictionary.validate(parsed)
    assert int(parsed.getField(146)) == len(spec.instruments)
    for k in range(1, len(spec.instruments) + 1):
        g = fix44.SecurityList.NoRelatedSym()
        parsed.getGroup(k, g)
        symbol = g.getField(55)
        if symbol not in options:
            assert g.getField(167) == "FOR" and not g.isSetField(711)
            continue
        assert [tag for tag in want if not g.isSetField(tag)] == [], symbol
        assert all(g.getField(tag) == entries[symbol][tag] for tag in (167, 202, 201, 541)), symbol
        u = fix44.SecurityList.NoRelatedSym.NoUnderlyings()
        g.getGroup(1, u)
        assert u.getField(311) == options[symbol].underlying
    assert reading.problems == []


def test_a_fill_keeps_its_fee_and_its_chain_proof(qf_dictionary):
    raw, parsed, reading = check_strict(t.execution_report(_fill()), qf_dictionary)
    assert reading.body[136] == [{137: "0.000123456789", 138: "ETH", 139: "10"}]
    assert (reading.body[20001], reading.body[20002], reading.body[20003], reading.body[20004]) == (
        "0x" + "ab" * 32, "42", "31337", "uniswap_v3")
    g = fix44.ExecutionReport.NoMiscFees()
    parsed.getGroup(1, g)
    assert (g.getField(137), g.getField(138), g.getField(139)) == ("0.000123456789", "ETH", "10")


def test_a_position_report_keeps_its_quantities_and_amounts(qf_dictionary):
    req = _request("AN", (710, "P-1"), (724, "0"), (1, "w1"), (581, "1"))
    raw, parsed, reading = check_strict(refdata.position_report(req, _position(CALL, "OPT"), 1, date(2026, 1, 15)),
                                        qf_dictionary)
    assert reading.body[702] == [{703: "TOT", 704: "2.5", 705: "0"}]
    assert reading.body[753] == [{707: "FMTM", 708: "308.625"}]
    q, a = fix44.PositionReport.NoPositions(), fix44.PositionReport.NoPosAmt()
    parsed.getGroup(1, q)
    parsed.getGroup(1, a)
    assert (q.getField(703), q.getField(704), a.getField(707), a.getField(708)) == ("TOT", "2.5", "FMTM", "308.625")


# ---- market data (fix/md_wire.py): W, X, Y ----------------------------------------------------

def _md_entries():
    from fixbridge.fix import md_wire as w
    from fixbridge.market.book import BID, OFFER, Level, Print
    bid = w.level_entry("WETH/USDC", Level(BID, "uniswap_v3/500", 2, Decimal("1"), Decimal("2990.1234567891")))
    best = w.level_entry("WETH/USDC", Level(OFFER, None, 1, Decimal("0.1"), Decimal("3001.5")))
    trade = w.print_entry("WETH/USDC", Print("0x" + "ab" * 32, 7, 42, "uniswap_v2", False, Decimal("2"),
                                             Decimal("2995.25"), "0x" + "11" * 20))
    return w, bid, best, trade


def outbound_market_data() -> dict[str, fix.Message]:
    w, bid, best, trade = _md_entries()
    return {
        "MarketDataSnapshotFullRefresh": w.snapshot("MD-1", "WETH/USDC", [best, bid, trade]),
        "MarketDataSnapshotFullRefresh empty": w.snapshot("MD-1", "WBTC/WETH", []),
        "MarketDataIncrementalRefresh": w.incremental("MD-1", [(w.NEW, trade), (w.CHANGE, bid), (w.DELETE, best)]),
        "MarketDataRequestReject": w.reject("MD-9", w.UNKNOWN_SYMBOL, "Unknown symbol NOPE"),
        "MarketDataRequestReject no reason": w.reject("MD-9", None, "No subscription with MDReqID 'MD-9'"),
    }


@pytest.mark.parametrize("case", list(outbound_market_data()))
def test_every_market_data_message_is_strict_fix(case, qf_dictionary):
    check_strict(outbound_market_data()[case], qf_dictionary)


def test_a_strict_engine_keeps_every_field_of_a_market_data_entry(qf_dictionary):
    """Each entry's fields survive a reader that enforces definition order, the chain's proof
    (ChainTxHash, ChainBlockNumber: user-defined, at the end of the group) included."""
    msgs = outbound_market_data()
    _, _, snap = check_strict(msgs["MarketDataSnapshotFullRefresh"], qf_dictionary)
    assert snap.body[55] == "WETH/USDC" and snap.body[262] == "MD-1"
    assert snap.body[268] == [
        {269: "1", 270: "3001.5", 271: "0.1", 290: "1"},                                 # the best: no MDMkt
        {269: "0", 270: "2990.1234567891", 271: "1", 275: "uniswap_v3/500", 290: "2"},
        {269: "2", 270: "2995.25", 271: "2", 275: "uniswap_v2", 289: "0x" + "11" * 20,
         20001: "0x" + "ab" * 32, 20002: "42"},
    ]
    _, parsed, inc = check_strict(msgs["MarketDataIncrementalRefresh"], qf_dictionary)
    assert [(e[279], e[269], e[278], e[55]) for e in inc.body[268]] == [
        ("0", "2", "0x" + "ab" * 32 + ":7", "WETH/USDC"), ("1", "0", "WETH/USDC:0:2:uniswap_v3/500", "WETH/USDC"),
        ("2", "1", "WETH/USDC:1:1:*", "WETH/USDC")]
    assert 270 not in inc.body[268][2]  # a delete names its entry only
    g = fix44.MarketDataIncrementalRefresh.NoMDEntries()
    parsed.getGroup(1, g)
    assert (g.getField(20001), g.getField(270)) == ("0x" + "ab" * 32, "2995.25")
    _, _, y = check_strict(msgs["MarketDataRequestReject"], qf_dictionary)
    assert (y.body[262], y.body[281], y.body[58]) == ("MD-9", "0", "Unknown symbol NOPE")
