"""A bare QuickFIX echo acceptor: the physical limit of the FIX leg.

It is the bridge's acceptor with everything behind it removed: the same QuickFIX engine, the
same session settings (sessions/acceptor.cfg, resolved the way the bridge resolves it: same
data dictionary specs/FIX44.xml with ValidateUserDefinedFields=Y, same FileStore and FileLog),
and an Application whose fromApp answers every NewOrderSingle at once with an ExecutionReport
ExecType=0 (New) / OrdStatus=0 (New). No journal, no engine, no chain.

    .venv/bin/python bench/echo_acceptor.py --port 9990 --state-dir /tmp/echo

Prints "READY host:port" on stdout once it listens; SIGTERM or SIGINT stops it.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import quickfix as fix

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from fixbridge.fix.settings import resolve  # noqa: E402  (the bridge's own .cfg resolver)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


class EchoApplication(fix.Application):
    def __init__(self) -> None:
        super().__init__()
        self.seq = 0

    def onCreate(self, sessionID): pass
    def onLogon(self, sessionID): pass
    def onLogout(self, sessionID): pass
    def toAdmin(self, message, sessionID): pass
    def fromAdmin(self, message, sessionID): pass
    def toApp(self, message, sessionID): pass

    def fromApp(self, message, sessionID):
        try:
            if message.getHeader().getField(35) != fix.MsgType_NewOrderSingle:
                return
            self.seq += 1
            cl = message.getField(11)
            qty = message.getField(38) if message.isSetField(38) else "0"
            er = fix.Message()
            er.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
            for tag, value in ((37, f"ECHO{self.seq}"), (11, cl), (17, f"ECHO{self.seq}-0"), (150, "0"), (39, "0"),
                               (55, message.getField(55)), (54, message.getField(54)), (38, qty), (151, qty),
                               (14, "0"), (6, "0"), (60, _now())):
                er.setField(fix.StringField(tag, value))
            fix.Session.sendToTarget(er, sessionID)
        except Exception as e:  # never let a Python exception reach QuickFIX's thread
            print(f"echo: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state-dir", type=Path, required=True, help="FIX store and logs go here")
    ap.add_argument("--cfg", type=Path, default=ROOT / "sessions" / "acceptor.cfg",
                    help="QuickFIX acceptor settings to copy (default: the bridge's)")
    args = ap.parse_args(argv)

    fix_dir = args.state_dir / "fix"
    overrides = {"FileStorePath": str(fix_dir / "store"), "FileLogPath": str(fix_dir / "log"),
                 "SocketAcceptHost": args.host, "SocketAcceptPort": str(args.port)}
    path, _ = resolve(args.cfg, fix_dir / "echo.resolved.cfg", overrides)
    settings = fix.SessionSettings(str(path))
    app = EchoApplication()
    acceptor = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    acceptor.start()
    print(f"READY {args.host}:{args.port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        acceptor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
