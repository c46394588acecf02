"""Pre-trade risk limits: each limit against a real journal (unit), then on a real bridge and
devnet (an order over a limit is rejected naming the limit and the numbers, no transaction
leaves the wallet, and the journal has the 'risk' event)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from support import ADDR
from fixbridge.config import ConfigError, load_sessions, load_spec
from fixbridge.config.sessions import Counterparty
from fixbridge.fix.client import FixClient, new_order_single
from fixbridge.journal import Journal
from fixbridge.orders.model import Order, OrdStatus, OrdType, RejectReason, Side, TimeInForce
from fixbridge.orders.risk import HaltBook, PreTradeRisk, TradeContext
from helpers import tx_count
from security_support import start_bridge, write_sessions

SPEC = """
[chains.devnet]
chain_id = 31337
rpc_url = "http://127.0.0.1:1"
devnet = true
[tokens.WETH]
chain = "devnet"
address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
decimals = 18
[tokens.USDC]
chain = "devnet"
address = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
decimals = 6
[tokens.WBTC]
chain = "devnet"
address = "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"
decimals = 8
[venues.uni]
kind = "uniswap_v2"
chain = "devnet"
router = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
factory = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
[venues.sushi]
kind = "uniswap_v2"
chain = "devnet"
router = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
factory = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
[instruments."WETH/USDC"]
base = "WETH"
quote = "USDC"
venues = ["uni", "sushi"]
[instruments."WBTC/USDC"]
base = "WBTC"
quote = "USDC"
venues = ["uni"]
[instruments."WBTC/WETH"]
base = "WBTC"
quote = "WETH"
venues = ["uni"]
"""
S1, S2 = "FIX.4.4:FIXBRIDGE->CLIENT1", "FIX.4.4:FIXBRIDGE->CLIENT2"
GWEI = 10**9


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "spec.toml"
    p.write_text(SPEC)
    return load_spec(p)


@pytest.fixture
def journal(tmp_path):
    j = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    yield j
    j.close()


_n = iter(range(1, 10**6))


def order(journal, *, session=S1, symbol="WETH/USDC", side=Side.BUY, qty="1", price=None, status=None,
          cum=None, avg=None, created=None, reserve=None) -> Order:
    o = Order(session_id=session, cl_ord_id=f"c{next(_n)}", symbol=symbol, side=side,
              ord_type=OrdType.LIMIT if price else OrdType.MARKET, time_in_force=TimeInForce.IOC,
              order_qty=Decimal(qty), price=Decimal(price) if price else None, order_id=f"O{uuid.uuid4().hex[:12]}",
              status=OrdStatus.PENDING_NEW, created_at=created or datetime.now(timezone.utc))
    journal.insert_order(o, "received NewOrderSingle")
    if reserve is not None:
        journal.add_event(o.order_id, "risk", "passed", detail={"decision": "pass", "notional": Decimal(reserve)})
    if status is not None:
        journal.transition(o.order_id, status, "test", cum_qty=Decimal(cum or 0), avg_px=Decimal(avg or 0))
    o.status = status or o.status
    return o


def ctx(notional="100", pool="3000", gas_wei=GWEI, venue="uni") -> TradeContext:
    return TradeContext(venue, "w1", Decimal(notional), Decimal(pool), gas_wei)


def cp(**kw) -> Counterparty:
    return Counterparty(comp_id="CLIENT1", wallets=["w1"], **kw)


# ---- each limit, unit ------------------------------------------------------------------------

def test_no_limits_passes_and_journals_the_decision(spec, journal):
    o = order(journal)
    assert PreTradeRisk(journal, spec).check(o, cp(), ctx("310.5")) is None
    ev = [e for e in journal.events(o.order_id) if e.kind == "risk"]
    assert len(ev) == 1 and ev[0].detail["notional"] == "310.5" and ev[0].detail["decision"] == "pass"


def test_allowed_instruments_and_venues(spec, journal):
    risk = PreTradeRisk(journal, spec)
    r = risk.check(order(journal, symbol="WBTC/USDC"), cp(allowed_instruments=["WETH/USDC"]), ctx())
    assert r.reason is RejectReason.BROKER_OPTION and "allowed_instruments: WBTC/USDC is not allowed" in r.text
    r = risk.check(order(journal), cp(allowed_venues=["uni"]), ctx(venue="sushi"))
    assert r.reason is RejectReason.BROKER_OPTION and "allowed_venues: venue sushi is not allowed" in r.text
    assert risk.check(order(journal), cp(allowed_instruments=["WETH/USDC"], allowed_venues=["uni"]), ctx()) is None
    r = risk.check(order(journal), cp(allowed_instruments=[]), ctx())
    assert "allowed: none" in r.text


def test_max_order_notional_per_quote_token(spec, journal):
    risk = PreTradeRisk(journal, spec)
    limits = cp(max_order_notional={"USDC": Decimal("1000")})
    assert risk.check(order(journal), limits, ctx("1000")) is None  # at the limit is within it
    r = risk.check(order(journal), limits, ctx("1000.000001"))
    assert r.reason is RejectReason.ORDER_EXCEEDS_LIMIT
    assert r.text == "Risk: max_order_notional breached: order notional 1000.000001 USDC > limit 1000 USDC"
    r = risk.check(order(journal, symbol="WBTC/WETH"), limits, ctx("0.1"))  # WETH-quoted: no limit set
    assert "max_order_notional has no limit for WETH" in r.text


def test_max_daily_notional_counts_today_from_the_journal(spec, journal):
    risk = PreTradeRisk(journal, spec)
    limits = cp(max_daily_notional={"USDC": Decimal("1000"), "WETH": Decimal("1")})
    yesterday = datetime.now(timezone.utc) - timedelta(days=1, hours=1)
    order(journal, status=OrdStatus.FILLED, cum="0.1", avg="3000")                     # 300 traded
    order(journal, status=OrdStatus.CANCELED, cum="0", avg="0")                        # nothing traded
    order(journal, status=OrdStatus.REJECTED)                                          # never counts
    order(journal, status=OrdStatus.NEW, reserve="250")                                # working: reserved
    order(journal, symbol="WBTC/USDC", status=OrdStatus.FILLED, cum="0.001", avg="60000")  # 60, same quote
    order(journal, symbol="WBTC/WETH", status=OrdStatus.FILLED, cum="0.01", avg="20")  # WETH: other limit
    order(journal, session=S2, status=OrdStatus.FILLED, cum="1", avg="3000")            # other session
    order(journal, status=OrdStatus.FILLED, cum="1", avg="3000", created=yesterday)    # yesterday
    since = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    assert journal.session_notional_since(S1, ["WETH/USDC", "WBTC/USDC"], since) == Decimal("610")
    assert risk.check(order(journal), limits, ctx("390")) is None  # 610 + 390 = 1000
    r = risk.check(order(journal), limits, ctx("0.01"))  # the 390 just passed is reserved now
    assert r.text == ("Risk: max_daily_notional breached: 1000 USDC used today + order 0.01 USDC = 1000.01 USDC "
                      "> limit 1000 USDC")
    assert risk.check(order(journal, symbol="WBTC/WETH"), limits, ctx("0.8")) is None  # 0.2 + 0.8 WETH


def test_max_open_orders_counts_working_orders_ahead(spec, journal):
    risk = PreTradeRisk(journal, spec)
    limits = cp(max_open_orders=2)
    order(journal, status=OrdStatus.NEW)
    order(journal, status=OrdStatus.FILLED, cum="1", avg="1")
    order(journal, session=S2, status=OrdStatus.NEW)
    assert risk.check(order(journal), limits, ctx()) is None  # 1 working ahead + this one
    r = risk.check(order(journal), limits, ctx())  # 2 ahead now (the last one is still PendingNew)
    assert r.text == "Risk: max_open_orders breached: 2 open order(s) + this one > limit 2"


def test_price_band(spec, journal):
    risk = PreTradeRisk(journal, spec)
    limits = cp(price_band_bps=100)
    assert risk.check(order(journal, price="3030"), limits, ctx(pool="3000")) is None       # 100 bps
    r = risk.check(order(journal, price="3030.3"), limits, ctx(pool="3000"))
    assert r.text == ("Risk: price_band_bps breached: limit price 3030.3 is 101 bps from the pool price 3000 "
                      "> band 100 bps")
    r = risk.check(order(journal, side=Side.SELL, price="2000"), limits, ctx(pool="3000"))
    assert "3333.33 bps from the pool price 3000" in r.text
    assert risk.check(order(journal), limits, ctx(pool="9999")) is None  # market orders: slippage bounds them


def test_max_gas_price(spec, journal):
    risk = PreTradeRisk(journal, spec)
    limits = cp(max_gas_price_gwei=Decimal("1.5"))
    assert risk.check(order(journal), limits, ctx(gas_wei=1_500_000_000)) is None
    r = risk.check(order(journal), limits, ctx(gas_wei=1_500_000_001))
    assert r.text == "Risk: max_gas_price_gwei breached: gas price 1.500000001 gwei > limit 1.5 gwei"


def test_halt_book_reads_the_journal_with_a_short_cache(spec, journal):
    risk = PreTradeRisk(journal, spec)
    risk.halts = HaltBook(journal, ttl=0.2)
    assert risk.halted(S1) is None
    journal.halt("CLIENT1", "fat finger", "alice")
    assert risk.halted(S1) is None  # cached for ttl
    import time
    time.sleep(0.25)
    r = risk.halted(S1)
    assert r.reason is RejectReason.EXCHANGE_CLOSED and r.text.startswith("trading halted for CLIENT1 by alice: fat finger")
    assert risk.halted(S2) is None
    journal.halt(None, "incident", "ops")
    time.sleep(0.25)
    assert "trading halted for all sessions by ops: incident" in risk.halted(S2).text
    assert "CLIENT1" in risk.halted(S1).text  # its own halt first
    journal.resume("CLIENT1", "bob")
    journal.resume(None, "bob")
    time.sleep(0.25)
    assert risk.halted(S1) is None and risk.halted(S2) is None


# ---- configuration ---------------------------------------------------------------------------

BASE = """
[wallets.w1]
chain = "devnet"
private_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
[sessions.CLIENT1]
wallets = ["w1"]
"""


@pytest.mark.parametrize("extra, key, words", [
    ('max_order_notional = { USDT = "100" }', "sessions.CLIENT1.max_order_notional.USDT", "unknown token"),
    ('max_daily_notional = { USDC = "-1" }', "sessions.CLIENT1.max_daily_notional.USDC", "greater than 0"),
    ('max_daily_notional = { USDC = "NaN" }', "sessions.CLIENT1.max_daily_notional.USDC", ""),
    ('allowed_instruments = ["DOGE/USDC"]', "sessions.CLIENT1.allowed_instruments", "unknown instrument 'DOGE/USDC'"),
    ('allowed_venues = ["pancake"]', "sessions.CLIENT1.allowed_venues", "unknown venue 'pancake'"),
    ('max_open_orders = -1', "sessions.CLIENT1.max_open_orders", "greater than or equal to 0"),
    ('max_messages_per_second = 0', "sessions.CLIENT1.max_messages_per_second", "greater than 0"),
    ('password_hash = "plaintext"', "sessions.CLIENT1.password_hash", "scrypt$"),
    ('max_order_notinal = { USDC = "1" }', "sessions.CLIENT1.max_order_notinal", "unknown key"),
])
def test_bad_limits_are_named(tmp_path, spec, extra, key, words):
    p = tmp_path / "counterparties.toml"
    p.write_text(BASE + extra + "\n")
    with pytest.raises(ConfigError) as e:
        load_sessions(p, spec)
    assert e.value.key == key and words in e.value.problem, e.value


def test_limits_load_as_exact_decimals(tmp_path, spec):
    p = tmp_path / "counterparties.toml"
    p.write_text(BASE + 'max_order_notional = { USDC = "1000.000001", WETH = 2 }\nmax_gas_price_gwei = 0.1\n'
                 'max_daily_notional = { USDC = 100000.000000000000000001 }\n'
                 'price_band_bps = 250\nallowed_venues = ["uni"]\nmax_messages_per_second = "2.5"\n')
    c = load_sessions(p, spec).sessions["CLIENT1"]
    assert c.max_order_notional == {"USDC": Decimal("1000.000001"), "WETH": Decimal(2)}
    # TOML floats are read as Decimal (config.errors.read_toml), never through a binary float
    assert c.max_daily_notional == {"USDC": Decimal("100000.000000000000000001")}
    assert c.max_gas_price_gwei == Decimal("0.1") and c.max_messages_per_second == Decimal("2.5")


def test_a_float_from_code_is_refused():
    with pytest.raises(ValueError, match="floats are not exact"):
        Counterparty(comp_id="C", wallets=["w"], max_gas_price_gwei=0.1)


# ---- on a real bridge --------------------------------------------------------------------------

E2E = """
[wallets.w1]
chain = "devnet"
private_key = "{k1}"
[wallets.w3]
chain = "devnet"
private_key = "{k3}"

[sessions.CLIENT1]
wallets = ["w1"]
max_order_notional = {{ USDC = "100", WETH = "1" }}
max_daily_notional = {{ USDC = "100", WETH = "1" }}
allowed_instruments = ["WETH/USDC", "WBTC/WETH"]
price_band_bps = 500
[sessions.CLIENT3]
wallets = ["w3"]
max_gas_price_gwei = "0.000000001"
"""


@pytest.fixture(scope="module")
def rbridge(devnet, tmp_path_factory):
    d = tmp_path_factory.mktemp("risk")
    b = start_bridge(devnet, write_sessions(d / "sessions", E2E, comp_ids=("CLIENT1", "CLIENT3")), d / "state")
    j = Journal(b.journal_url)
    clients = {c: FixClient("127.0.0.1", b.port, c, data_dir=d / f"client-{c}").start() for c in ("CLIENT1", "CLIENT3")}
    yield b, j, clients
    for c in clients.values():
        c.stop()
    j.close()
    b.stop()


def rejected(rbridge, devnet, comp, cl, *args, **kw):
    b, j, clients = rbridge
    c = clients[comp]
    addr = ADDR[{"CLIENT1": 1, "CLIENT3": 3}[comp]]
    before = tx_count(devnet.rpc_url, addr)
    c.send(new_order_single(cl, *args, tif="3", **kw))
    reports = c.reports_until_terminal(cl)
    assert len(reports) == 1 and reports[0][39] == "8", [r.raw for r in reports]
    assert tx_count(devnet.rpc_url, addr) == before
    row = j.find_order(f"FIX.4.4:FIXBRIDGE->{comp}", cl)
    risk = [e for e in j.events(row.order_id) if e.kind == "risk"]
    assert risk and risk[-1].reason == reports[0][58] == row.text
    return reports[0]


@pytest.mark.e2e
def test_e2e_order_notional(rbridge, devnet):
    r = rejected(rbridge, devnet, "CLIENT1", f"n-{uuid.uuid4().hex[:8]}", "WETH/USDC", "1", Decimal("0.1"),
                 limit=Decimal("3100"))
    assert r[103] == "3" and r[58] == "Risk: max_order_notional breached: order notional 310 USDC > limit 100 USDC"


@pytest.mark.e2e
def test_e2e_instrument_not_allowed(rbridge, devnet):
    r = rejected(rbridge, devnet, "CLIENT1", f"i-{uuid.uuid4().hex[:8]}", "WBTC/USDC", "2", Decimal("0.0001"))
    assert r[103] == "0" and "allowed_instruments: WBTC/USDC is not allowed" in r[58]


@pytest.mark.e2e
def test_e2e_price_band(rbridge, devnet):
    r = rejected(rbridge, devnet, "CLIENT1", f"b-{uuid.uuid4().hex[:8]}", "WETH/USDC", "1", Decimal("0.01"),
                 limit=Decimal("5000"))
    assert r[103] == "3" and "price_band_bps breached: limit price 5000 is" in r[58] and "> band 500 bps" in r[58]


@pytest.mark.e2e
def test_e2e_gas_price(rbridge, devnet):
    r = rejected(rbridge, devnet, "CLIENT3", f"g-{uuid.uuid4().hex[:8]}", "WETH/USDC", "2", Decimal("0.01"))
    assert r[103] == "3" and "max_gas_price_gwei breached: gas price" in r[58] and "> limit 0.000000001 gwei" in r[58]


@pytest.mark.e2e
def test_e2e_daily_notional_after_a_fill(rbridge, devnet):
    b, j, clients = rbridge
    c = clients["CLIENT1"]
    cl = f"d-{uuid.uuid4().hex[:8]}"
    c.send(new_order_single(cl, "WETH/USDC", "2", Decimal("0.02"), tif="3"))  # ~60 USDC
    done = c.reports_until_terminal(cl)[-1]
    assert done[39] == "2", done.raw
    traded = Decimal(done[14]) * Decimal(done[6])
    r = rejected(rbridge, devnet, "CLIENT1", cl + "-2", "WETH/USDC", "2", Decimal("0.02"))
    assert r[103] == "3" and "max_daily_notional breached:" in r[58]
    used = Decimal(r[58].split("breached: ")[1].split(" USDC")[0])
    assert used == traded  # what the journal says the session traded today
