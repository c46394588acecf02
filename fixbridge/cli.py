"""The `fixbridge` command: run the bridge, start the devnet, trade by hand, read the journal."""
from __future__ import annotations

import sys
import time
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
client_app = typer.Typer(no_args_is_help=True, help="Trade by hand: a FIX 4.4 initiator on QuickFIX.")
journal_app = typer.Typer(no_args_is_help=True, help="Read the journal.")
app.add_typer(client_app, name="client")
app.add_typer(journal_app, name="journal")
console = Console()

DEFAULT_JOURNAL = "sqlite:///var/journal.db"


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


@app.command()
def run(
    spec: Path = typer.Option(Path("specs/devnet.toml"), help="venue/instrument spec"),
    sessions: Path = typer.Option(Path("sessions/counterparties.toml"), help="counterparties and wallets (acceptor.cfg beside it)"),
    journal: str = typer.Option(DEFAULT_JOURNAL, help="SQLAlchemy URL of the journal"),
    state_dir: Path = typer.Option(Path("var"), help="runtime state: FIX store and logs, devnet log"),
    host: Optional[str] = typer.Option(None, help="FIX listen address (default from acceptor.cfg)"),
    port: Optional[int] = typer.Option(None, help="FIX listen port (default from acceptor.cfg)"),
    devnet: bool = typer.Option(True, help="start the embedded devnet (anvil + Uniswap V2) and write the spec first"),
    devnet_port: int = typer.Option(8545, help="anvil's RPC port when --devnet"),
    block_time: Optional[float] = typer.Option(None, help="anvil block time in seconds (default automine)"),
    log_json: bool = typer.Option(False, help="JSON log lines instead of console output"),
) -> None:
    """Run the FIX acceptor. By default on the embedded devnet with a SQLite journal under var/."""
    from fixbridge import logs
    from fixbridge.bridge import Bridge, BridgeConfig
    from fixbridge.config import ConfigError

    logs.configure(json=log_json)
    node = None
    try:
        if devnet:
            from fixbridge.devnet.anvil import Anvil, AnvilError
            from fixbridge.devnet.deploy import DeployError, deploy_devnet, write_spec
            state_dir.mkdir(parents=True, exist_ok=True)
            node = Anvil("127.0.0.1", devnet_port, block_time=block_time, log_path=state_dir / "anvil.log")
            try:
                node.start()
                dep = deploy_devnet(node.rpc_url)
            except (AnvilError, DeployError) as e:
                _fail(f"devnet: {e}")
            write_spec(dep, spec)
            console.print(f"devnet: anvil at {node.rpc_url}, Uniswap V2 deployed, spec written to {spec}")
        try:
            bridge = Bridge(BridgeConfig(spec, sessions, journal, state_dir, host, port))
        except ConfigError as e:
            _fail(f"configuration: {e}")
        acc = bridge.acceptor
        console.print(
            f"fixbridge listening on {acc.host}:{acc.port} — FIX.4.4, acceptor CompID FIXBRIDGE, "
            f"counterparties: {', '.join(s['TargetCompID'] for s in acc.session_defs)}\n"
            f"journal: {journal}\n"
            f"try:  fixbridge client buy WETH/USDC 0.5 --limit 3100 --tif IOC --port {acc.port}\n"
            "Ctrl-C stops.")
        bridge.run_until_signal()
    finally:
        if node is not None:
            node.stop()


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
TIF = {"IOC": "3", "FOK": "4", "DAY": "0", "GTC": "1"}
ORD_STATUS = {"0": "New", "1": "PartiallyFilled", "2": "Filled", "4": "Canceled", "6": "PendingCancel",
              "8": "Rejected", "A": "PendingNew", "C": "Expired"}
EXEC_TYPE = {"0": "New", "F": "Trade", "4": "Canceled", "8": "Rejected", "C": "Expired", "I": "OrderStatus",
             "6": "PendingCancel", "H": "TradeCancel"}


def _dec(value: Optional[str], name: str) -> Optional[Decimal]:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        _fail(f"{name} must be a decimal number, got {value!r}")
        raise


def _client(host: str, port: int, sender: str, target: str):
    from fixbridge.fix.client import FixClient
    try:
        return FixClient(host, port, sender, target).start()
    except TimeoutError as e:
        _fail(f"{e} (tried {host}:{port} as {sender} -> {target})")


REPORT_ROWS = [("MsgType", 35), ("ExecType", 150), ("OrdStatus", 39), ("ClOrdID", 11), ("OrderID", 37),
               ("ExecID", 17), ("Side", 54), ("Symbol", 55), ("OrderQty", 38), ("CashOrderQty", 152), ("Price", 44),
               ("LastQty", 32), ("LastPx", 31), ("CumQty", 14), ("LeavesQty", 151), ("AvgPx", 6),
               ("Fee (ETH)", 137), ("OrdRejReason", 103), ("Text", 58), ("Tx hash", 20001), ("Block", 20002),
               ("Chain id", 20003), ("Venue", 20004)]
NAMES = {39: ORD_STATUS, 150: EXEC_TYPE, 54: {"1": "Buy", "2": "Sell"}}


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


def _order(side: str, symbol: str, qty: str, limit: Optional[str], tif: str, cash: bool, account: Optional[str],
           venue: Optional[str], cl_ord_id: Optional[str], host: str, port: int, sender: str, target: str,
           timeout: float) -> None:
    from fixbridge.fix.client import new_order_single
    q = _dec(qty, "quantity")
    if tif.upper() not in TIF:
        _fail(f"--tif must be one of {', '.join(TIF)}")
    cl = cl_ord_id or f"CLI-{uuid.uuid4().hex[:10]}"
    c = _client(host, port, sender, target)
    try:
        c.send(new_order_single(cl, symbol, side, None if cash else q, cash_qty=q if cash else None,
                                limit=_dec(limit, "--limit"), tif=TIF[tif.upper()], account=account,
                                ex_destination=venue))
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


@client_app.command()
def buy(symbol: str, qty: str, limit: Optional[str] = typer.Option(None, help="limit price (quote per base); omit for market"),
        tif: str = typer.Option("IOC", help="IOC or FOK"), cash: bool = typer.Option(False, help="qty is a quote amount (CashOrderQty)"),
        account: Optional[str] = None, venue: Optional[str] = typer.Option(None, help="ExDestination"),
        cl_ord_id: Optional[str] = None, host: str = _host, port: int = _port, sender: str = _sender,
        target: str = _target, timeout: float = 60.0) -> None:
    """Send a Buy NewOrderSingle and print the ExecutionReports."""
    _order("1", symbol, qty, limit, tif, cash, account, venue, cl_ord_id, host, port, sender, target, timeout)


@client_app.command()
def sell(symbol: str, qty: str, limit: Optional[str] = typer.Option(None, help="limit price (quote per base); omit for market"),
         tif: str = typer.Option("IOC", help="IOC or FOK"), cash: bool = typer.Option(False, help="qty is a quote amount (CashOrderQty)"),
         account: Optional[str] = None, venue: Optional[str] = typer.Option(None, help="ExDestination"),
         cl_ord_id: Optional[str] = None, host: str = _host, port: int = _port, sender: str = _sender,
         target: str = _target, timeout: float = 60.0) -> None:
    """Send a Sell NewOrderSingle and print the ExecutionReports."""
    _order("2", symbol, qty, limit, tif, cash, account, venue, cl_ord_id, host, port, sender, target, timeout)


@client_app.command()
def status(cl_ord_id: str, host: str = _host, port: int = _port, sender: str = _sender, target: str = _target) -> None:
    """Send an OrderStatusRequest and print the answer."""
    from fixbridge.fix.client import order_status_request
    c = _client(host, port, sender, target)
    try:
        c.send(order_status_request(cl_ord_id, req_id=f"S{int(time.time())}"))
        _print_reports([c.receive(15, "8")])
    finally:
        c.stop()


# ---- journal --------------------------------------------------------------------------------
@journal_app.command()
def trail(order: str = typer.Argument(..., help="ClOrdID or OrderID"),
          journal: str = typer.Option(DEFAULT_JOURNAL, help="SQLAlchemy URL of the journal"),
          session: Optional[str] = typer.Option(None, help="session id, when a ClOrdID is used on several")) -> None:
    """Every journaled step of one order, in time order."""
    from fixbridge.journal import Journal
    from fixbridge.ops.trail import order_trail
    j = Journal(journal)
    rows = order_trail(j, order, session)
    if not rows:
        _fail(f"no order {order!r} in {journal}")
    t = Table(title=f"Audit trail of {order}")
    for col in ("time (UTC)", "what", "detail"):
        t.add_column(col, overflow="fold")
    for ts, what, detail in rows:
        t.add_row(ts.strftime("%H:%M:%S.%f")[:-3], what, detail)
    console.print(t)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
