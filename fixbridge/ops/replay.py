"""Session replay: re-run a recorded FIX session against a fresh devnet and a fresh bridge, and diff
what the bridge answers now against what it answered then.

The recording is either the journal (``fix_messages`` of one session), a QuickFIX messages log
(``<state-dir>/fix/log/FIX.4.4-FIXBRIDGE-CLIENT1.messages.current.log``) or a JSON export
(``{"session": ..., "messages": [{"direction": "in"|"out", "raw": "8=FIX.4.4|..."}]}``). Only
application messages count (admin messages and PossDup resends are left out).

Each recorded outbound message is attributed to the inbound message it answers: the latest
earlier inbound with the same ClOrdID (11), or for a BusinessMessageReject the one whose MsgSeqNum
is its RefSeqNum (45), else the latest earlier inbound. The replay sends the inbound messages one
at a time, in order, through a real FIX initiator, and waits for as many answers as were recorded
(or ``timeout``) before the next. Then the answers are compared field by field with the
recording. What legitimately differs between two runs is mapped or ignored:

- header and trailer (8, 9, 10, 34, 49, 56, 52, 43, 97, 122), TransactTime (60);
- OrderID (37): mapped recorded -> replayed the first time it is seen, and must then stay mapped
  (one replayed OrderID per recorded one, both ways);
- ExecID (17): a fill's ``<txhash>:<logIndex>`` compares its log index; other ExecIDs are ignored;
- the on-chain proof: tx hash (20001) and block number (20002); tx hashes inside Text (58);
- the fee (137): equal within ``fee_tolerance`` (relative), gas prices move with the chain;

and every other difference (a field missing, added or different, a report missing or extra, a
different message type) is reported. Inbound messages are sent with a fresh TransactTime and their
ExpireTime (126) moved by the time between recording and replay.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ADMIN = frozenset({"0", "1", "2", "3", "4", "5", "A"})
HEADER = (8, 9, 35, 34, 49, 56, 52, 43, 97, 122, 115, 128, 50, 57, 142, 143, 1128, 369, 10)
IGNORED = frozenset({8, 9, 10, 34, 49, 56, 52, 43, 97, 122, 60, 20001, 20002})
TERMINAL_ORD_STATUS = frozenset({"2", "4", "8", "C"})
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_FILL_EXEC_ID = re.compile(r"^0x[0-9a-fA-F]{64}:(\d+)(?::\d+)?$")


class ReplayError(Exception):
    pass


# ============================================================================================
# Recorded messages
# ============================================================================================


@dataclass
class Msg:
    direction: str                 # 'in' (to the bridge) or 'out' (from it)
    fields: list[tuple[int, str]]  # in wire order
    raw: str

    @property
    def msg_type(self) -> str:
        return self.get(35) or ""

    def get(self, tag: int) -> str | None:
        return next((v for t, v in self.fields if t == tag), None)

    def values(self, tag: int) -> list[str]:
        return [v for t, v in self.fields if t == tag]


def parse_fix(raw: str) -> list[tuple[int, str]]:
    sep = "\x01" if "\x01" in raw else "|"
    out = []
    for part in raw.split(sep):
        if "=" in part:
            k, v = part.split("=", 1)
            if k.isdigit():
                out.append((int(k), v))
    return out


def parse_session(session: str) -> tuple[str, str, str]:
    """'FIX.4.4:FIXBRIDGE->CLIENT1' -> ('FIX.4.4', 'FIXBRIDGE', 'CLIENT1')."""
    m = re.fullmatch(r"(FIX[T]?\.[\d.]+):([^-]+)->(.+)", session)
    if not m:
        raise ReplayError(f"session must look like FIX.4.4:FIXBRIDGE->CLIENT1, got {session!r}")
    return m.group(1), m.group(2), m.group(3)


def _app_only(msgs: list[Msg]) -> list[Msg]:
    return [m for m in msgs if m.msg_type and m.msg_type not in ADMIN and m.get(43) != "Y"]


def load_from_log(path: Path, session: str) -> list[Msg]:
    """A QuickFIX messages log (one '<time> : <message>' per line) or a JSON export."""
    _begin, _acceptor, counterparty = parse_session(session)
    text = Path(path).read_text(errors="replace")
    if Path(path).suffix == ".json":
        doc = json.loads(text)
        return _app_only([Msg(m["direction"], parse_fix(m["raw"]), m["raw"]) for m in doc["messages"]])
    msgs = []
    for line in text.splitlines():
        raw = line.split(" : ", 1)[1] if " : " in line else line
        if "35=" not in raw:
            continue
        fields = parse_fix(raw)
        sender = next((v for t, v in fields if t == 49), None)
        msgs.append(Msg("in" if sender == counterparty else "out", fields, raw))
    return _app_only(msgs)


def load_from_journal(url: str, session: str) -> list[Msg]:
    from sqlalchemy import select

    from fixbridge.journal import schema as db
    from fixbridge.ops.common import open_journal
    j = open_journal(url)
    try:
        with j.read_session() as s:
            rows = s.execute(select(db.FixMessage.direction, db.FixMessage.raw)
                             .where(db.FixMessage.session_id == session).order_by(db.FixMessage.ts, db.FixMessage.id)).all()
    finally:
        j.close()
    return _app_only([Msg(d, parse_fix(raw), raw) for d, raw in rows])


def export_json(msgs: list[Msg], session: str) -> str:
    return json.dumps({"session": session, "messages": [{"direction": m.direction, "raw": m.raw.replace("\x01", "|")}
                                                        for m in msgs]}, indent=1) + "\n"


@dataclass
class Group:
    inbound: Msg | None                      # None: answers recorded before any inbound (e.g. recovery)
    expected: list[Msg] = field(default_factory=list)


def attribute(msgs: list[Msg]) -> list[Group]:
    groups: list[Group] = []
    orphans = Group(None)
    for m in msgs:
        if m.direction == "in":
            groups.append(Group(m))
            continue
        target = None
        if m.msg_type == "j" and m.get(45):
            target = next((g for g in reversed(groups) if g.inbound.get(34) == m.get(45)), None)
        elif m.get(11):
            target = next((g for g in reversed(groups) if g.inbound.get(11) == m.get(11)), None)
        target = target or (groups[-1] if groups else orphans)
        target.expected.append(m)
    return ([orphans] if orphans.expected else []) + groups


# ============================================================================================
# Diff
# ============================================================================================


@dataclass
class Difference:
    group: int            # index of the inbound message (1-based; 0 = answers before any inbound)
    in_type: str | None
    cl_ord_id: str | None
    report: int           # 1-based index of the answer within the group
    tag: int | None       # None: the whole message (missing / extra / type)
    recorded: str | None
    replayed: str | None
    note: str


class Differ:
    def __init__(self, fee_tolerance: Decimal) -> None:
        self.fee_tolerance = fee_tolerance
        self.order_ids: dict[str, str] = {}    # recorded -> replayed
        self._back: dict[str, str] = {}        # replayed -> recorded

    def _map_order_id(self, rec: str, rep: str) -> str | None:
        if rec == "NONE" or rep == "NONE":
            return None if rec == rep else "OrderID NONE on one side only"
        if rec in self.order_ids:
            return None if self.order_ids[rec] == rep else f"recorded {rec} was replayed as {self.order_ids[rec]} before"
        if rep in self._back:
            return f"replayed {rep} already stands for recorded {self._back[rep]}"
        self.order_ids[rec], self._back[rep] = rep, rec
        return None

    def _text(self, s: str) -> str:
        s = _TX_HASH.sub("<tx>", s)
        for rec, rep in self.order_ids.items():
            s = s.replace(rec, rep)
        return s

    def compare(self, gi: int, g: Group, ri: int, e: Msg, r: Msg) -> list[Difference]:
        cl = g.inbound.get(11) if g.inbound else None
        it = g.inbound.msg_type if g.inbound else None

        def d(tag, rec, rep, note):
            return Difference(gi, it, cl, ri, tag, rec, rep, note)

        if e.msg_type != r.msg_type:
            return [d(35, e.msg_type, r.msg_type, "different message type")]
        out: list[Difference] = []
        e_tags = list(dict.fromkeys(t for t, _ in e.fields))
        r_tags = list(dict.fromkeys(t for t, _ in r.fields))
        for tag in e_tags + [t for t in r_tags if t not in e_tags]:
            if tag in IGNORED:
                continue
            ev, rv = e.values(tag), r.values(tag)
            if not ev or not rv:
                out.append(d(tag, "|".join(ev) or None, "|".join(rv) or None,
                             "missing in the replay" if ev else "not in the recording"))
                continue
            if len(ev) != len(rv):
                out.append(d(tag, "|".join(ev), "|".join(rv), "repeated a different number of times"))
                continue
            for a, b in zip(ev, rv):
                note = self._field(tag, a, b)
                if note:
                    out.append(d(tag, a, b, note))
        return out

    def _field(self, tag: int, a: str, b: str) -> str | None:
        if tag == 37:
            return self._map_order_id(a, b)
        if tag == 17:
            ma, mb = _FILL_EXEC_ID.match(a), _FILL_EXEC_ID.match(b)
            if ma or mb:
                if not (ma and mb):
                    return "a fill ExecID on one side only"
                return None if ma.group(1) == mb.group(1) else "different log index"
            return None  # the bridge's own ExecIDs carry a time: not comparable
        if tag == 137:
            try:
                da, db_ = Decimal(a), Decimal(b)
            except InvalidOperation:
                return "not a number"
            if abs(db_ - da) <= abs(da) * self.fee_tolerance:
                return None
            return f"fee differs by more than {self.fee_tolerance * 100:g}%"
        if tag == 58:
            return None if self._text(a) == self._text(b) else "different text"
        return None if a == b else "different value"


# ============================================================================================
# Replay
# ============================================================================================


@dataclass
class ReplayResult:
    session: str
    inbound: int
    recorded: int
    replayed: int
    differences: list[Difference]
    order_ids: dict[str, str]
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session, "status": "same" if self.clean else "different", "inbound": self.inbound,
                "recorded_answers": self.recorded, "replayed_answers": self.replayed,
                "differences": [asdict(x) for x in self.differences], "order_ids": self.order_ids,
                "seconds": f"{self.seconds:.1f}"}


def _rebuild(m: Msg, differ: Differ, shift: timedelta):
    """The inbound message to send now: body as recorded, OrderID mapped, times moved to now."""
    import quickfix as fix

    from fixbridge.fix.translate import utc_timestamp
    out = fix.Message()
    out.getHeader().setField(fix.MsgType(m.msg_type))
    now = datetime.now(timezone.utc)
    for tag, value in m.fields:
        if tag in HEADER:
            continue
        if tag == 60:
            value = utc_timestamp(now)
        elif tag == 126:
            value = utc_timestamp(_fix_time(value) + shift) if _fix_time(value) else value
        elif tag == 37:
            value = differ.order_ids.get(value, value)
        out.setField(fix.StringField(tag, value))
    return out


def _fix_time(v: str | None) -> datetime | None:
    if not v:
        return None
    for f in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(v, f).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def replay(msgs: list[Msg], session: str, sessions_file: Path, *, timeout: float = 30.0,
           fee_tolerance: Decimal = Decimal("0.5"), workdir: Path | None = None, log=None) -> ReplayResult:
    """Replay the inbound messages of ``msgs`` on a fresh devnet + bridge; diff the answers."""
    from fixbridge.fix.client import FixClient
    from fixbridge.ops.harness import Stack
    from fixbridge.ops.progress import tracked

    say = log or (lambda _m: None)
    begin, acceptor, counterparty = parse_session(session)
    groups = attribute(msgs)
    started = time.monotonic()
    differ = Differ(fee_tolerance)
    diffs: list[Difference] = []
    replayed_total = 0
    with Stack(sessions_file, workdir=workdir, log=say) as stack:
        client = FixClient("127.0.0.1", stack.port, counterparty, acceptor, begin_string=begin,
                           data_dir=stack.dir / "client").start()
        try:
            for gi, g in enumerate(tracked(groups, f"replaying {session}")):  # a bar on a terminal only
                num = gi if groups[0].inbound is None else gi + 1  # 0: answers recorded before any inbound
                if g.inbound is None:
                    got = _collect(client, len(g.expected), timeout)
                else:
                    sent_at = _fix_time(g.inbound.get(52))
                    shift = datetime.now(timezone.utc) - sent_at if sent_at else timedelta(0)
                    client.send(_rebuild(g.inbound, differ, shift))
                    got = _collect(client, len(g.expected), timeout)
                replayed_total += len(got)
                say(f"#{num}: {g.inbound.msg_type if g.inbound else '-'} "
                    f"{(g.inbound.get(11) if g.inbound else '') or ''}: {len(g.expected)} recorded, {len(got)} replayed")
                for ri, (e, r) in enumerate(zip(g.expected, got), 1):
                    diffs += differ.compare(num, g, ri, e, Msg("out", parse_fix(r.raw), r.raw))
                for ri in range(len(got), len(g.expected)):
                    e = g.expected[ri]
                    diffs.append(Difference(num, g.inbound.msg_type if g.inbound else None,
                                            g.inbound.get(11) if g.inbound else None, ri + 1, None,
                                            _summary(e), None, "recorded answer missing in the replay"))
                for ri in range(len(g.expected), len(got)):
                    diffs.append(Difference(num, g.inbound.msg_type if g.inbound else None,
                                            g.inbound.get(11) if g.inbound else None, ri + 1, None, None,
                                            _summary(Msg("out", parse_fix(got[ri].raw), got[ri].raw)),
                                            "extra answer in the replay"))
        finally:
            client.stop()
    return ReplayResult(session, sum(1 for g in groups if g.inbound), sum(len(g.expected) for g in groups),
                        replayed_total, diffs, dict(differ.order_ids), time.monotonic() - started)


def _summary(m: Msg) -> str:
    parts = [f"35={m.msg_type}"] + [f"{t}={m.get(t)}" for t in (150, 39, 11) if m.get(t) is not None]
    return " ".join(parts)


def _collect(client, expected: int, timeout: float, grace: float = 0.3) -> list:
    """Application messages until ``expected`` arrived (or ``timeout``), then any more within ``grace``."""
    got = []
    end = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < end:
        try:
            m = client.receive(max(0.05, end - time.monotonic()))
        except TimeoutError:
            break
        if m.msg_type not in ADMIN:
            got.append(m)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            m = client.receive(max(0.05, end - time.monotonic()))
        except TimeoutError:
            break
        if m.msg_type not in ADMIN:
            got.append(m)
    return got
