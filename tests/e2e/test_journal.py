"""The journal on both backends: exact numbers, exactly-once ClOrdIDs, write-ahead transactions.

Every test runs on SQLite (a file under tmp_path) and on PostgreSQL at 127.0.0.1:5432 (one fresh
database per module, dropped afterwards; skipped if the server is not reachable).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from fixbridge.journal import (
    DuplicateClOrdID,
    EventRow,
    Journal,
    OrderRow,
    UnknownOrder,
    UnknownTransaction,
)
from fixbridge.journal.schema import metadata
from fixbridge.journal.store import alembic_config, create_journal_engine
from fixbridge.orders.model import Fill, OrdStatus, OrdType, Order, RejectReason, Side, TimeInForce

from support import BACKENDS  # the parametrization the suite shares

TABLES = ("fix_messages", "orders", "order_events", "transactions", "receipts", "fills", "approvals", "wallet_nonces")

SESSION = "FIX.4.4:BRIDGE->OMS"
OTHER_SESSION = "FIX.4.4:BRIDGE->OMS2"
WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil account 0
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
SPENDER = "0xE592427A0AEce92De3Edee1F18E0157C05861564"
TINY = Decimal("0.000000000000000001")
BIG = Decimal("123456789012345678.123456789")


def tx_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


def make_order(order_id: str, cl_ord_id: str = "C1", session_id: str = SESSION, **kw) -> Order:
    fields = dict(
        session_id=session_id,
        cl_ord_id=cl_ord_id,
        symbol="WETH/USDC",
        side=Side.SELL,
        ord_type=OrdType.LIMIT,
        time_in_force=TimeInForce.IOC,
        order_qty=Decimal("1.5"),
        price=Decimal("3000.25"),
        order_id=order_id,
    )
    fields.update(kw)
    return Order(**fields)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url(pg_new_database: Callable[[], str]) -> str:
    return pg_new_database()


@pytest.fixture(params=BACKENDS)
def journal(request: pytest.FixtureRequest, tmp_path) -> Iterator[Journal]:
    """A migrated, empty journal."""
    if request.param == "sqlite":
        j = Journal(f"sqlite:///{tmp_path}/var/journal.db")  # parent dir does not exist yet
    else:
        j = Journal(request.getfixturevalue("pg_url"))
        with j._engine.begin() as c:  # the module's database is shared: start each test empty
            c.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    try:
        yield j
    finally:
        j.close()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL of a database with nothing in it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.db"
    return request.getfixturevalue("pg_new_database")()


# --------------------------------------------------------------------------------------------
# Schema and migrations
# --------------------------------------------------------------------------------------------


def test_migration_on_empty_db_creates_exactly_the_models(empty_url: str) -> None:
    Journal(empty_url).close()
    engine = create_journal_engine(empty_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == set(metadata.tables) | {"alembic_version"}
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert ctx.get_current_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert compare_metadata(ctx, metadata) == []

        # downgrade removes everything; upgrading again (as a reopen does) restores it
        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    j = Journal(empty_url)
    j.close()
    assert j.url == empty_url


def test_reopen_is_a_noop_migration(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "accepted")
    Journal(journal.url).close()
    assert journal.get_order("O1") is not None


# --------------------------------------------------------------------------------------------
# Exact numbers and time
# --------------------------------------------------------------------------------------------


def test_decimals_units_and_timestamps_round_trip_exactly(journal: Journal) -> None:
    expire = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    journal.insert_order(
        make_order("O1", order_qty=BIG, price=TINY, cash_order_qty=Decimal("0.50"), expire_time=expire),
        "accepted",
    )
    row = journal.get_order("O1")
    assert isinstance(row, OrderRow)
    assert row.order_qty == BIG and isinstance(row.order_qty, Decimal)
    assert str(row.order_qty) == "123456789012345678.123456789"
    assert row.price == TINY and isinstance(row.price, Decimal)
    assert row.cash_order_qty == Decimal("0.5")
    assert row.leaves_qty == BIG and row.cum_qty == 0 and row.avg_px == 0
    assert row.expire_time == expire
    assert row.expire_time.tzinfo == timezone.utc and row.expire_time.microsecond == 678901
    assert row.created_at.tzinfo == timezone.utc
    assert row.status is OrdStatus.PENDING_NEW
    assert row.side is Side.SELL and row.ord_type is OrdType.LIMIT and row.time_in_force is TimeInForce.IOC

    journal.record_signed_tx(
        order_id="O1", purpose="swap", chain_id=31337, wallet=WALLET, nonce=0, tx_hash=tx_hash(1),
        raw_tx="0x02f8", gas_limit=2**200, max_fee_per_gas=2**256 - 1, max_priority_fee_per_gas=1,
    )
    (tx,) = journal.transactions_for("O1")
    assert tx.gas_limit == 2**200 and tx.max_fee_per_gas == 2**256 - 1 and type(tx.gas_limit) is int

    assert journal.record_fill(
        Fill(order_id="O1", exec_id=f"{tx_hash(1)}:0", tx_hash=tx_hash(1), log_index=0, block_number=7,
             last_qty=TINY, last_px=BIG, base_units=2**200, quote_units=2**256 - 1),
        fee_eth=Decimal("0.000021000000000000"),
    )
    (fill,) = journal.fills_for("O1")
    assert fill.last_qty == TINY and fill.last_px == BIG
    assert fill.base_units == 2**200 and fill.quote_units == 2**256 - 1 and type(fill.base_units) is int
    assert fill.fee_eth == Decimal("0.000021")

    journal.transition("O1", OrdStatus.FILLED, "filled", cum_qty=BIG, avg_px=TINY)
    row = journal.get_order("O1")
    assert row.cum_qty == BIG and row.avg_px == TINY and row.leaves_qty == 0
    assert row.updated_at >= row.created_at


def test_floats_and_naive_datetimes_are_refused(journal: Journal) -> None:
    with pytest.raises(TypeError, match="float"):
        journal.insert_order(make_order("O1", price=3000.25), "accepted")
    with pytest.raises(ValueError, match="naive"):
        journal.insert_order(make_order("O2", expire_time=datetime(2030, 1, 1)), "accepted")
    with pytest.raises(TypeError, match="float"):
        journal.insert_order(make_order("O3"), "accepted", detail={"slippage": 0.01})
    assert journal.open_orders() == []


# --------------------------------------------------------------------------------------------
# Orders, events
# --------------------------------------------------------------------------------------------


def test_duplicate_clordid_per_session_and_across_restart(journal: Journal) -> None:
    journal.insert_order(make_order("O1", cl_ord_id="C1"), "accepted")
    with pytest.raises(DuplicateClOrdID) as info:
        journal.insert_order(make_order("O2", cl_ord_id="C1"), "accepted")
    assert (info.value.session_id, info.value.cl_ord_id) == (SESSION, "C1")
    assert journal.get_order("O2") is None and journal.events("O2") == []

    journal.insert_order(make_order("O3", cl_ord_id="C1", session_id=OTHER_SESSION), "accepted")
    assert journal.find_order(OTHER_SESSION, "C1").order_id == "O3"
    assert journal.find_order(SESSION, "C1").order_id == "O1"

    journal.close()  # a restart
    reopened = Journal(journal.url)
    try:
        with pytest.raises(DuplicateClOrdID):
            reopened.insert_order(make_order("O4", cl_ord_id="C1"), "accepted")
        with pytest.raises(DuplicateClOrdID):
            reopened.insert_order(make_order("O5", cl_ord_id="C1", session_id=OTHER_SESSION), "accepted")
        reopened.insert_order(make_order("O6", cl_ord_id="C2"), "accepted")
        assert [o.order_id for o in reopened.open_orders()] == ["O1", "O3", "O6"]
    finally:
        reopened.close()


def test_transition_and_events_record_the_trail(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "NewOrderSingle accepted")
    journal.add_event("O1", "risk", "within limits", {"notional": Decimal("4500.375"), "limit": 10**30})
    journal.transition("O1", OrdStatus.NEW, "risk passed", venue="uniswap-v3", wallet=WALLET)
    journal.add_event("O1", "quote", "quoted", {"amount_out": 2**200, "tx": bytes.fromhex("beef")})
    journal.transition(
        "O1", OrdStatus.PARTIALLY_FILLED, "fill 0xab:3", cum_qty=Decimal("0.5"), avg_px=Decimal("3001")
    )
    journal.transition(
        "O1", OrdStatus.CANCELED, "IOC remainder canceled", text="bound not met",
        detail={"revert_reason": "Too little received"},
    )

    events = journal.events("O1")
    assert all(isinstance(e, EventRow) for e in events)
    assert [(e.kind, e.from_status, e.to_status, e.reason) for e in events] == [
        ("transition", None, OrdStatus.PENDING_NEW, "NewOrderSingle accepted"),
        ("risk", OrdStatus.PENDING_NEW, OrdStatus.PENDING_NEW, "within limits"),
        ("transition", OrdStatus.PENDING_NEW, OrdStatus.NEW, "risk passed"),
        ("quote", OrdStatus.NEW, OrdStatus.NEW, "quoted"),
        ("transition", OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, "fill 0xab:3"),
        ("transition", OrdStatus.PARTIALLY_FILLED, OrdStatus.CANCELED, "IOC remainder canceled"),
    ]
    assert events[1].detail == {"notional": "4500.375", "limit": 10**30}
    assert events[3].detail == {"amount_out": 2**200, "tx": "0xbeef"}
    assert events[0].detail is None and events[-1].detail == {"revert_reason": "Too little received"}
    assert all(e.ts.tzinfo == timezone.utc for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)

    row = journal.get_order("O1")
    assert row.status is OrdStatus.CANCELED
    assert (row.cum_qty, row.avg_px, row.leaves_qty) == (Decimal("0.5"), Decimal("3001"), 0)
    assert (row.venue, row.wallet, row.text) == ("uniswap-v3", WALLET, "bound not met")
    assert row.to_order().status is OrdStatus.CANCELED and row.to_order().cum_qty == Decimal("0.5")

    journal.insert_order(make_order("O2", cl_ord_id="C2"), "accepted")
    journal.transition("O2", OrdStatus.NEW, "ok", cum_qty=Decimal("0.25"))
    assert journal.get_order("O2").leaves_qty == Decimal("1.25")  # derived: order_qty - cum_qty
    journal.transition(
        "O2", OrdStatus.REJECTED, "venue gone", rej_reason=RejectReason.EXCHANGE_CLOSED, leaves_qty=Decimal("7")
    )
    assert journal.get_order("O2").rej_reason == 2 and journal.get_order("O2").leaves_qty == 7  # as given

    with pytest.raises(UnknownOrder):
        journal.transition("nope", OrdStatus.NEW, "x")
    with pytest.raises(UnknownOrder):
        journal.add_event("nope", "note", "x")
    with pytest.raises(ValueError):
        journal.add_event("O1", "gossip", "x")
    assert journal.get_order("nope") is None and journal.find_order(SESSION, "nope") is None


def test_open_orders_excludes_terminal(journal: Journal) -> None:
    statuses = {
        "O-pn": OrdStatus.PENDING_NEW, "O-new": OrdStatus.NEW, "O-pf": OrdStatus.PARTIALLY_FILLED,
        "O-pc": OrdStatus.PENDING_CANCEL, "O-f": OrdStatus.FILLED, "O-c": OrdStatus.CANCELED,
        "O-e": OrdStatus.EXPIRED, "O-r": OrdStatus.REJECTED,
    }
    for i, order_id in enumerate(statuses):
        journal.insert_order(make_order(order_id, cl_ord_id=f"C{i}"), "accepted")
    for order_id, status in statuses.items():
        if status is not OrdStatus.PENDING_NEW:
            journal.transition(order_id, status, f"to {status.value}")
    assert [o.order_id for o in journal.open_orders()] == ["O-pn", "O-new", "O-pf", "O-pc"]
    journal.insert_order(make_order("O-rej", cl_ord_id="CR", status=OrdStatus.REJECTED), "bad symbol")
    assert "O-rej" not in {o.order_id for o in journal.open_orders()}


def test_concurrent_insert_same_clordid_exactly_one_wins(journal: Journal) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            journal.insert_order(make_order(f"O{i}", cl_ord_id="SAME"), f"thread {i}")
            result = "ok"
        except DuplicateClOrdID:
            result = "dup"
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
            result = f"error: {exc!r}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["dup"] * 7 + ["ok"]
    (winner,) = journal.open_orders()
    assert [e.reason for e in journal.events(winner.order_id)] == [f"thread {winner.order_id[1:]}"]


# --------------------------------------------------------------------------------------------
# Transactions, receipts, nonces
# --------------------------------------------------------------------------------------------


def _sign(journal: Journal, n: int, nonce: int, *, order_id: str | None = "O1", chain_id: int = 31337,
          wallet: str = WALLET, purpose: str = "swap") -> str:
    h = tx_hash(n)
    journal.record_signed_tx(
        order_id=order_id, purpose=purpose, chain_id=chain_id, wallet=wallet, nonce=nonce, tx_hash=h,
        raw_tx=f"0x02f8{n:04x}", gas_limit=300_000, max_fee_per_gas=30 * 10**9, max_priority_fee_per_gas=10**9,
    )
    return h


def test_record_signed_tx_advances_next_nonce_monotonically(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "accepted")
    assert journal.next_nonce(31337, WALLET) is None
    _sign(journal, 1, 5)
    assert journal.next_nonce(31337, WALLET) == 6
    _sign(journal, 2, 3)  # an older nonce never moves it back
    assert journal.next_nonce(31337, WALLET) == 6
    _sign(journal, 3, 6, order_id=None, purpose="approve")
    assert journal.next_nonce(31337, WALLET.lower()) == 7  # addresses are normalised to checksum form
    _sign(journal, 4, 0, chain_id=1)
    assert (journal.next_nonce(1, WALLET), journal.next_nonce(31337, WALLET)) == (1, 7)

    txs = journal.transactions_for("O1")
    assert [(t.nonce, t.status, t.wallet, t.purpose) for t in txs] == [
        (5, "signed", WALLET, "swap"), (3, "signed", WALLET, "swap"), (0, "signed", WALLET, "swap")
    ]
    assert txs[0].tx_hash == tx_hash(1) and txs[0].raw_tx == "0x02f80001" and txs[0].block_number is None
    assert [t.tx_hash for t in journal.pending_transactions()] == [tx_hash(i) for i in (1, 2, 3, 4)]

    # the very same signed tx again is a no-op (crash between journal and broadcast, then retry)
    _sign(journal, 1, 5)
    assert len(journal.transactions_for("O1")) == 3
    with pytest.raises(UnknownOrder):
        _sign(journal, 9, 9, order_id="nope")


def test_record_receipt_marks_mined_or_reverted(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "accepted")
    ok, bad, waiting = _sign(journal, 1, 0), _sign(journal, 2, 1), _sign(journal, 3, 2)
    journal.set_tx_status(ok, "broadcast")
    journal.set_tx_status(bad, "broadcast")
    assert {t.status for t in journal.pending_transactions()} == {"signed", "broadcast"}

    log = {"address": TOKEN, "topics": [bytes(32)], "data": b"\x01", "logIndex": 0}
    journal.record_receipt(
        tx_hash=ok.upper().replace("0X", "0x"), block_number=10, block_hash=bytes.fromhex("aa" * 32), status=1,
        gas_used=120_000, effective_gas_price=2**70, revert_reason=None, logs=[log],
    )
    journal.record_receipt(
        tx_hash=bad, block_number=11, block_hash="0x" + "bb" * 32, status=0, gas_used=50_000,
        effective_gas_price=10**9, revert_reason="Too little received", logs=[],
    )
    by_hash = {t.tx_hash: t for t in journal.transactions_for("O1")}
    assert (by_hash[ok].status, by_hash[ok].block_number) == ("mined", 10)
    assert (by_hash[bad].status, by_hash[bad].block_number) == ("reverted", 11)
    assert [t.tx_hash for t in journal.pending_transactions()] == [waiting]

    rc = journal.receipt(ok)
    assert rc.block_hash == "0x" + "aa" * 32 and rc.effective_gas_price == 2**70 and rc.status == 1
    assert rc.logs == [{"address": TOKEN, "topics": ["0x" + "00" * 32], "data": "0x01", "logIndex": 0}]
    assert journal.receipt(bad).revert_reason == "Too little received"

    # a reorg re-mines it elsewhere: the one receipt row now describes the new block
    journal.record_receipt(
        tx_hash=ok, block_number=12, block_hash="0x" + "cc" * 32, status=1, gas_used=120_000,
        effective_gas_price=2**70, revert_reason=None, logs=[log],
    )
    assert journal.receipt(ok).block_number == 12 and journal.get_transaction(ok).block_number == 12

    journal.set_tx_status(waiting, "dropped")
    assert journal.pending_transactions() == []
    with pytest.raises(UnknownTransaction):
        journal.set_tx_status(tx_hash(99), "broadcast")
    with pytest.raises(UnknownTransaction):
        journal.record_receipt(tx_hash=tx_hash(99), block_number=1, block_hash=tx_hash(1), status=1,
                               gas_used=1, effective_gas_price=1, revert_reason=None, logs=[])
    with pytest.raises(ValueError):
        journal.set_tx_status(ok, "confirmed")


# --------------------------------------------------------------------------------------------
# Fills, approvals, FIX messages
# --------------------------------------------------------------------------------------------


def test_record_fill_is_idempotent_on_exec_id(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "accepted")
    fill = Fill(order_id="O1", exec_id=f"{tx_hash(1)}:3", tx_hash=tx_hash(1), log_index=3, block_number=10,
                last_qty=Decimal("1.5"), last_px=Decimal("3000.5"), base_units=15 * 10**17, quote_units=4500750000)
    assert journal.record_fill(fill, Decimal("0.0021")) is True
    assert journal.record_fill(fill, Decimal("0.0021")) is False
    assert journal.record_fill(fill, None) is False
    (row,) = journal.fills_for("O1")
    assert (row.exec_id, row.log_index, row.block_number, row.fee_eth) == (fill.exec_id, 3, 10, Decimal("0.0021"))
    with pytest.raises(UnknownOrder):
        journal.record_fill(Fill(**{**fill.__dict__, "order_id": "nope", "exec_id": "x:1"}), None)


def test_approvals(journal: Journal) -> None:
    journal.insert_order(make_order("O1"), "accepted")
    journal.record_approval(order_id="O1", chain_id=31337, wallet=WALLET.lower(), token=TOKEN, spender=SPENDER,
                            amount_units=2**256 - 1, policy="standing", tx_hash=tx_hash(5))
    (a,) = journal.approvals_for("O1")
    assert (a.wallet, a.token, a.spender, a.amount_units, a.policy) == (WALLET, TOKEN, SPENDER, 2**256 - 1, "standing")
    with pytest.raises(ValueError):
        journal.record_approval(order_id=None, chain_id=1, wallet=WALLET, token=TOKEN, spender=SPENDER,
                                amount_units=1, policy="forever", tx_hash=tx_hash(6))
    with pytest.raises(ValueError):  # bad EIP-55 checksum
        journal.record_approval(order_id=None, chain_id=1, wallet=WALLET.replace("f39F", "F39f"), token=TOKEN,
                                spender=SPENDER, amount_units=1, policy="exact", tx_hash=tx_hash(6))


def test_fix_messages_in_time_order_and_filtered(journal: Journal) -> None:
    journal.record_fix_message(session_id=SESSION, direction="in", msg_type="D", seq_num=2, cl_ord_id="C1",
                               raw="8=FIX.4.4\x019=5\x0135=D\x0111=C1\x0110=000\x01")
    journal.record_fix_message(session_id=SESSION, direction="out", msg_type="8", seq_num=2, cl_ord_id="C1",
                               order_id="O1", exec_id="E1", exec_type="0", ord_status="0", raw="8=FIX.4.4|35=8|")
    journal.record_fix_message(session_id=OTHER_SESSION, direction="in", msg_type="A", raw="8=FIX.4.4|35=A|")
    with pytest.raises(ValueError):
        journal.record_fix_message(session_id=SESSION, direction="sideways", msg_type="0", raw="")

    msgs = journal.fix_messages(session_id=SESSION)
    assert [(m.direction, m.msg_type) for m in msgs] == [("in", "D"), ("out", "8")]
    assert msgs[0].raw == "8=FIX.4.4|9=5|35=D|11=C1|10=000|" and msgs[0].seq_num == 2
    assert (msgs[1].order_id, msgs[1].exec_id, msgs[1].exec_type, msgs[1].ord_status) == ("O1", "E1", "0", "0")
    assert msgs[0].ts <= msgs[1].ts and msgs[0].ts.tzinfo == timezone.utc
    assert [m.msg_type for m in journal.fix_messages()] == ["D", "8", "A"]
    assert [m.msg_type for m in journal.fix_messages(cl_ord_id="C1", direction="out")] == ["8"]
    assert [m.msg_type for m in journal.fix_messages(order_id="O1")] == ["8"]
    assert [m.session_id for m in journal.fix_messages(msg_type="A")] == [OTHER_SESSION]


# --------------------------------------------------------------------------------------------
# Group commit (fixbridge/journal/batch.py)
# --------------------------------------------------------------------------------------------


def test_batch_commits_together_and_runs_actions_after(journal):
    seen: list[tuple[str, bool]] = []
    journal.insert_order(make_order("B1", "CB1"), reason="received")
    with journal.batch() as b:
        journal.transition("B1", OrdStatus.NEW, "accepted", leaves_qty=Decimal("1.5"), from_status=OrdStatus.PENDING_NEW)
        journal.add_event("B1", "quote", "quoted", status=OrdStatus.NEW)
        journal.after_commit(lambda: seen.append(("new", journal.get_order("B1").status is OrdStatus.NEW)))
        # queued, not written: other readers (and this thread) see the committed state only
        assert journal.get_order("B1").status is OrdStatus.PENDING_NEW and seen == []
        b.flush(wait=True)
        assert journal.get_order("B1").status is OrdStatus.NEW
    journal._writer.drain()
    assert seen == [("new", True)]  # the action ran after the commit, and saw it
    assert [e.kind for e in journal.events("B1")] == ["transition", "transition", "quote"]


def test_a_row_nothing_waits_for_is_committed_alone_or_with_the_next_unit(journal):
    """A unit with no action and no waiter (an outbound copy) may wait for company (batch.LAZY_S),
    but is never left behind: alone it is committed soon; queued before a unit somebody waits
    for, it is committed no later than that one."""
    copy = dict(session_id=SESSION, direction="out", msg_type="8", raw="8=FIX.4.4|35=8|", defer=True)
    journal.record_fix_message(cl_ord_id="L1", **copy)
    deadline = time.monotonic() + 5
    while not journal.fix_messages(cl_ord_id="L1"):
        assert time.monotonic() < deadline, "a row nothing waits for was never committed"
        time.sleep(0.001)
    journal.record_fix_message(cl_ord_id="L2", **copy)
    with journal.batch() as b:
        journal.insert_order(make_order("L3", "CL3"), reason="received")
        b.flush(wait=True)
        assert [m.cl_ord_id for m in journal.fix_messages(cl_ord_id="L2")] == ["L2"]
        assert journal.get_order("L3") is not None
    assert journal.drain(timeout=5)


def test_a_failing_write_in_a_batch_undoes_only_itself(journal):
    journal.insert_order(make_order("B2", "CB2"), reason="received")
    with journal.batch():
        with pytest.raises(DuplicateClOrdID):
            journal.insert_order(make_order("B3", "CB2"), reason="received")  # same ClOrdID: refused at once
        journal.insert_order(make_order("B4", "CB4"), reason="received")
        journal.add_event("B2", "note", "still written", status=OrdStatus.PENDING_NEW)
    journal._writer.drain()
    assert journal.get_order("B3") is None and journal.get_order("B4") is not None
    assert [e.reason for e in journal.events("B2")][-1] == "still written"


def test_an_older_transition_committed_late_does_not_undo_a_newer_one(journal):
    """Two threads' batches may commit in either order; the row keeps the latest state."""
    journal.insert_order(make_order("B5", "CB5"), reason="received")
    journal.transition("B5", OrdStatus.NEW, "accepted", leaves_qty=Decimal("1.5"), from_status=OrdStatus.PENDING_NEW)
    older = threading.Event()

    def late() -> None:
        with journal.batch():
            journal.transition("B5", OrdStatus.PENDING_CANCEL, "cancel asked", leaves_qty=Decimal("1.5"),
                               from_status=OrdStatus.NEW)
            older.wait(5)  # queued (and stamped) first, handed to the writer last

    t = threading.Thread(target=late)
    t.start()
    with journal.batch():
        time.sleep(0.01)
        journal.transition("B5", OrdStatus.CANCELED, "canceled", leaves_qty=Decimal(0),
                           from_status=OrdStatus.PENDING_CANCEL)
    journal._writer.drain()
    older.set()
    t.join()
    journal._writer.drain()
    assert journal.get_order("B5").status is OrdStatus.CANCELED
    assert [e.to_status for e in journal.events("B5")][-2:] == [OrdStatus.CANCELED, OrdStatus.PENDING_CANCEL]
