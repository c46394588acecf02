"""A FIX 4.4 (or 4.2) initiator on QuickFIX: what `fixbridge client` and the tests trade through.

It is an ordinary counterparty: it logs on, sends orders, and collects every application
message it receives (validated against the same data dictionary the bridge publishes).
"""
from __future__ import annotations

import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import quickfix as fix

from fixbridge.fix.redact import scrub_dirs
from fixbridge.fix.translate import utc_timestamp

SPECS = Path(__file__).resolve().parents[2] / "specs"
DICTIONARIES = {"FIX.4.4": SPECS / "FIX44.xml", "FIX.4.2": SPECS / "FIX42.xml"}


@dataclass(frozen=True)
class Received:
    """An application message the client got: its type and its fields as strings."""
    msg_type: str
    fields: dict[int, str]
    raw: str

    def __getitem__(self, tag: int) -> str:
        return self.fields[tag]

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.fields.get(tag, default)


def _fields(msg: fix.Message) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in msg.toString().split("\x01"):
        if "=" in part:
            k, v = part.split("=", 1)
            out.setdefault(int(k), v)
    return out


class _App(fix.Application):
    def __init__(self, client: "FixClient") -> None:
        super().__init__()
        self.client = client

    def onCreate(self, sessionID): self.client.session_id = sessionID
    def onLogon(self, sessionID):
        self.client._scrub()
        self.client._logged_on.set()
    def onLogout(self, sessionID):
        self.client._logged_on.clear()
        self.client._scrub()
    def toAdmin(self, message, sessionID):
        if message.getHeader().getField(35) == "A":
            if self.client.reset_seq:
                message.setField(fix.StringField(141, "Y"))
            if self.client.username is not None:
                message.setField(fix.StringField(553, self.client.username))
            if self.client.password is not None:
                message.setField(fix.StringField(554, self.client.password))
    def fromAdmin(self, message, sessionID):
        try:
            if message.getHeader().getField(35) in ("3", "5"):  # Reject / Logout reach the user too
                self.client._inbox.put(Received(message.getHeader().getField(35), _fields(message), message.toString()))
        except Exception:
            pass
    def toApp(self, message, sessionID): pass
    def fromApp(self, message, sessionID):
        try:
            self.client._inbox.put(Received(message.getHeader().getField(35), _fields(message), message.toString()))
        except Exception:
            pass


class FixClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 9876, sender: str = "CLIENT1", target: str = "FIXBRIDGE",
                 data_dir: Path | None = None, reset_seq: bool = True, dictionary: Path | None = None,
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 ca_file: Path | None = None, begin_string: str = "FIX.4.4") -> None:
        """username/password: Username (553) / Password (554) on Logon. tls: connect over TLS,
        verifying the acceptor's certificate against ca_file (PEM) when given. begin_string:
        FIX.4.4 or FIX.4.2 (the dictionary is then specs/FIX44.xml or specs/FIX42.xml)."""
        if begin_string not in DICTIONARIES:
            raise ValueError(f"BeginString {begin_string!r} is not supported; expected one of {sorted(DICTIONARIES)}")
        self.begin_string = begin_string
        dictionary = dictionary or DICTIONARIES[begin_string]
        self.reset_seq = reset_seq
        self.username, self.password = username, password
        self.session_id: fix.SessionID | None = None
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._held: dict[str, list[Received]] = {}
        self._logged_on = threading.Event()
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fixclient-")
            data_dir = Path(self._tmp.name)
        data_dir.mkdir(parents=True, exist_ok=True)
        cfg = data_dir / "initiator.cfg"
        self._secret_dirs = [data_dir / "store", data_dir / "log"]
        cfg.write_text(
            "[DEFAULT]\nConnectionType=initiator\nReconnectInterval=1\nHeartBtInt=30\n"
            f"FileStorePath={data_dir / 'store'}\nFileLogPath={data_dir / 'log'}\n"
            "StartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\nSocketNodelay=Y\n"
            f"DataDictionary={dictionary}\nValidateUserDefinedFields=Y\n"
            + ("" if not tls else "SSLProtocol=all -SSLv2 -SSLv3 -TLSv1 -TLSv1_1\n"
               + (f"CertificationAuthoritiesFile={ca_file}\n" if ca_file else ""))
            + f"[SESSION]\nBeginString={begin_string}\nSenderCompID={sender}\nTargetCompID={target}\n"
            f"SocketConnectHost={host}\nSocketConnectPort={port}\n")
        self._settings = fix.SessionSettings(str(cfg))
        self._app = _App(self)
        self._store, self._log = fix.FileStoreFactory(self._settings), fix.FileLogFactory(self._settings)
        cls = fix.SSLSocketInitiator if tls else fix.SocketInitiator
        self._initiator: fix.Initiator | None = cls(self._app, self._store, self._settings, self._log)

    def _scrub(self) -> None:
        """Mask our Password (554) in QuickFIX's store and log (fixbridge.fix.redact)."""
        if self.password is not None:
            try:
                scrub_dirs(self._secret_dirs)
            except Exception:
                pass

    def start(self, timeout: float = 15.0) -> "FixClient":
        self._initiator.start()
        if not self._logged_on.wait(timeout):
            self._initiator.stop()
            raise TimeoutError("no Logon from the acceptor (is the bridge running and the CompIDs right?)")
        return self

    def stop(self) -> None:
        if self._initiator is None:
            return
        self._initiator.stop()
        # QuickFIX keeps sessions in a process-wide registry until the initiator is destroyed;
        # drop it so a later client with the same CompIDs gets its own session.
        self._initiator = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "FixClient":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def logged_on(self) -> bool:
        return self._logged_on.is_set()

    def send(self, msg: fix.Message) -> None:
        assert self.session_id is not None
        if not fix.Session.sendToTarget(msg, self.session_id):
            raise RuntimeError("the session refused the message (not logged on?)")

    def receive(self, timeout: float = 30.0, msg_type: str | None = None) -> Received:
        """The next application message (of msg_type if given; others are dropped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {msg_type or 'message'} within {timeout}s")
            try:
                m = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if msg_type is None or m.msg_type == msg_type:
                return m

    def reports_until_terminal(self, cl_ord_id: str, timeout: float = 60.0) -> list[Received]:
        """ExecutionReports for one ClOrdID up to the one with a terminal OrdStatus. Reports for
        other ClOrdIDs that arrive meanwhile are kept for their own call, in order."""
        out: list[Received] = []
        held = self._held.pop(cl_ord_id, [])
        end = time.monotonic() + timeout
        while True:
            m = held.pop(0) if held else self.receive(max(0.1, end - time.monotonic()))
            if m.msg_type == "8" and m.get(11) == cl_ord_id:
                out.append(m)
                if m[39] in ("2", "4", "8", "C"):
                    if held:
                        self._held[cl_ord_id] = held
                    return out
            elif m.msg_type == "8" and m.get(11):
                self._held.setdefault(m[11], []).append(m)

    def drain(self) -> list[Received]:
        out = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out


def new_order_single(cl_ord_id: str, symbol: str, side: str, qty: Decimal | None = None, *,
                     cash_qty: Decimal | None = None, limit: Decimal | None = None, tif: str = "3",
                     account: str | None = None, expire_time: datetime | None = None,
                     ex_destination: str | None = None, ord_type: str | None = None,
                     handl_inst: str | None = None, stop_px: Decimal | None = None,
                     expire_date: str | None = None) -> fix.Message:
    """side: '1' buy / '2' sell; tif: '0' Day / '1' GTC / '3' IOC / '4' FOK / '6' GTD; stop_px makes a
    stop (40=3), or with a limit a stop limit (40=4). Values go on the wire as exact strings.
    handl_inst: HandlInst (21), required by FIX 4.2 ('1': automated, no intervention)."""
    if ord_type is None and stop_px is not None:
        ord_type = "4" if limit is not None else "3"
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_NewOrderSingle))
    fields: list[tuple[int, object]] = [
        (11, cl_ord_id), (55, symbol), (54, side), (60, utc_timestamp(datetime.now(timezone.utc))),
        (40, ord_type or ("2" if limit is not None else "1")), (59, tif), (38, qty), (152, cash_qty), (44, limit),
        (1, account), (126, utc_timestamp(expire_time) if expire_time else None), (100, ex_destination),
        (21, handl_inst), (99, stop_px), (432, expire_date),
    ]
    for tag, value in fields:
        if value is not None:
            m.setField(fix.StringField(tag, format(value, "f") if isinstance(value, Decimal) else str(value)))
    return m


def order_cancel_replace_request(cl_ord_id: str, orig_cl_ord_id: str, symbol: str, side: str, ord_type: str, *,
                                 qty: Decimal | None = None, limit: Decimal | None = None, tif: str | None = None,
                                 expire_time: datetime | None = None, stop_px: Decimal | None = None,
                                 handl_inst: str | None = None) -> fix.Message:
    """OrderCancelReplaceRequest (G): the order's new terms (what is not sent stays as it was)."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelReplaceRequest))
    fields: list[tuple[int, object]] = [
        (11, cl_ord_id), (41, orig_cl_ord_id), (55, symbol), (54, side), (40, ord_type),
        (60, utc_timestamp(datetime.now(timezone.utc))), (38, qty), (44, limit), (59, tif),
        (126, utc_timestamp(expire_time) if expire_time else None), (99, stop_px), (21, handl_inst),
    ]
    for tag, value in fields:
        if value is not None:
            m.setField(fix.StringField(tag, format(value, "f") if isinstance(value, Decimal) else str(value)))
    return m


def order_status_request(cl_ord_id: str, side: str = "1", symbol: str = "N/A", req_id: str | None = None) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderStatusRequest))
    for tag, value in ((11, cl_ord_id), (55, symbol), (54, side), (790, req_id)):
        if value is not None:
            m.setField(fix.StringField(tag, value))
    return m


def order_cancel_request(cl_ord_id: str, orig_cl_ord_id: str, side: str = "1", symbol: str = "N/A") -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelRequest))
    for tag, value in ((11, cl_ord_id), (41, orig_cl_ord_id), (55, symbol), (54, side),
                       (60, utc_timestamp(datetime.now(timezone.utc)))):
        m.setField(fix.StringField(tag, value))
    return m


def order_mass_status_request(req_id: str, req_type: str = "7", symbol: str | None = None,
                              side: str | None = None) -> fix.Message:
    """AF (FIX 4.4): MassStatusReqType 7 all the session's orders, 1 one security (Symbol)."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderMassStatusRequest))
    for tag, value in ((584, req_id), (585, req_type), (55, symbol), (54, side)):
        if value is not None:
            m.setField(fix.StringField(tag, value))
    return m


def order_mass_cancel_request(cl_ord_id: str, req_type: str = "7", symbol: str | None = None,
                              side: str | None = None) -> fix.Message:
    """q (FIX 4.4): MassCancelRequestType 7 all the session's orders, 1 one security (Symbol)."""
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(fix.MsgType_OrderMassCancelRequest))
    for tag, value in ((11, cl_ord_id), (530, req_type), (55, symbol), (54, side),
                       (60, utc_timestamp(datetime.now(timezone.utc)))):
        if value is not None:
            m.setField(fix.StringField(tag, value))
    return m


def market_data_request(md_req_id: str, symbols: list[str], subscription: str = "1", depth: int = 0,
                        entry_types: tuple[str, ...] = ("0", "1", "2"), update_type: str | None = None) -> fix.Message:
    """MarketDataRequest (V): subscription '0' snapshot, '1' snapshot + updates, '2' unsubscribe."""
    import quickfix44 as fix44
    m = fix44.MarketDataRequest()
    for tag, value in ((262, md_req_id), (263, subscription), (264, str(depth)), (265, update_type)):
        if value is not None:
            m.setField(fix.StringField(tag, value))
    for t in entry_types:
        g = fix44.MarketDataRequest.NoMDEntryTypes()
        g.setField(fix.StringField(269, t))
        m.addGroup(g)
    for s in symbols:
        g = fix44.MarketDataRequest.NoRelatedSym()
        g.setField(fix.StringField(55, s))
        m.addGroup(g)
    return m


def md_entries(m: Received) -> list[dict[int, str]]:
    """The NoMDEntries of a W or X, each entry's fields by tag (an entry starts at its delimiter:
    MDEntryType in a W, MDUpdateAction in an X)."""
    delim = 269 if m.msg_type == "W" else 279
    out: list[dict[int, str]] = []
    inside = False
    for part in m.raw.split("\x01"):
        if "=" not in part:
            continue
        k, v = part.split("=", 1)
        tag = int(k)
        if tag == 268:
            inside = True
        elif inside and tag == delim:
            out.append({tag: v})
        elif inside and out and tag != 10:
            out[-1][tag] = v
    return out
