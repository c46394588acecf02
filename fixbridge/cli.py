"""The `fixbridge` command: run the bridge, start the devnet, trade by hand, read the journal."""
from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
client_app = typer.Typer(no_args_is_help=True, help="Trade by hand: a FIX 4.4 (or --begin-string FIX.4.2) initiator on QuickFIX.")
journal_app = typer.Typer(no_args_is_help=True, help="Read the journal.")
app.add_typer(client_app, name="client")
app.add_typer(journal_app, name="journal")
console = Console()

DEFAULT_JOURNAL = "sqlite:///var/journal.db"


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {escape(msg)}")  # a message may name a TOML key: [wallets.w1]
    raise typer.Exit(2)


@app.command()
def run(
    spec: list[Path] = typer.Option([Path("specs/devnet.toml"), Path("specs/devnet2.toml")],
                                    help="venue/instrument spec, one per chain (repeat the option)"),
    sessions: Path = typer.Option(Path("sessions/counterparties.toml"), help="counterparties and wallets (acceptor.cfg beside it)"),
    journal: str = typer.Option(DEFAULT_JOURNAL, help="SQLAlchemy URL of the journal"),
    state_dir: Path = typer.Option(Path("var"), help="runtime state: FIX store and logs, devnet log"),
    host: Optional[str] = typer.Option(None, help="FIX listen address (default from acceptor.cfg)"),
    port: Optional[int] = typer.Option(None, help="FIX listen port (default from acceptor.cfg)"),
    devnet: bool = typer.Option(True, help="start the embedded devnet (two anvil chains with the venues) and write the specs first"),
    devnet_port: int = typer.Option(8545, help="the first anvil's RPC port when --devnet (the second uses the next port)"),
    block_time: Optional[float] = typer.Option(None, help="anvil block time in seconds (default automine)"),
    log_json: bool = typer.Option(False, help="JSON log lines instead of console output"),
    metrics: bool = typer.Option(True, "--metrics/--no-metrics",
                                 help="serve /metrics, /healthz, /readyz and the status page on the HTTP port"),
    metrics_host: str = typer.Option("127.0.0.1", help="HTTP port's address (beyond loopback it needs a token)"),
    metrics_port: int = typer.Option(9877, help="HTTP port for metrics, health and the status page"),
    metrics_token_env: str = typer.Option("FIXBRIDGE_STATUS_TOKEN",
                                          help="environment variable holding the HTTP port's token"),
) -> None:
    """Run the FIX acceptor. By default on the embedded devnet with a SQLite journal under var/."""
    from fixbridge import logs
    from fixbridge.bridge import Bridge, BridgeConfig, StatusConfig
    from fixbridge.config import ConfigError

    logs.configure(json=log_json)
    status = StatusConfig(metrics_host, metrics_port, os.environ.get(metrics_token_env) or None,
                          metrics_token_env) if metrics else None
    if status is not None:
        from fixbridge.web.server import ExposureError, check_exposure
        try:  # before anything starts (the devnet included)
            check_exposure(status.host, status.token, status.token_env)
        except ExposureError as e:
            _fail(f"configuration: --metrics-host: {e}")
    net = None
    try:
        if devnet:
            from fixbridge.devnet.anvil import AnvilError
            from fixbridge.devnet.deploy import DeployError
            from fixbridge.devnet.embedded import start_embedded_devnet
            from fixbridge.devnet.second_chain import SECOND_CHAIN_ID
            if len(spec) != 2:
                _fail("--devnet writes two specs (one per chain): give --spec twice, or --no-devnet")
            state_dir.mkdir(parents=True, exist_ok=True)
            try:
                net = start_embedded_devnet(state_dir, spec, devnet_port, block_time)
            except (AnvilError, DeployError) as e:
                _fail(f"devnet: {e}")
            first, second = net.nodes
            how = "resumed from" if all(net.resumed) else "state kept in"
            console.print(f"devnet: anvil at {first.rpc_url} (chain 31337: Uniswap V2 + V3, options) and "
                          f"{second.rpc_url} (chain {SECOND_CHAIN_ID}: Uniswap V2); {how} {state_dir / 'devnet'}; "
                          f"specs {', '.join(map(str, spec))} (`make clean` starts over)")
        try:
            bridge = Bridge(BridgeConfig(spec, sessions, journal, state_dir, host, port, status))
        except ConfigError as e:
            _fail(f"configuration: {e}")
        if net is not None:  # the journal knows the chain now: book a fresh devnet's funding as deposits
            _journal_devnet_funding(journal, spec, [d for d in net.deployments if d is not None])
        acc = bridge.acceptor

        def ready() -> None:
            console.print(
                f"fixbridge listening on {acc.host}:{acc.port} — acceptor CompID FIXBRIDGE, "
                f"counterparties: {', '.join(s['TargetCompID'] + ' (' + s['BeginString'] + ')' for s in acc.session_defs)}\n"
                f"journal: {journal}\n"
                f"{_status_line(bridge)}\n"
                f"try:  fixbridge client buy WETH/USDC 0.5 --limit 3100 --tif IOC --port {acc.port}\n"
                "Ctrl-C stops.")
        try:
            bridge.run_until_signal(on_ready=ready)
        except ConfigError as e:
            _fail(f"configuration: {e}")
    finally:
        if net is not None:
            net.stop()
    # Stopped cleanly: everything is journaled and closed. Leave without the interpreter's
    # teardown, which would destroy QuickFIX's native objects under threads that may still hold
    # them (a segmentation fault at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _journal_devnet_funding(journal: str, specs: list[Path], deployed: list) -> None:
    """Journal what the devnet funded the wallets with as deposits (who 'devnet'), once per
    funding transaction, so `fixbridge reconcile` finds it explained."""
    if not deployed:
        return
    from sqlalchemy.exc import SQLAlchemyError

    from fixbridge.devnet.funding import journal_funding
    from fixbridge.journal import JournalError
    try:
        rows = journal_funding(journal, deployed, specs)
    except (JournalError, SQLAlchemyError, OSError) as e:
        _fail(f"journal {journal}: cannot record the devnet's funding: {e}")
    if rows:
        console.print(f"journal: the devnet's funding recorded as {len(rows)} deposits (fixbridge journal movements)")


def _status_line(bridge) -> str:
    if bridge.status_server is not None:
        url = bridge.status_server.url
        return (f"status: {url}/ (live page)  metrics: {url}/metrics  health: {url}/healthz {url}/readyz"
                + ("  (token required)" if bridge._status_cfg.token else ""))
    if bridge.status_error is not None:
        return f"status: NOT served, {bridge.status_error} (--metrics-port to choose another, --no-metrics to turn off)"
    return "status: off (--no-metrics)"


@app.command("devnet")
def devnet_cmd(
    port: int = typer.Option(8545), spec: Path = typer.Option(Path("specs/devnet.toml")),
    block_time: Optional[float] = typer.Option(None),
) -> None:
    """Start only the devnet: anvil with the venues deployed; writes the spec; Ctrl-C stops."""
    from fixbridge.devnet.__main__ import main
    args = ["--port", str(port), "--spec", str(spec)] + (["--block-time", str(block_time)] if block_time else [])
    raise typer.Exit(main(args))


# ---- client ---------------------------------------------------------------------------------
TIF = {"IOC": "3", "FOK": "4", "DAY": "0", "GTC": "1", "GTD": "6"}
RESTING_TIF = ("DAY", "GTC", "GTD")
ORD_STATUS = {"0": "New", "1": "PartiallyFilled", "2": "Filled", "4": "Canceled", "6": "PendingCancel",
              "8": "Rejected", "A": "PendingNew", "C": "Expired"}
EXEC_TYPE = {"0": "New", "F": "Trade", "4": "Canceled", "8": "Rejected", "C": "Expired", "I": "OrderStatus",
             "6": "PendingCancel", "H": "TradeCancel", "1": "PartialFill (4.2)", "2": "Fill (4.2)",
             "5": "Replaced", "D": "Restated (stop triggered)"}
EXEC_TRANS_TYPE = {"0": "New", "1": "Cancel", "2": "Correct", "3": "Status"}


def _dec(value: Optional[str], name: str) -> Optional[Decimal]:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        _fail(f"{name} must be a decimal number, got {value!r}")
        raise


def _client(host: str, port: int, sender: str, target: str, begin_string: str = "FIX.4.4"):
    import os
    from fixbridge.fix.client import DICTIONARIES, FixClient
    if begin_string not in DICTIONARIES:
        _fail(f"--begin-string must be one of {', '.join(DICTIONARIES)}")
    try:  # a session with password_hash: Username/Password from the environment, never the command line
        return FixClient(host, port, sender, target, username=os.environ.get("FIXBRIDGE_FIX_USERNAME"),
                         password=os.environ.get("FIXBRIDGE_FIX_PASSWORD"), begin_string=begin_string).start()
    except TimeoutError as e:
        _fail(f"{e} (tried {host}:{port} as {sender} -> {target})")


REPORT_ROWS = [("MsgType", 35), ("ExecTransType", 20), ("ExecType", 150), ("OrdStatus", 39), ("ClOrdID", 11), ("OrderID", 37),
               ("ExecID", 17), ("Side", 54), ("Symbol", 55), ("OrderQty", 38), ("CashOrderQty", 152), ("Price", 44),
               ("LastQty", 32), ("LastPx", 31), ("CumQty", 14), ("LeavesQty", 151), ("AvgPx", 6),
               ("Fee (ETH)", 137), ("OrdRejReason", 103), ("Text", 58), ("Tx hash", 20001), ("Block", 20002),
               ("Chain id", 20003), ("Venue", 20004), ("Fee (ETH, 4.2)", 20006), ("OrigClOrdID", 41),
               ("MassStatusReqID", 584), ("TotNumReports", 911), ("LastRptRequested", 912),
               ("MassCancelResponse", 531), ("TotalAffectedOrders", 533), ("TimeInForce", 59), ("StopPx", 99),
               ("ExpireTime", 126), ("ExecRestatementReason", 378), ("CxlRejResponseTo", 434)]
NAMES = {39: ORD_STATUS, 150: EXEC_TYPE, 20: EXEC_TRANS_TYPE, 54: {"1": "Buy", "2": "Sell"}}


def _print_reports(reports) -> None:
    """One column per report, one row per field: readable in an 80-column terminal."""
    t = Table(title="Messages received", show_lines=False)
    t.add_column("field", style="bold")
    for i, _ in enumerate(reports, 1):
        t.add_column(f"#{i}", overflow="fold")
    for name, tag in REPORT_ROWS:
        values = [r.msg_type if tag == 35 else r.get(tag) for r in reports]
        if all(v is None for v in values):
            continue
        t.add_row(f"{name} ({tag})", *[NAMES.get(tag, {}).get(v, v) if v is not None else "" for v in values])
    console.print(t)


def _expire(expire: Optional[str]) -> tuple[Optional[datetime], Optional[str]]:
    """--expire as ExpireTime (126, an ISO time, UTC unless it says) or ExpireDate (432, YYYY-MM-DD)."""
    if expire is None:
        return None, None
    try:
        if len(expire) == 10:
            return None, datetime.strptime(expire, "%Y-%m-%d").strftime("%Y%m%d")
        at = datetime.fromisoformat(expire)
        return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)), None
    except ValueError:
        _fail(f"--expire must be a date (2026-12-31) or a time (2026-12-31T17:00:00Z), got {expire!r}")
        raise


def _order(side: str, symbol: str, qty: str, limit: Optional[str], tif: str, cash: bool, account: Optional[str],
           venue: Optional[str], cl_ord_id: Optional[str], host: str, port: int, sender: str, target: str,
           timeout: float, begin_string: str = "FIX.4.4", stop: Optional[str] = None,
           expire: Optional[str] = None) -> None:
    from fixbridge.fix.client import new_order_single
    q = _dec(qty, "quantity")
    if tif.upper() not in TIF:
        _fail(f"--tif must be one of {', '.join(TIF)}")
    expire_time, expire_date = _expire(expire)
    cl = cl_ord_id or f"CLI-{uuid.uuid4().hex[:10]}"
    c = _client(host, port, sender, target, begin_string)
    try:
        c.send(new_order_single(cl, symbol, side, None if cash else q, cash_qty=q if cash else None,
                                limit=_dec(limit, "--limit"), tif=TIF[tif.upper()], account=account,
                                ex_destination=venue, handl_inst="1" if begin_string == "FIX.4.2" else None,
                                stop_px=_dec(stop, "--stop"), expire_time=expire_time, expire_date=expire_date))
        if stop is not None or (tif.upper() in RESTING_TIF and limit is not None):
            # A resting order: its acknowledgement (or refusal) is the answer now; fills come later.
            first = c.receive(timeout, "8")
            _print_reports([first])
            if first.get(39) in ("0", "1"):
                console.print(f"resting: [bold]fixbridge client status {cl}[/bold], "
                              f"[bold]fixbridge client amend {cl} ...[/bold] or [bold]fixbridge client cancel {cl}[/bold]")
            return
        try:
            reports = c.reports_until_terminal(cl, timeout=timeout)
        except TimeoutError:
            reports = c.drain()
            console.print(f"[yellow]no terminal report within {timeout}s[/yellow]")
        _print_reports(reports)
    finally:
        c.stop()


_host = typer.Option("127.0.0.1", help="bridge host")
_port = typer.Option(9876, help="bridge FIX port")
_sender = typer.Option("CLIENT1", help="our SenderCompID")
_target = typer.Option("FIXBRIDGE", help="the bridge's CompID")
_begin = typer.Option("FIX.4.4", "--begin-string", help="FIX.4.4 or FIX.4.2 (e.g. --sender CLIENT42 --begin-string FIX.4.2)")
_tif = typer.Option("IOC", help="IOC or FOK (at once); DAY, GTC or GTD (a limit or stop order rests in the bridge)")
_stop = typer.Option(None, help="StopPx: a stop order (with --limit, a stop limit)")
_expire_opt = typer.Option(None, help="GTD: ExpireTime (2026-12-31T17:00:00Z) or ExpireDate (2026-12-31)")


@client_app.command()
def buy(symbol: str, qty: str, limit: Optional[str] = typer.Option(None, help="limit price (quote per base); omit for market"),
        tif: str = _tif, cash: bool = typer.Option(False, help="qty is a quote amount (CashOrderQty)"),
        account: Optional[str] = None, venue: Optional[str] = typer.Option(None, help="ExDestination"),
        stop: Optional[str] = _stop, expire: Optional[str] = _expire_opt,
        cl_ord_id: Optional[str] = None, host: str = _host, port: int = _port, sender: str = _sender,
        target: str = _target, timeout: float = 60.0, begin_string: str = _begin) -> None:
    """Send a Buy NewOrderSingle and print the ExecutionReports (a resting order: its acknowledgement)."""
    _order("1", symbol, qty, limit, tif, cash, account, venue, cl_ord_id, host, port, sender, target, timeout, begin_string,
           stop, expire)


@client_app.command()
def sell(symbol: str, qty: str, limit: Optional[str] = typer.Option(None, help="limit price (quote per base); omit for market"),
         tif: str = _tif, cash: bool = typer.Option(False, help="qty is a quote amount (CashOrderQty)"),
         account: Optional[str] = None, venue: Optional[str] = typer.Option(None, help="ExDestination"),
         stop: Optional[str] = _stop, expire: Optional[str] = _expire_opt,
         cl_ord_id: Optional[str] = None, host: str = _host, port: int = _port, sender: str = _sender,
         target: str = _target, timeout: float = 60.0, begin_string: str = _begin) -> None:
    """Send a Sell NewOrderSingle and print the ExecutionReports (a resting order: its acknowledgement)."""
    _order("2", symbol, qty, limit, tif, cash, account, venue, cl_ord_id, host, port, sender, target, timeout, begin_string,
           stop, expire)


@client_app.command()
def amend(cl_ord_id: str, qty: Optional[str] = typer.Option(None, help="new OrderQty (not below what is filled)"),
          limit: Optional[str] = typer.Option(None, help="new limit price"), tif: Optional[str] = typer.Option(None, help="DAY, GTC or GTD"),
          expire: Optional[str] = _expire_opt, stop: Optional[str] = typer.Option(None, help="new StopPx"),
          new_cl_ord_id: Optional[str] = None, host: str = _host, port: int = _port, sender: str = _sender,
          target: str = _target, begin_string: str = _begin) -> None:
    """Send an OrderCancelReplaceRequest (G) for a resting order and print the answer (150=5, or a
    cancel reject 434=2). The order's Symbol, Side and OrdType are read from its status first."""
    from fixbridge.fix.client import order_cancel_replace_request
    if tif is not None and tif.upper() not in RESTING_TIF:
        _fail(f"--tif must be one of {', '.join(RESTING_TIF)}")
    expire_time, expire_date = _expire(expire)
    if expire_date is not None:
        expire_time = datetime.strptime(expire_date, "%Y%m%d").replace(tzinfo=timezone.utc)
    c = _client(host, port, sender, target, begin_string)
    try:
        now = _order_now(c, cl_ord_id, begin_string)
        if now.get(39) == "8" and now.get(37) in (None, "NONE"):
            _fail(f"unknown order {cl_ord_id!r}")
        ord_type = "4" if now.get(99) and now.get(44) else "3" if now.get(99) else "2"
        new = new_cl_ord_id or f"CLI-{uuid.uuid4().hex[:10]}"
        c.send(order_cancel_replace_request(new, cl_ord_id, now[55], now[54], ord_type, qty=_dec(qty, "--qty"),
                                            limit=_dec(limit, "--limit"), tif=TIF[tif.upper()] if tif else None,
                                            expire_time=expire_time, stop_px=_dec(stop, "--stop"),
                                            handl_inst="1" if begin_string == "FIX.4.2" else None))
        _print_reports([_answer_to(c, new)])
    finally:
        c.stop()


def _order_now(c, cl_ord_id: str, begin_string: str):
    """The order as the bridge has it (an OrderStatusRequest's answer): what a cancel or amend must repeat."""
    from fixbridge.fix.client import order_status_request
    c.send(order_status_request(cl_ord_id, req_id=f"S{int(time.time())}" if begin_string == "FIX.4.4" else None))
    return c.receive(15, "8")


def _answer_to(c, cl_ord_id: str):
    """The report, cancel reject or reject that answers the request sent with `cl_ord_id`."""
    while True:
        m = c.receive(15)
        if m.msg_type in ("8", "9", "3", "j") and m.get(11) in (cl_ord_id, None):
            return m


@client_app.command()
def cancel(cl_ord_id: str, host: str = _host, port: int = _port, sender: str = _sender, target: str = _target,
           begin_string: str = _begin) -> None:
    """Send an OrderCancelRequest (F) and print the answer: Canceled (a resting order at once), Pending
    Cancel, or a cancel reject."""
    from fixbridge.fix.client import order_cancel_request
    c = _client(host, port, sender, target, begin_string)
    try:
        now = _order_now(c, cl_ord_id, begin_string)
        new = f"CLI-{uuid.uuid4().hex[:10]}"
        c.send(order_cancel_request(new, cl_ord_id, now.get(54) or "1", now.get(55) or "N/A"))
        _print_reports([_answer_to(c, new)])
    finally:
        c.stop()


@client_app.command()
def status(cl_ord_id: str, host: str = _host, port: int = _port, sender: str = _sender, target: str = _target,
           begin_string: str = _begin) -> None:
    """Send an OrderStatusRequest and print the answer."""
    from fixbridge.fix.client import order_status_request
    c = _client(host, port, sender, target, begin_string)
    try:  # OrdStatusReqID (790) is FIX 4.4's
        c.send(order_status_request(cl_ord_id, req_id=f"S{int(time.time())}" if begin_string == "FIX.4.4" else None))
        _print_reports([c.receive(15, "8")])
    finally:
        c.stop()


def _scope(symbol: Optional[str], side: Optional[str]) -> tuple[str, Optional[str], Optional[str]]:
    sides = {"buy": "1", "sell": "2"}
    if side is not None and side.lower() not in sides:
        _fail("--side must be buy or sell")
    return ("1" if symbol else "7"), symbol, sides[side.lower()] if side else None


@client_app.command("mass-status")
def mass_status(symbol: Optional[str] = typer.Option(None, help="only this instrument (MassStatusReqType 1; default 7, all)"),
                side: Optional[str] = typer.Option(None, help="buy or sell"), host: str = _host, port: int = _port,
                sender: str = _sender, target: str = _target, timeout: float = 15.0) -> None:
    """OrderMassStatusRequest (AF, FIX 4.4): one status report (150=I) per working order of the session."""
    from fixbridge.fix.client import order_mass_status_request
    kind, sym, sd = _scope(symbol, side)
    req = f"MS-{uuid.uuid4().hex[:10]}"
    c = _client(host, port, sender, target)
    try:
        c.send(order_mass_status_request(req, kind, sym, sd))
        reports = []
        while not reports or reports[-1].get(912) != "Y":
            m = c.receive(timeout)
            if m.msg_type in ("3", "j") or (m.msg_type == "8" and m.get(584) == req):
                reports.append(m)
            if m.msg_type in ("3", "j"):
                break
        _print_reports(reports)
    finally:
        c.stop()


@client_app.command("mass-cancel")
def mass_cancel(symbol: Optional[str] = typer.Option(None, help="only this instrument (MassCancelRequestType 1; default 7, all)"),
                side: Optional[str] = typer.Option(None, help="buy or sell"), host: str = _host, port: int = _port,
                sender: str = _sender, target: str = _target, timeout: float = 30.0) -> None:
    """OrderMassCancelRequest (q, FIX 4.4): the OrderMassCancelReport (r), then each order's outcome."""
    from fixbridge.fix.client import order_mass_cancel_request
    kind, sym, sd = _scope(symbol, side)
    cl = f"MC-{uuid.uuid4().hex[:10]}"
    c = _client(host, port, sender, target)
    try:
        c.send(order_mass_cancel_request(cl, kind, sym, sd))
        report = c.receive(timeout, None)
        while report.msg_type not in ("r", "3", "j"):
            report = c.receive(timeout, None)
        got = [report]
        expected = int(report.get(533) or 0)  # each order tried ends Canceled, filled, or with a cancel reject
        end = time.monotonic() + timeout
        done = 0
        while done < expected and time.monotonic() < end:
            try:
                m = c.receive(max(0.1, end - time.monotonic()))
            except TimeoutError:
                break
            if m.msg_type in ("8", "9") and m.get(11) == cl:
                got.append(m)
                if m.msg_type == "9" or m.get(39) in ("2", "4", "8", "C"):
                    done += 1
        _print_reports(got)
    finally:
        c.stop()


MD_TYPES = {"0": "bid", "1": "offer", "2": "trade"}
MD_ACTIONS = {"0": "new", "1": "change", "2": "delete"}


def _print_md(m) -> None:
    from fixbridge.fix.client import md_entries
    if m.msg_type == "Y":
        console.print(f"[red]MarketDataRequestReject[/red] {m.get(262)}: reason {m.get(281, '-')}: {m.get(58)}")
        return
    if m.msg_type == "W":
        t = Table(title=f"{m.get(55)} snapshot (MDReqID {m.get(262)})")
        for col in ("type", "level", "size", "price", "venue", "tx hash"):
            t.add_column(col)
        for e in md_entries(m):
            t.add_row(MD_TYPES.get(e.get(269, ""), e.get(269)), e.get(290, ""), e.get(271, ""), e.get(270, ""),
                      e.get(275, "best"), e.get(20001, ""))
        console.print(t)
        return
    if m.msg_type == "X":
        for e in md_entries(m):
            console.print(f"{MD_ACTIONS.get(e.get(279), e.get(279)):<6} {e.get(55, '')} "
                          f"{MD_TYPES.get(e.get(269, ''), e.get(269, '')):<5} "
                          + (f"{e.get(271)} @ {e.get(270)} {e.get(275, 'best')} "
                             if e.get(279) != "2" else "") + f"[dim]{e.get(278, '')}[/dim]")


@client_app.command()
def md(symbols: list[str] = typer.Argument(..., help="instruments, e.g. WETH/USDC ETH-20261231-3000-C"),
       depth: int = typer.Option(0, help="MarketDepth: 0 the whole ladder, N its first N sizes"),
       types: str = typer.Option("0,1,2", help="MDEntryTypes: 0 bid, 1 offer, 2 trade"),
       snapshot: bool = typer.Option(False, help="a snapshot only (no updates)"),
       seconds: float = typer.Option(0, help="stop after this long (0: until Ctrl-C)"),
       host: str = _host, port: int = _port, sender: str = _sender, target: str = _target) -> None:
    """Subscribe to market data (MarketDataRequest) and print the snapshot and each update."""
    from fixbridge.fix.client import market_data_request
    c = _client(host, port, sender, target)
    req = f"MD-{uuid.uuid4().hex[:8]}"
    end = time.monotonic() + seconds if seconds else None
    try:
        c.send(market_data_request(req, symbols, "0" if snapshot else "1", depth, tuple(types.split(","))))
        while end is None or time.monotonic() < end:
            try:
                m = c.receive(0.5 if end is None else max(0.05, min(0.5, end - time.monotonic())))
            except TimeoutError:
                continue
            if m.msg_type in ("W", "X", "Y"):
                _print_md(m)
                if m.msg_type == "Y":
                    break
            if snapshot and m.msg_type == "W" and m.get(55) == symbols[-1]:
                break
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


# ---- journal --------------------------------------------------------------------------------
_journal_opt = typer.Option(DEFAULT_JOURNAL, help="SQLAlchemy URL of the journal")
_format_opt = typer.Option("table", "--format", "-f", help="table, json or csv (exact decimals as text)")
_output_opt = typer.Option(None, "--output", "-o", help="write to this file instead of stdout")
_f_session = typer.Option(None, help="session id (FIX.4.4:FIXBRIDGE->CLIENT1) or counterparty CompID")
_f_symbol = typer.Option(None, help="instrument, e.g. WETH/USDC")
_f_side = typer.Option(None, help="buy or sell")
_f_status = typer.Option(None, help="order status(es), comma-separated; 'open' = not terminal")
_f_since = typer.Option(None, help="from this ISO date/time, inclusive (UTC unless an offset is given)")
_f_until = typer.Option(None, help="to this ISO time, exclusive; a bare date includes that whole day")


def _open_journal(url: str):
    from fixbridge.ops.common import JournalNotFound, open_journal
    try:
        return open_journal(url)
    except JournalNotFound as e:
        _fail(str(e))


def _emit(fmt: str, output: Optional[Path], *, rows=None, columns=(), table_columns=None, title=None, doc=None) -> None:
    """Print rows (or a whole JSON document) in the chosen format, to stdout or a file."""
    from fixbridge.ops import output as out
    if fmt not in out.FORMATS:
        _fail(f"--format must be one of {', '.join(out.FORMATS)}, got {fmt!r}")
    if fmt == "table":
        table = out.to_table(rows or [], table_columns or columns, title=title)
        if output is None:
            console.print(table)
        else:
            with open(output, "w") as fh:
                Console(file=fh, width=250).print(table)
        return
    if fmt == "csv" and output is not None and rows:  # an export to a file: a bar on a terminal as rows are written
        from fixbridge.ops.progress import tracked
        text = out.to_csv(tracked(rows, f"writing {output}"), columns)
    else:
        text = out.to_json(doc if doc is not None else rows) if fmt == "json" else out.to_csv(rows or [], columns)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(output).write_text(text, newline="") if fmt == "csv" else Path(output).write_text(text)


@journal_app.command()
def trail(order: str = typer.Argument(..., help="ClOrdID or OrderID"),
          journal: str = _journal_opt,
          session: Optional[str] = typer.Option(None, help="session id, when a ClOrdID is used on several"),
          fmt: str = _format_opt, output: Optional[Path] = _output_opt) -> None:
    """Every journaled step of one order in time order: FIX in, decisions, quote, approvals,
    transaction signed/broadcast/mined, receipt, fills, every FIX out."""
    from fixbridge.ops.trail import TRAIL_COLUMNS, AmbiguousClOrdID, order_trail
    j = _open_journal(journal)
    try:
        tr = order_trail(j, order, session)
    except AmbiguousClOrdID as e:
        _fail(str(e))
    finally:
        j.close()
    if tr is None:
        _fail(f"no order {order!r} in {journal}" + (f" on session {session}" if session else ""))
    o = tr.order
    rows = [e.as_dict() for e in tr.entries]
    if fmt == "csv":
        rows = [{**r, "order_id": o["order_id"], "session_id": o["session_id"], "cl_ord_id": o["cl_ord_id"]}
                for r in rows]
    title = (f"Audit trail of {o['order_id']} (ClOrdID {o['cl_ord_id']} on {o['session_id']}): "
             f"{o['side']} {o['order_qty'] or o['cash_order_qty']} {o['symbol']}, now {o['status']}")
    _emit(fmt, output, rows=rows, columns=("order_id", "session_id", "cl_ord_id") + TRAIL_COLUMNS,
          table_columns=TRAIL_COLUMNS, title=title, doc=tr.as_dict())


def _filters(session, symbol, side, status, since, until):
    from fixbridge.ops.queries import FilterError, Filters
    try:
        return Filters.parse(session=session, symbol=symbol, side=side, status=status, since=since, until=until)
    except FilterError as e:
        _fail(str(e))


@journal_app.command()
def orders(journal: str = _journal_opt, session: Optional[str] = _f_session, symbol: Optional[str] = _f_symbol,
           side: Optional[str] = _f_side, status: Optional[str] = _f_status, since: Optional[str] = _f_since,
           until: Optional[str] = _f_until, limit: Optional[int] = typer.Option(None, help="at most this many rows"),
           fmt: str = _format_opt, output: Optional[Path] = _output_opt) -> None:
    """Orders by session, instrument, side, status and creation time, oldest first."""
    from fixbridge.ops.queries import ORDER_COLUMNS, ORDER_TABLE_COLUMNS, list_orders
    f = _filters(session, symbol, side, status, since, until)
    j = _open_journal(journal)
    try:
        rows = list_orders(j, f, limit)
    finally:
        j.close()
    _emit(fmt, output, rows=rows, columns=ORDER_COLUMNS, table_columns=ORDER_TABLE_COLUMNS,
          title=f"{len(rows)} orders")


@journal_app.command()
def fills(journal: str = _journal_opt, session: Optional[str] = _f_session, symbol: Optional[str] = _f_symbol,
          side: Optional[str] = _f_side, status: Optional[str] = _f_status, since: Optional[str] = _f_since,
          until: Optional[str] = _f_until, daily: bool = typer.Option(False, help="sum per UTC day, session, "
                                                                       "instrument and side (exact)"),
          limit: Optional[int] = typer.Option(None, help="at most this many rows"),
          fmt: str = _format_opt, output: Optional[Path] = _output_opt) -> None:
    """Fills by session, instrument, side, order status and fill time, oldest first (CSV: a daily export)."""
    from fixbridge.ops.queries import DAILY_COLUMNS, FILL_COLUMNS, FILL_TABLE_COLUMNS, daily_fills, list_fills
    f = _filters(session, symbol, side, status, since, until)
    j = _open_journal(journal)
    try:
        rows = list_fills(j, f, None if daily else limit)
    finally:
        j.close()
    if daily:
        rows = daily_fills(rows)
        _emit(fmt, output, rows=rows, columns=DAILY_COLUMNS, title="Fills per day")
    else:
        _emit(fmt, output, rows=rows, columns=FILL_COLUMNS, table_columns=FILL_TABLE_COLUMNS,
              title=f"{len(rows)} fills")


def _spec_and_sessions(spec: Optional[list[Path]], sessions: Path):
    """The spec(s) (default: specs/devnet.toml and specs/devnet2.toml, those that exist) and the
    sessions file if there is one; a configuration error ends the command naming file and key."""
    from fixbridge.config import ConfigError, load_sessions, load_spec
    specs = spec or [p for p in (Path("specs/devnet.toml"), Path("specs/devnet2.toml")) if p.is_file()]
    if not specs:
        _fail("no spec: give --spec (the devnet writes specs/devnet.toml when it starts)")
    try:
        sp = load_spec(specs if len(specs) > 1 else specs[0])
        return sp, load_sessions(sessions, sp) if sessions.is_file() else None
    except ConfigError as e:
        _fail(str(e))


_spec_opt = typer.Option(None, help="spec file(s), one per chain (default: specs/devnet.toml and "
                                    "specs/devnet2.toml, those that exist)")
_sessions_opt = typer.Option(Path("sessions/counterparties.toml"), help="the bridge's wallets")
_m_wallet = typer.Option(..., help="the wallet: its address, or its name in the sessions file")
_m_token = typer.Option(..., help="token symbol of the spec (e.g. USDC, WETH:devnet2), or ETH")
_m_amount = typer.Option(..., help="exact amount in token units (e.g. 250.5); never rounded")
_m_who = typer.Option(..., help="who books it")
_m_why = typer.Option(..., help="why (journaled)")
_m_tx = typer.Option(None, "--tx", help="the transaction that moved it (checked on chain: amount and wallet)")
_m_chain = typer.Option(None, help="the spec's chain (default: the token's, or the wallet's)")
_m_block = typer.Option(None, help="without --tx: the block it happened in (default: the latest)")


def _book(direction: str, wallet: str, token: str, amount: str, who: str, why: str, tx: Optional[str],
          chain: Optional[str], block: Optional[int], journal: str, spec: Optional[list[Path]], sessions: Path) -> None:
    from fixbridge.ops.movements import MovementError, MovementRequest, book
    sp, se = _spec_and_sessions(spec, sessions)
    req = MovementRequest(wallet, token, amount, direction, who, why, tx, chain, block)
    j = _open_journal(journal)
    try:
        row, new = book(j, sp, se, req)
    except MovementError as e:
        _fail(str(e))
    finally:
        j.close()
    what = "deposit" if direction == "in" else "withdrawal"
    where = f"{'into' if direction == 'in' else 'out of'} {row.wallet} on chain {row.chain_id}"
    at = (f"tx {row.tx_hash}, " if row.tx_hash else "") + f"block {row.block_number}"
    console.print(f"{what} #{row.id}: {row.amount} {row.token_symbol} {where} ({at}) by {row.who}: {row.why}"
                  + ("" if new else " — already journaled, nothing written"), markup=False)


@journal_app.command()
def deposit(wallet: str = _m_wallet, token: str = _m_token, amount: str = _m_amount, who: str = _m_who,
            why: str = _m_why, tx: Optional[str] = _m_tx, chain: Optional[str] = _m_chain,
            block: Optional[int] = _m_block, journal: str = _journal_opt,
            spec: Optional[list[Path]] = _spec_opt, sessions: Path = _sessions_opt) -> None:
    """Journal a deposit into a bridge wallet that no order made (a top-up, the devnet's funding),
    so `fixbridge reconcile` finds the transfer explained. Books a reconcile break with --tx."""
    _book("in", wallet, token, amount, who, why, tx, chain, block, journal, spec, sessions)


@journal_app.command()
def withdrawal(wallet: str = _m_wallet, token: str = _m_token, amount: str = _m_amount, who: str = _m_who,
               why: str = _m_why, tx: Optional[str] = _m_tx, chain: Optional[str] = _m_chain,
               block: Optional[int] = _m_block, journal: str = _journal_opt,
               spec: Optional[list[Path]] = _spec_opt, sessions: Path = _sessions_opt) -> None:
    """Journal a withdrawal from a bridge wallet that no order made (a sweep); with --tx, a
    transaction the wallet signed itself is explained too (its nonce and gas)."""
    _book("out", wallet, token, amount, who, why, tx, chain, block, journal, spec, sessions)


MOVEMENT_COLUMNS = ("id", "chain_id", "wallet", "direction", "amount", "token_symbol", "amount_units", "token_address",
                    "tx_hash", "block_number", "who", "why", "recorded_at")


@journal_app.command()
def movements(journal: str = _journal_opt, chain_id: Optional[int] = typer.Option(None, help="only this chain id"),
              fmt: str = _format_opt, output: Optional[Path] = _output_opt) -> None:
    """Deposits and withdrawals journaled (fixbridge journal deposit|withdrawal, the devnet's funding)."""
    from dataclasses import asdict
    j = _open_journal(journal)
    try:
        recs = j.movements
        ids = [chain_id] if chain_id is not None else None
        rows = [asdict(m) for m in recs.all(ids)]
    finally:
        j.close()
    _emit(fmt, output, rows=rows, columns=MOVEMENT_COLUMNS,
          table_columns=("id", "chain_id", "wallet", "direction", "amount", "token_symbol", "tx_hash", "block_number",
                         "who", "why"), title=f"{len(rows)} movements")


# ---- security: kill switch, passwords ----------------------------------------------------------
def _operator() -> str:
    import getpass
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@app.command()
def halt(reason: str = typer.Option(..., help="why trading stops (journaled, and sent to clients in Text)"),
         session: Optional[str] = typer.Option(None, help="counterparty CompID to halt; default: every session"),
         by: Optional[str] = typer.Option(None, help="who halts (default: your login name)"),
         journal: str = _journal_opt) -> None:
    """Kill switch: stop accepting orders (all sessions, or one). Running bridges on this journal
    refuse new orders within a second; orders already sent finish normally."""
    j = _open_journal(journal)
    try:
        h = j.halt(session, reason, by or _operator())
    except ValueError as e:
        _fail(str(e))
    finally:
        j.close()
    console.print(f"halted {h.what} (halt #{h.id}) by {h.halted_by}: {h.reason}", markup=False)


@app.command()
def resume(session: Optional[str] = typer.Option(None, help="counterparty CompID to resume; default: lift the all-sessions halt"),
           by: Optional[str] = typer.Option(None, help="who resumes (default: your login name)"),
           journal: str = _journal_opt) -> None:
    """Lift a halt made with `fixbridge halt` (the same --session, or none for the all-sessions halt)."""
    j = _open_journal(journal)
    try:
        lifted = j.resume(session, by or _operator())
        left = j.active_halts()
    finally:
        j.close()
    if not lifted:
        _fail(f"no active halt for {session or 'all sessions'}"
              + (f"; active: {', '.join(h.what for h in left)}" if left else ""))
    console.print(f"resumed {session or 'all sessions'} (halt #{', #'.join(str(h.id) for h in lifted)} lifted)"
                  + (f"; still halted: {', '.join(h.what for h in left)}" if left else ""))


@app.command()
def halts(journal: str = _journal_opt) -> None:
    """The active halts."""
    j = _open_journal(journal)
    try:
        rows = j.active_halts()
    finally:
        j.close()
    if not rows:
        console.print("no active halt: trading is open")
        return
    t = Table(title="Active halts")
    for col in ("#", "scope", "since (UTC)", "by", "reason"):
        t.add_column(col, overflow="fold")
    for h in rows:
        t.add_row(str(h.id), h.what, h.halted_at.strftime("%Y-%m-%d %H:%M:%S"), h.halted_by, h.reason)
    console.print(t)


@app.command("hash-password")
def hash_password_cmd(stdin: bool = typer.Option(False, "--stdin", help="read the password from the first line of stdin")) -> None:
    """Print a salted scrypt hash for `password_hash` in counterparties.toml (the password is never shown)."""
    from fixbridge.security.passwords import hash_password
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("FIX password", hide_input=True, confirmation_prompt=True)
    if not password:
        _fail("empty password")
    sys.stdout.write(hash_password(password) + "\n")


# ---- operations: reconcile ------------------------------------------------------------------
RECONCILE_CLEAN, RECONCILE_BREAKS, RECONCILE_FAILED = 0, 1, 2  # exit codes (cron-friendly)


@app.command()
def reconcile(journal: str = _journal_opt,
              spec: Optional[list[Path]] = _spec_opt,
              sessions: Path = _sessions_opt,
              chain: Optional[str] = typer.Option(None, help="one chain of the spec (default: every chain)"),
              from_block: Optional[int] = typer.Option(None, help="first block (default: after the last run, or 0)"),
              to_block: Optional[int] = typer.Option(None, help="last block, inclusive (default: latest)"),
              since: Optional[str] = typer.Option(None, help="first block at or after this ISO time"),
              until: Optional[str] = typer.Option(None, help="last block before this ISO time"),
              wallet: list[str] = typer.Option([], help="another address to reconcile (repeatable)"),
              record: bool = typer.Option(True, help="record the run in the journal (reconciliation_runs)"),
              watch: Optional[float] = typer.Option(None, help="run again every this many seconds, each run from "
                                                    "where the last ended; Ctrl-C stops"),
              rounds: Optional[int] = typer.Option(None, help="with --watch: stop after this many runs"),
              ack: Optional[str] = typer.Option(None, help="book the Transfers of this transaction (a break's tx) "
                                                "to/from the bridge's wallets as movements, with --who and --why"),
              who: Optional[str] = typer.Option(None, help="with --ack: who books it"),
              why: Optional[str] = typer.Option(None, help="with --ack: why"),
              fmt: str = typer.Option("table", "--format", "-f", help="table or json")) -> None:
    """Match the chain (Transfers, Swaps, nonces, receipts, balances of the bridge's wallets) against
    the journal (transactions, fills, movements) over a block range; list every break. Exit codes,
    for cron: 0 clean or nothing new, 1 breaks, 2 could not run. JSON: one object per run; with
    several chains {"status", "chains": [...]}."""
    from fixbridge.ops.queries import FilterError, parse_when
    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    sp, se = _spec_and_sessions(spec, sessions)
    try:
        t0, t1 = parse_when(since), parse_when(until, end=True)
    except FilterError as e:
        _fail(str(e))
    chains = [chain] if chain else list(sp.chains)
    if chain is not None and chain not in sp.chains:
        _fail(f"unknown chain {chain!r}; the spec has {', '.join(sp.chains)}")
    if len(chains) > 1 and (from_block is not None or to_block is not None or ack is not None):
        _fail(f"block numbers and transactions belong to one chain: pass --chain ({', '.join(chains)})"
              + ("" if ack else " or use --since/--until"))
    if ack is not None:
        _reconcile_ack(journal, sp, se, chains[0], ack, who, why, wallet)
        return
    if watch is not None and (watch <= 0 or not record):
        _fail("--watch needs a positive number of seconds and recorded runs (it continues from the last one)")
    j = _open_journal(journal)
    code = RECONCILE_CLEAN
    try:
        code = _reconcile_round(j, sp, se, chains, wallet, record, fmt, from_block, to_block, t0, t1)
        done = 1
        while watch is not None and (rounds is None or done < rounds):
            time.sleep(watch)
            code = _reconcile_round(j, sp, se, chains, wallet, record, fmt)
            done += 1
    except KeyboardInterrupt:
        pass
    finally:
        j.close()
    raise typer.Exit(code)


def _reconcile_round(j, sp, se, chains: list[str], wallets: list[str], record: bool, fmt: str,
                     from_block: Optional[int] = None, to_block: Optional[int] = None, since=None, until=None) -> int:
    """One run over every chain; prints the results and returns the exit code they make."""
    from fixbridge.ops import output as out
    from fixbridge.ops.reconcile import ReconcileError, reconcile as run_reconcile
    results, failed = [], []
    for name in chains:
        try:
            results.append(run_reconcile(j, sp, chain=name, sessions=se, from_block=from_block, to_block=to_block,
                                         since=since, until=until, wallets=wallets, record=record))
        except ReconcileError as e:
            failed.append(f"chain {name}: {e}")
    for msg in failed:
        console.print(f"[red]error:[/red] {escape(msg)}")
    clean = all(r.clean for r in results)
    if fmt == "json" and results:
        doc = results[0].as_dict() if len(results) == 1 else {
            "status": "clean" if clean else "breaks", "chains": [r.as_dict() for r in results]}
        sys.stdout.write(out.to_json(doc))
        sys.stdout.flush()
    for res in results if fmt == "table" else []:
        _print_reconcile(res)
    return RECONCILE_FAILED if failed else RECONCILE_CLEAN if clean else RECONCILE_BREAKS


def _print_reconcile(res) -> None:
    from fixbridge.ops import output as out
    if res.nothing_new:
        console.print(f"chain {res.chain_id}: nothing new — no block after {res.to_block} (where the last run ended)")
        return
    c = res.checked
    console.print(f"chain {res.chain_id}, blocks {res.from_block}..{res.to_block}, {len(res.wallets)} wallets: "
                  f"{c.get('transactions', 0)} journaled transactions, {c.get('fills', 0)} fills, "
                  f"{c.get('movements', 0)} movements, {c.get('swaps', 0)} swaps and {c.get('transfers', 0)} "
                  f"transfers on chain, {c.get('balances', 0)} balances"
                  + (f" (run {res.run_id})" if res.run_id else ""))
    for note in res.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if res.clean:
        console.print("[green]clean:[/green] the journal and the chain agree")
        return

    def short(h):  # the table is for reading; --format json has every hash in full
        return h if not h or len(h) < 20 else f"{h[:10]}…{h[-6:]}"

    def sides(b):
        keys = dict.fromkeys([*(b.journal or {}), *(b.chain or {})]) if b.journal else []
        return "; ".join(f"{k}: {out.text(b.journal.get(k))} (journal) vs "
                         f"{out.text((b.chain or {}).get(k))} (chain)" for k in keys)

    rows = [{"kind": b.kind, "block": b.block, "tx": short(b.tx_hash), "wallet": short(b.wallet),
             "order": b.order_id, "what": b.detail + (f" — {sides(b)}" if sides(b) and b.kind != "balance_mismatch"
                                                      else "")}
            for b in res.breaks]
    console.print(out.to_table(rows, ("kind", "block", "tx", "wallet", "order", "what"),
                               title=f"{len(res.breaks)} breaks"))


def _reconcile_ack(journal: str, sp, se, chain: str, tx: str, who: Optional[str], why: Optional[str],
                   extra: list[str]) -> None:
    """`reconcile --ack <tx>`: the transaction's Transfers to/from the bridge's wallets, journaled as movements."""
    from fixbridge.ops.movements import MovementError, acknowledge
    from fixbridge.ops.reconcile import Reconciler, config_wallets
    if not who or not why:
        _fail("--ack needs --who and --why (both are journaled with the movements)")
    j = _open_journal(journal)
    try:
        wallets = sorted(set(config_wallets(se, chain)) | set(Reconciler.journal_wallets(j, sp.chains[chain].chain_id))
                         | {w for w in extra})
        rows = acknowledge(j, sp, chain, tx, wallets, who, why)
    except MovementError as e:
        _fail(str(e))
    finally:
        j.close()
    if not rows:
        console.print(f"{tx}: already booked, nothing written")
    for m in rows:
        console.print(f"{'deposit' if m.direction == 'in' else 'withdrawal'} #{m.id}: {m.amount} {m.token_symbol} "
                      f"{'into' if m.direction == 'in' else 'out of'} {m.wallet} (tx {m.tx_hash}, block "
                      f"{m.block_number}) by {m.who}: {m.why}", markup=False)


# ---- operations: replay ---------------------------------------------------------------------
@app.command()
def replay(session: str = typer.Option(..., help="the session to replay, e.g. FIX.4.4:FIXBRIDGE->CLIENT1"),
           journal: Optional[str] = typer.Option(None, help="take the recorded messages from this journal"),
           from_log: Optional[Path] = typer.Option(None, help="...or from a QuickFIX messages log (or a .json export)"),
           sessions: Path = typer.Option(Path("sessions/counterparties.toml"),
                                         help="counterparties (acceptor.cfg beside it) for the fresh bridge"),
           timeout: float = typer.Option(30.0, help="seconds to wait for the answers to one message"),
           fee_tolerance: str = typer.Option("0.5", help="relative difference allowed in the fee (137)"),
           export: Optional[Path] = typer.Option(None, help="write the recorded messages as JSON here and stop"),
           keep: Optional[Path] = typer.Option(None, help="keep the devnet/bridge folder here (logs, journal)"),
           fmt: str = typer.Option("table", "--format", "-f", help="table or json")) -> None:
    """Replay a recorded session's inbound messages against a fresh devnet and bridge, and diff every
    ExecutionReport against the recorded one (ignoring what legitimately differs). Exit 1 on a difference."""
    from fixbridge.ops import output as out
    from fixbridge.ops.common import JournalNotFound
    from fixbridge.ops.harness import HarnessError
    from fixbridge.ops.replay import ReplayError, export_json, load_from_journal, load_from_log
    from fixbridge.ops.replay import replay as run_replay
    if (journal is None) == (from_log is None):
        _fail("give exactly one of --journal or --from-log")
    tol = _dec(fee_tolerance, "--fee-tolerance")
    try:
        msgs = load_from_log(from_log, session) if from_log else load_from_journal(journal, session)
    except (ReplayError, JournalNotFound, OSError, ValueError, KeyError) as e:
        _fail(f"cannot read the recorded session: {e}")
    if not any(m.direction == "in" for m in msgs):
        _fail(f"no inbound application message of {session} in {from_log or journal}")
    if export is not None:
        export.write_text(export_json(msgs, session))
        console.print(f"{len(msgs)} messages of {session} written to {export}")
        return
    say = (lambda m: console.print(f"[dim]{m}[/dim]")) if fmt == "table" else None
    try:
        res = run_replay(msgs, session, sessions, timeout=timeout, fee_tolerance=tol, workdir=keep, log=say)
    except (ReplayError, HarnessError, TimeoutError) as e:
        _fail(f"replay: {e}")
    if fmt == "json":
        sys.stdout.write(out.to_json(res.as_dict()))
    else:
        console.print(f"{session}: {res.inbound} inbound messages replayed, {res.recorded} answers recorded, "
                      f"{res.replayed} replayed, in {res.seconds:.1f}s")
        if res.clean:
            console.print("[green]same:[/green] every answer matches the recording")
        else:
            rows = [{"#": d.group, "in": d.in_type, "ClOrdID": d.cl_ord_id, "answer": d.report,
                     "tag": d.tag, "recorded": d.recorded, "replayed": d.replayed, "note": d.note}
                    for d in res.differences]
            console.print(out.to_table(rows, ("#", "in", "ClOrdID", "answer", "tag", "recorded", "replayed", "note"),
                                       title=f"{len(res.differences)} differences"))
    raise typer.Exit(0 if res.clean else 1)


# ---- operations: check a deployment ---------------------------------------------------------
@app.command("check")
def check_cmd(spec: list[Path] = typer.Option(..., help="spec file(s), one per chain (repeat the option)"),
              sessions: Path = typer.Option(Path("sessions/counterparties.toml"), help="counterparties and wallets"),
              journal: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the journal: compare its "
                                                    "schema revision with this code's (never migrates)"),
              timeout: float = typer.Option(10.0, help="seconds to wait for a node's answer")) -> None:
    """Validate a deployment without trading: the config loads; each node is the spec's chain; every
    contract of the spec has code; routers and quoters point at the spec's factory and WETH; token
    decimals; a pool per instrument and venue; each wallet's key, ETH, balances and allowances to
    the routers; the journal's schema.
    Reads only (never signs or sends). Exit 1 if a check FAILs, 0 otherwise (warnings included)."""
    from fixbridge.ops.check import run_check
    report = run_check(spec, sessions, journal, timeout=timeout)
    if console.is_terminal:
        colour = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}
        t = Table(title="fixbridge check")
        for col in ("check", "status", "detail"):
            t.add_column(col, overflow="fold")
        for r in report.rows:
            t.add_row(r.check, f"[{colour[r.status]}]{r.status}[/]", r.detail)
        console.print(t)
    else:  # plain lines for logs, pipes and grep
        width = max((len(r.check) for r in report.rows), default=0)
        sys.stdout.write("".join(f"{r.status:<4}  {r.check:<{width}}  {r.detail}\n" for r in report.rows))
    n = report.counts()
    summary = f"{n['ok']} ok, {n['warn']} warn, {n['FAIL']} FAIL"
    if console.is_terminal:
        console.print(summary, markup=False)
    else:
        sys.stdout.write(summary + "\n")
    raise typer.Exit(1 if report.failed else 0)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
