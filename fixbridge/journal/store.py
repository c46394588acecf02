"""The journal: the bridge's SQL system of record, written before things happen (write-ahead).

``Journal(url)`` opens SQLite (``sqlite:///var/journal.db``) or PostgreSQL
(``postgresql+psycopg://user@host:5432/db``), migrates the schema to the newest Alembic revision
and then answers the calls below. Every call is one short transaction on a fresh session, so one
``Journal`` may be shared by the FIX callback thread and the execution engine thread.

Nothing ORM leaks out: reads return the frozen dataclasses defined here. Numbers are exact
(``Decimal`` quantities, ``int`` base units), timestamps are aware UTC datetimes.
"""
from __future__ import annotations

import contextlib
import functools
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, Inexact
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from sqlalchemy import Engine, bindparam, case, create_engine, event, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

import structlog

from fixbridge.orders.model import (
    TERMINAL,
    Fill,
    OrdStatus,
    OrdType,
    Order,
    Side,
    TimeInForce,
)

from . import schema as db
from .batch import Batch, Unit, Writer
from .chains import ChainRecords
from .leases import LeaseRecords
from .prepared import Prepared, PreparedCache
from .security import SecurityRecords

__all__ = [
    "Journal",
    "JournalError",
    "DuplicateClOrdID",
    "UnknownOrder",
    "UnknownTransaction",
    "OrderRow",
    "EventRow",
    "TxRow",
    "FillRow",
    "FixMessageRow",
    "ReceiptRow",
    "ApprovalRow",
    "MIGRATIONS_DIR",
    "alembic_config",
    "create_journal_engine",
    "upgrade_to_head",
]

_log = structlog.get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_TERMINAL_VALUES = tuple(s.value for s in TERMINAL)
_PENDING_TX = ("signed", "broadcast")
_MIGRATION_LOCK_KEY = 0x6678_6272_6A6E  # "fxbrjn": serialises concurrent migrations on PostgreSQL
_READ_ONLY = "fixbridge_journal_read_only"
_EXACT = Context(prec=200, traps=[Inexact])  # for the journal's own sums: never rounds, or raises


# ============================================================================================
# Errors
# ============================================================================================


class JournalError(Exception):
    """Base class of the journal's own errors."""


class DuplicateClOrdID(JournalError):
    """The (session_id, cl_ord_id) pair is already journaled; ClOrdIDs are unique per session, forever."""

    def __init__(self, session_id: str, cl_ord_id: str, prior: "OrderRow | None" = None) -> None:
        super().__init__(f"duplicate ClOrdID {cl_ord_id!r} on session {session_id!r}")
        self.session_id = session_id
        self.cl_ord_id = cl_ord_id
        self.prior = prior  # the order that holds the ClOrdID


class UnknownOrder(JournalError, LookupError):
    """No order with that order_id is journaled."""


class UnknownTransaction(JournalError, LookupError):
    """No transaction with that tx_hash is journaled."""


# ============================================================================================
# Rows handed out
# ============================================================================================


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    order_id: str
    session_id: str
    cl_ord_id: str
    account: str | None
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    order_qty: Decimal | None
    cash_order_qty: Decimal | None
    price: Decimal | None
    expire_time: datetime | None
    ex_destination: str | None
    wallet: str | None
    venue: str | None
    status: OrdStatus
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_px: Decimal
    text: str | None
    rej_reason: int | None
    created_at: datetime
    updated_at: datetime

    def to_order(self) -> Order:
        """The domain ``Order`` this row describes (e.g. to resume it after a restart)."""
        return Order(
            session_id=self.session_id,
            cl_ord_id=self.cl_ord_id,
            symbol=self.symbol,
            side=self.side,
            ord_type=self.ord_type,
            time_in_force=self.time_in_force,
            order_qty=self.order_qty,
            cash_order_qty=self.cash_order_qty,
            price=self.price,
            account=self.account,
            expire_time=self.expire_time,
            ex_destination=self.ex_destination,
            order_id=self.order_id,
            status=self.status,
            cum_qty=self.cum_qty,
            avg_px=self.avg_px,
            text=self.text,
            venue=self.venue,
            wallet=self.wallet,
            created_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    order_id: str
    ts: datetime
    kind: str
    from_status: OrdStatus | None
    to_status: OrdStatus
    reason: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TxRow:
    id: int
    order_id: str | None
    purpose: str
    chain_id: int
    wallet: str
    nonce: int
    tx_hash: str
    raw_tx: str
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    status: str
    block_number: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    id: int
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    revert_reason: str | None
    logs: list[dict[str, Any]]
    ts: datetime


@dataclass(frozen=True, slots=True)
class FillRow:
    id: int
    order_id: str
    exec_id: str
    tx_hash: str
    log_index: int
    block_number: int
    last_qty: Decimal
    last_px: Decimal
    base_units: int
    quote_units: int
    fee_eth: Decimal | None
    ts: datetime
    busted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: int
    order_id: str | None
    chain_id: int
    wallet: str
    token: str
    spender: str
    amount_units: int
    policy: str
    tx_hash: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class FixMessageRow:
    id: int
    ts: datetime
    session_id: str
    direction: str
    msg_type: str
    seq_num: int | None
    cl_ord_id: str | None
    order_id: str | None
    exec_id: str | None
    exec_type: str | None
    ord_status: str | None
    raw: str


def _order_row(r: db.Order) -> OrderRow:
    return OrderRow(
        id=r.id,
        order_id=r.order_id,
        session_id=r.session_id,
        cl_ord_id=r.cl_ord_id,
        account=r.account,
        symbol=r.symbol,
        side=Side(r.side),
        ord_type=OrdType(r.ord_type),
        time_in_force=TimeInForce(r.time_in_force),
        order_qty=r.order_qty,
        cash_order_qty=r.cash_order_qty,
        price=r.price,
        expire_time=r.expire_time,
        ex_destination=r.ex_destination,
        wallet=r.wallet,
        venue=r.venue,
        status=OrdStatus(r.status),
        cum_qty=r.cum_qty,
        leaves_qty=r.leaves_qty,
        avg_px=r.avg_px,
        text=r.text,
        rej_reason=r.rej_reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _event_row(r: db.OrderEvent) -> EventRow:
    return EventRow(
        id=r.id,
        order_id=r.order_id,
        ts=r.ts,
        kind=r.kind,
        from_status=None if r.from_status is None else OrdStatus(r.from_status),
        to_status=OrdStatus(r.to_status),
        reason=r.reason,
        detail=r.detail,
    )


def _tx_row(r: db.Transaction) -> TxRow:
    return TxRow(
        id=r.id,
        order_id=r.order_id,
        purpose=r.purpose,
        chain_id=r.chain_id,
        wallet=r.wallet,
        nonce=r.nonce,
        tx_hash=r.tx_hash,
        raw_tx=r.raw_tx,
        gas_limit=r.gas_limit,
        max_fee_per_gas=r.max_fee_per_gas,
        max_priority_fee_per_gas=r.max_priority_fee_per_gas,
        status=r.status,
        block_number=r.block_number,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _receipt_row(r: db.Receipt) -> ReceiptRow:
    return ReceiptRow(
        id=r.id,
        tx_hash=r.tx_hash,
        block_number=r.block_number,
        block_hash=r.block_hash,
        status=r.status,
        gas_used=r.gas_used,
        effective_gas_price=r.effective_gas_price,
        revert_reason=r.revert_reason,
        logs=r.logs,
        ts=r.ts,
    )


def _fill_row(r: db.Fill) -> FillRow:
    return FillRow(
        id=r.id,
        order_id=r.order_id,
        exec_id=r.exec_id,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        block_number=r.block_number,
        last_qty=r.last_qty,
        last_px=r.last_px,
        base_units=r.base_units,
        quote_units=r.quote_units,
        fee_eth=r.fee_eth,
        ts=r.ts,
        busted_at=r.busted_at,
    )


def _approval_row(r: db.Approval) -> ApprovalRow:
    return ApprovalRow(
        id=r.id,
        order_id=r.order_id,
        chain_id=r.chain_id,
        wallet=r.wallet,
        token=r.token,
        spender=r.spender,
        amount_units=r.amount_units,
        policy=r.policy,
        tx_hash=r.tx_hash,
        ts=r.ts,
    )


def _fix_row(r: db.FixMessage) -> FixMessageRow:
    return FixMessageRow(
        id=r.id,
        ts=r.ts,
        session_id=r.session_id,
        direction=r.direction,
        msg_type=r.msg_type,
        seq_num=r.seq_num,
        cl_ord_id=r.cl_ord_id,
        order_id=r.order_id,
        exec_id=r.exec_id,
        exec_type=r.exec_type,
        ord_status=r.ord_status,
        raw=r.raw,
    )


# ============================================================================================
# Input normalisation
# ============================================================================================

_HEX = frozenset(string.hexdigits)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _hex(value: str | bytes, what: str, nbytes: int | None = None) -> str:
    """Lower-case 0x-prefixed hex for a str or bytes (HexBytes included, whose .hex() has no 0x)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        h = bytes(value).hex()
    elif isinstance(value, str):
        h = value.lower()
        if h.startswith("0x"):
            h = h[2:]
    else:
        raise TypeError(f"{what}: expected hex str or bytes, got {type(value).__name__}")
    if len(h) % 2 or not _HEX.issuperset(h) or (nbytes is not None and len(h) != 2 * nbytes):
        size = f"{nbytes}-byte " if nbytes else ""
        raise ValueError(f"{what}: not {size}hex: {value!r}")
    return "0x" + h


def _hash32(value: str | bytes, what: str = "tx_hash") -> str:
    return _hex(value, what, 32)


def _address(value: str | bytes, what: str = "address") -> str:
    """EIP-55 checksum form, so one wallet is always one key (nonces are keyed by it)."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        value = "0x" + bytes(value).hex()
    if isinstance(value, str):
        return _checksummed(value, what)
    raise ValueError(f"{what}: not a 20-byte hex address: {value!r}")


@functools.lru_cache(maxsize=4096)  # a handful of wallets and contracts, each written per order: two keccaks saved
def _checksummed(value: str, what: str) -> str:
    if not is_hex_address(value):
        raise ValueError(f"{what}: not a 20-byte hex address: {value!r}")
    body = value[2:] if value[:2].lower() == "0x" else value
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError(f"{what}: mixed-case address with a bad EIP-55 checksum: {value!r}")
    return to_checksum_address(value)


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _leaves(status: OrdStatus, order_qty: Decimal | None, cum_qty: Decimal) -> Decimal:
    """LeavesQty by the domain model's rule (``Order.leaves_qty``), computed without rounding."""
    if status.terminal or order_qty is None:
        return Decimal(0)
    return db.canonical_decimal(_EXACT.subtract(order_qty, cum_qty))


# ============================================================================================
# Engine, migrations
# ============================================================================================


def alembic_config(url: str | None = None, connection: Any = None) -> Config:
    """An Alembic ``Config`` built in code: independent of the working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def create_journal_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite with WAL, busy_timeout, foreign keys and BEGIN IMMEDIATE writes.

    SQLite writers take the write lock when their transaction begins (``BEGIN IMMEDIATE``), so a
    read-then-write transaction can never fail with "database is locked" halfway through; they
    queue on ``busy_timeout`` instead. Engines made with the ``fixbridge_journal_read_only``
    execution option begin with a plain (deferred) ``BEGIN`` and read a WAL snapshot.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(u, **kwargs)

    database = u.database or ""
    memory = database in ("", ":memory:") or u.query.get("mode") == "memory"
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    if memory:
        # One shared connection: fine for single-threaded tests; use a file for anything else.
        kwargs.setdefault("poolclass", StaticPool)
    elif not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def upgrade_to_head(engine: Engine) -> None:
    """``alembic upgrade head`` on ``engine``, in one transaction, safe against concurrent openers."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection=conn), "head")


@contextmanager
def _plain_value_errors() -> Iterator[None]:
    """Re-raise a TypeError/ValueError from a column type (a float, a naive datetime) as itself.

    SQLAlchemy wraps errors raised while binding parameters in StatementError; the caller should
    see the plain error that says what was wrong with the value.
    """
    try:
        yield
    except StatementError as exc:
        if not isinstance(exc, DBAPIError) and isinstance(exc.orig, (TypeError, ValueError)):
            raise exc.orig from exc
        raise


# ============================================================================================
# The journal
# ============================================================================================


class Journal(SecurityRecords, LeaseRecords):
    """The write-ahead journal. Thread-safe: each call is one short transaction on its own session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_journal_engine(url)
        try:
            upgrade_to_head(self._engine)
        except BaseException:
            self._engine.dispose()
            raise
        self._dialect = self._engine.dialect.name
        self._prepared = PreparedCache(self._engine.dialect)  # the hot path's statements (prepared.py)
        self._session = sessionmaker(bind=self._engine, expire_on_commit=False)
        self._reader = sessionmaker(
            bind=self._engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self._closed = False
        self._lock = threading.Lock()
        # One writer at a time within this process on SQLite; PostgreSQL takes concurrent writers.
        self._writer_lock = threading.RLock() if self._dialect == "sqlite" else None
        self._tls = threading.local()  # this thread's open Batch, if any
        self._writer = Writer(self)  # the one thread that commits batches (batch.py)
        self.chains = ChainRecords(self)  # which chain each of the spec's chains is (chains.py)

    def __repr__(self) -> str:
        return f"Journal({make_url(self.url).render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> bool:
        """Commit what is queued and close; False if the writer could not drain in time."""
        drained = True
        if not self._closed:
            drained = self._writer.stop()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._engine.dispose()
        return drained

    # ---- group commit (see batch.py) ---------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Queue every write of this thread inside the block; at the end (or at ``Batch.flush()``)
        they go to the writer thread as one unit, and ``after_commit`` actions run once they are
        durable. Reads see only what is committed. Nested batches join the outer one."""
        outer = getattr(self._tls, "batch", None)
        if outer is not None:
            yield outer
            return
        b = Batch(self)
        self._tls.batch = b
        try:
            yield b
        finally:
            # Even when the block raised: what was queued is true and its reports are owed.
            self._tls.batch = None
            b.flush()

    def after_commit(self, action) -> None:
        """Run ``action`` once what this thread's batch queued so far is committed; at once outside a batch."""
        b = getattr(self._tls, "batch", None)
        if b is None:
            action()
        else:
            b.after_commit(action)

    def collect_after_commit(self, key: str, item: Any, action, lane: str = "dispatch") -> None:
        """Gather items of this thread's batch into one list for one ``action(list)`` after the
        commit (e.g. one broadcast for all the swaps signed in it), on ``lane``'s thread (batch.py);
        at once outside a batch."""
        b = getattr(self._tls, "batch", None)
        if b is None:
            action([item])
        else:
            b.collect(key, item, action, lane)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed and its after-commit actions have run."""
        return self._writer.drain(timeout)

    def backlog(self) -> int:
        """How far the group commit and its dispatcher are behind (units; see Writer.backlog)."""
        return self._writer.backlog()

    def in_batch(self) -> Batch | None:
        return getattr(self._tls, "batch", None)

    def flush(self) -> None:
        """Commit what this thread's open batch queued, and return once it is committed."""
        b = getattr(self._tls, "batch", None)
        if b is not None:
            b.flush(wait=True)

    def _writer_lock_cm(self) -> contextlib.AbstractContextManager:
        # SQLite has one writer: threads of this process queue on a lock instead of in SQLite's busy
        # handler, which sleeps in 1-100 ms steps (other processes still meet busy_timeout).
        return self._writer_lock if self._writer_lock is not None else contextlib.nullcontext()

    def _apply(self, op: Any) -> Any:
        """Run the write ``op(session)``: queued in this thread's batch (returns None), or now in
        a transaction of its own (returns what op returns)."""
        if self._closed:
            raise JournalError("journal is closed")
        b = getattr(self._tls, "batch", None)
        if b is not None:
            b.add(op)
            return None
        with self._write_plain() as s:
            return op(s)

    def _apply_later(self, op: Any) -> None:
        """Queue the write ``op(session)`` with nothing waiting on it (this thread's batch, or a
        unit of its own for the writer thread)."""
        if self._closed:
            raise JournalError("journal is closed")
        b = getattr(self._tls, "batch", None)
        if b is not None:
            b.add(op)
        else:
            self._writer.submit(Unit([op], [], wait=False))

    def _apply_now(self, op: Any) -> None:
        """Like _apply, but committed before returning, and a failure is raised to the caller."""
        b = getattr(self._tls, "batch", None)
        if b is None:
            return self._apply(op)
        i = b.add(op)
        failed = b.flush(wait=True)
        if i in failed:
            raise failed[i]
        return None

    def _execute_ops(self, ops: list[Any]) -> dict[int, BaseException]:
        """One transaction for all of ``ops``; if one fails, again with a SAVEPOINT around each so
        the failure undoes only itself. Returns the failures by index."""
        with self._writer_lock_cm():
            try:
                with _plain_value_errors(), self._session() as s, s.begin():
                    s.info["bulk"] = {}
                    for op in ops:
                        op(s)
                    self._flush_appended(s)
                return {}
            except (IntegrityError, ValueError, TypeError, JournalError):
                pass
            failures: dict[int, BaseException] = {}
            with self._session() as s, s.begin():
                for i, op in enumerate(ops):
                    try:
                        with _plain_value_errors(), s.begin_nested():
                            s.info["bulk"] = {}
                            op(s)
                            self._flush_appended(s)
                    except (IntegrityError, ValueError, TypeError, JournalError) as e:
                        failures[i] = e
            for i, e in failures.items():
                if not isinstance(e, IntegrityError) or "cl_ord_id" not in str(e):
                    _log.warning("journal write failed in a batch", error=f"{type(e).__name__}: {e}"[:300])
            return failures

    # Statements the hot path runs for every order, compiled once (building one costs more than
    # running it) and run on the driver's cursor (prepared.py). Values go by column name.
    @staticmethod
    def _binds(table: Any, keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: bindparam(f"p_{k}", type_=table.c[k].type) for k in keys}

    def _prep_insert(self, table: Any, keys: tuple[str, ...]) -> Prepared:
        return self._prepared.get(("insert", table.name, keys), lambda: self._insert(table).values(self._binds(table, keys)))

    @functools.cached_property
    def _nonce_upsert(self) -> Prepared:
        """wallet_nonces.next_nonce = max(existing, given)."""
        t = db.WalletNonce.__table__
        ins = self._insert(t).values(self._binds(t, ("chain_id", "wallet", "next_nonce", "updated_at")))
        advanced = ins.excluded.next_nonce > t.c.next_nonce
        return Prepared(ins.on_conflict_do_update(index_elements=[t.c.chain_id, t.c.wallet], set_={
            "next_nonce": case((advanced, ins.excluded.next_nonce), else_=t.c.next_nonce),
            "updated_at": case((advanced, ins.excluded.updated_at), else_=t.c.updated_at)}), self._engine.dialect)

    _FILL_KEYS = ("order_id", "exec_id", "tx_hash", "log_index", "block_number", "last_qty", "last_px",
                  "base_units", "quote_units", "fee_eth", "ts")

    @functools.cached_property
    def _fill_insert(self) -> Prepared:
        """Idempotent on exec_id; returns the new row's id."""
        t = db.Fill.__table__
        return Prepared(self._insert(t).values(self._binds(t, self._FILL_KEYS))
                        .on_conflict_do_nothing(index_elements=[t.c.exec_id]).returning(t.c.id), self._engine.dialect)

    _RECEIPT_KEYS = ("tx_hash", "block_number", "block_hash", "status", "gas_used", "effective_gas_price",
                     "revert_reason", "logs", "ts")

    @functools.cached_property
    def _receipt_upsert(self) -> Prepared:
        """A transaction's one receipt row; a newer one (re-mined after a reorg) replaces it."""
        r = db.Receipt.__table__
        ins = self._insert(r).values(self._binds(r, self._RECEIPT_KEYS))
        return Prepared(ins.on_conflict_do_update(index_elements=[r.c.tx_hash], set_={
            k: ins.excluded[k] for k in self._RECEIPT_KEYS if k != "tx_hash"}), self._engine.dialect)

    @functools.cached_property
    def _tx_mined(self) -> Prepared:
        t = db.Transaction.__table__
        return Prepared(update(t).where(t.c.tx_hash == bindparam("p_tx_hash", type_=t.c.tx_hash.type))
                        .values(self._binds(t, ("status", "block_number", "updated_at"))), self._engine.dialect)

    @functools.cached_property
    def _tx_of_hash(self) -> Prepared:
        t = db.Transaction.__table__
        return Prepared(select(t.c.order_id, t.c.purpose).where(t.c.tx_hash == bindparam("p_tx_hash", type_=t.c.tx_hash.type)),
                        self._engine.dialect)

    @functools.cached_property
    def _tx_with_order(self) -> Prepared:
        """(status, purpose, order_id, the order's status) of one transaction."""
        t, o = db.Transaction.__table__, db.Order.__table__
        return Prepared(select(t.c.status, t.c.purpose, t.c.order_id, o.c.status)
                        .select_from(t.outerjoin(o, o.c.order_id == t.c.order_id))
                        .where(t.c.tx_hash == bindparam("p_tx_hash", type_=t.c.tx_hash.type)), self._engine.dialect)

    @functools.cached_property
    def _tx_status_update(self) -> Prepared:
        t = db.Transaction.__table__
        return Prepared(update(t).where(t.c.tx_hash == bindparam("p_tx_hash", type_=t.c.tx_hash.type))
                        .values(self._binds(t, ("status", "updated_at"))), self._engine.dialect)

    def _order_update(self, keys: tuple[str, ...]) -> Prepared:
        """Set ``keys`` of an order, only over an older state (updated_at <= the given ``now``)."""
        def build() -> Any:
            o = db.Order.__table__
            return (update(o).where(o.c.order_id == bindparam("p_order_id", type_=o.c.order_id.type),
                                    o.c.updated_at <= bindparam("p_now", type_=o.c.updated_at.type))
                    .values(self._binds(o, keys)))
        return self._prepared.get(("order_update", keys), build)

    @staticmethod
    def _append(s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
        """Append-only rows (order events, FIX messages). Inside the writer's transaction they are
        gathered and inserted together at its end, one executemany per table (their ids keep the
        order they were appended in); elsewhere at once."""
        bulk = s.info.get("bulk")
        if bulk is None:
            s.connection().execute(insert(table), rows)
        else:
            bulk.setdefault(table, []).extend(rows)

    def _flush_appended(self, s: Session) -> None:
        bulk = s.info.pop("bulk", None) or {}
        for table, rows in bulk.items():
            start = 0  # consecutive rows with the same columns go in one executemany, in order
            for i in range(1, len(rows) + 1):
                if i == len(rows) or rows[i].keys() != rows[start].keys():
                    self._prep_insert(table, tuple(rows[start])).run_many(s, rows[start:i])
                    start = i

    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self._closed:
            raise JournalError("journal is closed")
        b = getattr(self._tls, "batch", None)
        if b is not None:
            b.flush(wait=True)  # keep the order of writes: what the batch queued goes first
        with self._write_plain() as s:
            yield s

    @contextmanager
    def _write_plain(self) -> Iterator[Session]:
        """One transaction of its own, whatever batch this thread has open."""
        with self._writer_lock_cm(), _plain_value_errors(), self._session() as s, s.begin():
            yield s

    @contextmanager
    def _read(self) -> Iterator[Session]:
        if self._closed:
            raise JournalError("journal is closed")
        with _plain_value_errors(), self._reader() as s, s.begin():
            yield s

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self._dialect == "postgresql" else sqlite_insert)(table)

    @staticmethod
    def _order_for_update(s: Session, order_id: str) -> db.Order:
        row = s.execute(
            select(db.Order).where(db.Order.order_id == order_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise UnknownOrder(order_id)
        return row

    @staticmethod
    def _tx_event(s: Session, order_id: str | None, ts: datetime, reason: str, detail: dict,
                  status: str | None = None) -> None:
        """The order's trail entry (kind 'tx') for a transaction step, in the step's own DB transaction
        (``status``: the order's, when the caller knows it)."""
        if order_id is None:
            return
        if status is None:
            status = s.scalar(select(db.Order.status).where(db.Order.order_id == order_id))
            if status is None:
                return
        Journal._append(s, db.OrderEvent.__table__, [dict(
            order_id=order_id, ts=ts, kind="tx", from_status=status, to_status=status, reason=reason,
            detail={k: v for k, v in detail.items() if v is not None})])

    @staticmethod
    def _require_order(s: Session, order_id: str | None) -> None:
        if order_id is not None and s.scalar(select(db.Order.id).where(db.Order.order_id == order_id)) is None:
            raise UnknownOrder(order_id)

    # ---------------------------------------------------------------- FIX messages

    def record_fix_message(
        self,
        *,
        session_id: str,
        direction: str,
        msg_type: str,
        raw: str,
        seq_num: int | None = None,
        cl_ord_id: str | None = None,
        order_id: str | None = None,
        exec_id: str | None = None,
        exec_type: str | None = None,
        ord_status: str | None = None,
        defer: bool = False,
    ) -> None:
        """Journal one FIX message as sent/received; SOH (\\x01) in ``raw`` is stored as '|'.
        defer=True queues the row for the writer thread with nothing waiting on it (outbound copies:
        see batch.py)."""
        _check(direction, db.DIRECTIONS, "direction")
        row = dict(
            ts=_now(),
            session_id=session_id,
            direction=direction,
            msg_type=msg_type,
            seq_num=seq_num,
            cl_ord_id=cl_ord_id,
            order_id=order_id,
            exec_id=exec_id,
            exec_type=exec_type,
            ord_status=None if ord_status is None else str(_enum_value(ord_status)),
            raw=raw.replace("\x01", "|"),
        )
        t = db.FixMessage.__table__
        if defer:
            self._apply_later(lambda s: self._append(s, t, [row]))
            return
        self._apply(lambda s: self._append(s, t, [row]))

    def last_inbound_seq_num(self, session_id: str) -> int | None:
        """MsgSeqNum of the newest inbound message journaled for the session (None if none)."""
        m = db.FixMessage
        with self._read() as s:
            return s.scalar(select(m.seq_num).where(m.session_id == session_id, m.direction == "in",
                                                    m.seq_num.is_not(None)).order_by(m.id.desc()).limit(1))

    def fix_messages(
        self,
        *,
        session_id: str | None = None,
        cl_ord_id: str | None = None,
        order_id: str | None = None,
        direction: str | None = None,
        msg_type: str | None = None,
    ) -> list[FixMessageRow]:
        """Journaled FIX messages matching every given filter, oldest first."""
        q = select(db.FixMessage)
        for col, val in (
            (db.FixMessage.session_id, session_id),
            (db.FixMessage.cl_ord_id, cl_ord_id),
            (db.FixMessage.order_id, order_id),
            (db.FixMessage.direction, direction),
            (db.FixMessage.msg_type, msg_type),
        ):
            if val is not None:
                q = q.where(col == val)
        with self._read() as s:
            return [_fix_row(r) for r in s.scalars(q.order_by(db.FixMessage.ts, db.FixMessage.id))]

    # ---------------------------------------------------------------- orders

    def insert_order(self, order: Order, reason: str, *, detail: dict | None = None,
                     then: tuple[Callable[[], None], Callable[[BaseException], None]] | None = None) -> None:
        """Journal a new order and its first event (None -> order.status, ``reason``).

        Raises DuplicateClOrdID if (session_id, cl_ord_id) is already journaled; the check is the
        table's unique constraint, so it holds across threads, processes and restarts.
        With ``then=(ok, failed)`` nothing is raised or waited for: the row joins this thread's batch
        (or one of its own) and, once it is committed, ``ok()`` runs on the writer's dispatcher
        thread, or ``failed(error)`` (DuplicateClOrdID for a used ClOrdID; see batch.py).
        """
        if not order.order_id:
            raise ValueError("order.order_id must be assigned before the order is journaled")
        now = _now()
        status = OrdStatus(order.status)
        cum_qty = order.cum_qty if order.cum_qty is not None else Decimal(0)
        row = dict(
            order_id=order.order_id,
            session_id=order.session_id,
            cl_ord_id=order.cl_ord_id,
            account=order.account,
            symbol=order.symbol,
            side=Side(order.side).value,
            ord_type=OrdType(order.ord_type).value,
            time_in_force=TimeInForce(order.time_in_force).value,
            order_qty=order.order_qty,
            cash_order_qty=order.cash_order_qty,
            price=order.price,
            expire_time=order.expire_time,
            ex_destination=order.ex_destination,
            wallet=order.wallet,
            venue=order.venue,
            status=status.value,
            cum_qty=cum_qty,
            leaves_qty=_leaves(status, order.order_qty, cum_qty),
            avg_px=order.avg_px if order.avg_px is not None else Decimal(0),
            text=order.text,
            rej_reason=_enum_value(getattr(order, "rej_reason", None)),
            created_at=order.created_at or now,
            updated_at=now,
        )
        event_row = dict(order_id=order.order_id, ts=now, kind="transition", from_status=None,
                         to_status=status.value, reason=reason, detail=detail)

        prepared = self._prep_insert(db.Order.__table__, tuple(row))

        def op(s: Session) -> None:
            prepared.run(s, row)
            self._append(s, db.OrderEvent.__table__, [event_row])

        def duplicate(exc: BaseException) -> BaseException:
            prior = self.find_order(order.session_id, order.cl_ord_id) if isinstance(exc, IntegrityError) else None
            return exc if prior is None else DuplicateClOrdID(order.session_id, order.cl_ord_id, prior)

        if then is not None:
            ok, failed = then
            with self.batch() as b:
                b.on_outcome(b.add(op), ok, lambda exc: failed(duplicate(exc)))
            return
        try:
            self._apply_now(op)
        except IntegrityError as exc:
            err = duplicate(exc)
            if err is exc:
                raise
            raise err from exc

    def transition(
        self,
        order_id: str,
        to_status: OrdStatus,
        reason: str,
        *,
        cum_qty: Decimal | None = None,
        leaves_qty: Decimal | None = None,
        avg_px: Decimal | None = None,
        text: str | None = None,
        rej_reason: int | None = None,
        venue: str | None = None,
        wallet: str | None = None,
        detail: dict | None = None,
        from_status: OrdStatus | None = None,
    ) -> None:
        """Move an order to ``to_status`` and append the event (previous -> new, ``reason``) atomically.

        Only the given fields change, except leaves_qty: when not given it is re-derived by the
        domain rule (0 once terminal, else order_qty - cum_qty), so the row never contradicts
        its own status. With ``from_status`` (and leaves_qty) the caller vouches for the current
        state and the row is not read first.
        """
        to = OrdStatus(to_status)
        now = _now()
        if from_status is not None and leaves_qty is not None:
            # The engine knows the order's state: update it without reading it first. The update
            # only applies over an older state, so two threads' batches committed out of order
            # still leave the row at the latest transition (the events keep both, by time).
            values: dict[str, Any] = {"status": to.value, "leaves_qty": leaves_qty, "updated_at": now}
            for col, val in (("cum_qty", cum_qty), ("avg_px", avg_px), ("text", text), ("venue", venue),
                             ("wallet", wallet), ("rej_reason", None if rej_reason is None else int(rej_reason))):
                if val is not None:
                    values[col] = val
            ev = dict(order_id=order_id, ts=now, kind="transition", from_status=OrdStatus(from_status).value,
                      to_status=to.value, reason=reason, detail=detail)
            prepared = self._order_update(tuple(values))
            values.update(order_id=order_id, now=now)
            e = db.OrderEvent.__table__

            def fast(s: Session) -> None:
                prepared.run(s, values)
                self._append(s, e, [ev])

            self._apply(fast)
            return

        def op(s: Session) -> None:
            row = self._order_for_update(s, order_id)
            previous = row.status
            row.status = to.value
            if cum_qty is not None:
                row.cum_qty = cum_qty
            if avg_px is not None:
                row.avg_px = avg_px
            row.leaves_qty = leaves_qty if leaves_qty is not None else _leaves(to, row.order_qty, row.cum_qty)
            if text is not None:
                row.text = text
            if rej_reason is not None:
                row.rej_reason = int(rej_reason)
            if venue is not None:
                row.venue = venue
            if wallet is not None:
                row.wallet = wallet
            row.updated_at = now
            s.add(
                db.OrderEvent(
                    order_id=order_id,
                    ts=now,
                    kind="transition",
                    from_status=previous,
                    to_status=to.value,
                    reason=reason,
                    detail=detail,
                )
            )

        self._apply(op)

    def add_event(self, order_id: str, kind: str, reason: str, detail: dict | None = None,
                  status: OrdStatus | None = None) -> None:
        """Append a non-transition event ('quote', 'risk', 'approval', 'tx', 'note').

        from_status and to_status are both the order's current status (only the creation event
        has from_status NULL).
        """
        if kind == "transition":
            raise ValueError("use Journal.transition() to change an order's status")
        _check(kind, db.EVENT_KINDS, "kind")
        ts = _now()
        if status is not None:  # the caller knows the order's status: no read
            ev = dict(order_id=order_id, ts=ts, kind=kind, from_status=OrdStatus(status).value,
                      to_status=OrdStatus(status).value, reason=reason, detail=detail)
            self._apply(lambda s: self._append(s, db.OrderEvent.__table__, [ev]))
            return

        def op(s: Session) -> None:
            row = self._order_for_update(s, order_id)
            s.add(db.OrderEvent(order_id=order_id, ts=ts, kind=kind, from_status=row.status,
                                to_status=row.status, reason=reason, detail=detail))

        self._apply(op)

    def get_order(self, order_id: str) -> OrderRow | None:
        with self._read() as s:
            r = s.scalar(select(db.Order).where(db.Order.order_id == order_id))
            return None if r is None else _order_row(r)

    def get_orders(self, order_ids: list[str]) -> dict[str, OrderRow]:
        """Several orders in one read, by order_id (unknown ones are left out)."""
        if not order_ids:
            return {}
        t = db.Order.__table__
        with self._read() as s:
            rows = s.connection().execute(select(t).where(t.c.order_id.in_(list(order_ids))))
            return {r.order_id: _order_row(r) for r in rows}

    def find_order(self, session_id: str, cl_ord_id: str) -> OrderRow | None:
        with self._read() as s:
            r = s.scalar(
                select(db.Order).where(db.Order.session_id == session_id, db.Order.cl_ord_id == cl_ord_id)
            )
            return None if r is None else _order_row(r)

    def open_orders(self) -> list[OrderRow]:
        """Orders not yet Filled, Canceled, Expired or Rejected, oldest first."""
        with self._read() as s:
            q = select(db.Order).where(db.Order.status.not_in(_TERMINAL_VALUES)).order_by(db.Order.id)
            return [_order_row(r) for r in s.scalars(q)]

    def unreported_acks(self, since: datetime) -> set[str]:
        """Orders created since `since` that were journaled New but whose New (150=0) report has no
        journaled copy: a crash fell between the commit and the report (write-ahead committed the
        New transition with its signed swap, the process died before the report left)."""
        with self._read() as s:
            went_new = (select(db.OrderEvent.id).where(
                db.OrderEvent.order_id == db.Order.order_id, db.OrderEvent.kind == "transition",
                db.OrderEvent.to_status == OrdStatus.NEW.value).exists())
            acked = (select(db.FixMessage.id).where(
                db.FixMessage.order_id == db.Order.order_id, db.FixMessage.direction == "out",
                db.FixMessage.msg_type == "8", db.FixMessage.exec_type == "0").exists())
            q = select(db.Order.order_id).where(db.Order.created_at >= since, went_new, ~acked)
            return set(s.scalars(q))

    def unreported_terminal_orders(self, since: datetime) -> list[OrderRow]:
        """Terminal orders created since `since` with no outbound ExecutionReport carrying their
        final OrdStatus: a crash fell between journaling the outcome and sending its report."""
        codes = {OrdStatus.FILLED.value: "2", OrdStatus.CANCELED.value: "4", OrdStatus.EXPIRED.value: "C",
                 OrdStatus.REJECTED.value: "8"}
        with self._read() as s:
            reported = (select(db.FixMessage.id).where(
                db.FixMessage.order_id == db.Order.order_id, db.FixMessage.direction == "out",
                db.FixMessage.msg_type == "8",
                db.FixMessage.ord_status == case(codes, value=db.Order.status)).exists())
            q = (select(db.Order).where(db.Order.status.in_(_TERMINAL_VALUES), db.Order.created_at >= since,
                                        ~reported).order_by(db.Order.id))
            return [_order_row(r) for r in s.scalars(q)]

    def events(self, order_id: str) -> list[EventRow]:
        """The order's trail, in the order it was written."""
        with self._read() as s:
            q = select(db.OrderEvent).where(db.OrderEvent.order_id == order_id).order_by(db.OrderEvent.id)
            return [_event_row(r) for r in s.scalars(q)]

    # ---------------------------------------------------------------- transactions

    def record_signed_tx(
        self,
        *,
        order_id: str | None,
        purpose: str,
        chain_id: int,
        wallet: str,
        nonce: int,
        tx_hash: str,
        raw_tx: str,
        gas_limit: int,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        order_status: OrdStatus | None = None,
    ) -> None:
        """Write-ahead: journal a signed transaction BEFORE broadcasting it (status 'signed').

        In the same transaction wallet_nonces.next_nonce becomes max(existing, nonce + 1).
        Recording the very same signed transaction twice is a no-op; a different transaction
        with a journaled hash raises IntegrityError.
        """
        _check(purpose, db.TX_PURPOSES, "purpose")
        wallet = _address(wallet, "wallet")
        tx_hash = _hash32(tx_hash)
        raw_tx = _hex(raw_tx, "raw_tx")
        if nonce < 0:
            raise ValueError(f"nonce must be >= 0, got {nonce}")
        now = _now()

        known = None if order_status is None else OrdStatus(order_status).value

        tx_row = dict(
            order_id=order_id, purpose=purpose, chain_id=chain_id, wallet=wallet, nonce=nonce,
            tx_hash=tx_hash, raw_tx=raw_tx, gas_limit=gas_limit, max_fee_per_gas=max_fee_per_gas,
            max_priority_fee_per_gas=max_priority_fee_per_gas, status="signed", block_number=None,
            created_at=now, updated_at=now)
        insert_tx = self._prep_insert(db.Transaction.__table__, tuple(tx_row))
        nonce_row = dict(chain_id=chain_id, wallet=wallet, next_nonce=nonce + 1, updated_at=now)

        def op(s: Session) -> None:
            if known is None:
                self._require_order(s, order_id)  # (else the foreign key still refuses an unknown order)
            insert_tx.run(s, tx_row)
            self._tx_event(s, order_id, now, f"{purpose} tx signed: nonce {nonce}, {tx_hash}",
                           {"tx_hash": tx_hash, "status": "signed", "nonce": nonce, "wallet": wallet}, known)
            self._nonce_upsert.run(s, nonce_row)

        try:
            self._apply(op)
        except IntegrityError:
            with self._read() as s:
                existing = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == tx_hash))
                if existing is not None and existing.raw_tx == raw_tx and existing.order_id == order_id:
                    return
            raise

    def set_tx_status(self, tx_hash: str, status: str, block_number: int | None = None,
                      only_from: tuple[str, ...] | None = None) -> None:
        """Set a transaction's status ('broadcast', 'dropped', 'failed', ...) and, if given, its block.
        With only_from, only a transaction in one of those statuses changes (a receipt recorded by
        another thread in the meantime is never overwritten)."""
        _check(status, db.TX_STATUSES, "status")
        tx_hash = _hash32(tx_hash)
        self._apply(lambda s: self._set_tx_status(s, tx_hash, status, block_number, only_from))

    def set_tx_status_many(self, tx_hashes: list[str], status: str, only_from: tuple[str, ...] | None = None,
                           ts: datetime | None = None) -> None:
        """set_tx_status for several transactions in one write; ``ts`` is when it happened (for a
        broadcast: when the transactions were handed to the node, before any receipt)."""
        _check(status, db.TX_STATUSES, "status")
        hashes = [_hash32(h) for h in tx_hashes]
        if not hashes:
            return

        def op(s: Session) -> None:
            when = ts or _now()
            found = ((h, self._tx_with_order.first(s, {"tx_hash": h})) for h in hashes)
            rows = [(h, *r) for h, r in found if r is not None and (only_from is None or r[0] in only_from)]
            if not rows:
                return
            self._tx_status_update.run_many(s, [{"tx_hash": h, "status": status, "updated_at": when} for h, *_ in rows])
            events = [dict(order_id=order_id, ts=when, kind="tx", from_status=order_status,
                           to_status=order_status, reason=f"{purpose} tx {status}: {h}",
                           detail={"tx_hash": h, "status": status})
                      for h, _, purpose, order_id, order_status in rows if order_id is not None and order_status is not None]
            if events:
                self._append(s, db.OrderEvent.__table__, events)

        self._apply(op)

    def _set_tx_status(self, s: Session, tx_hash: str, status: str, block_number: int | None,
                       only_from: tuple[str, ...] | None) -> None:
        tx = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == tx_hash).with_for_update())
        if tx is None:
            raise UnknownTransaction(tx_hash)
        if only_from is not None and tx.status not in only_from:
            return
        tx.status = status
        if block_number is not None:
            tx.block_number = block_number
        tx.updated_at = _now()
        self._tx_event(s, tx.order_id, tx.updated_at, f"{tx.purpose} tx {status}: {tx_hash}",
                       {"tx_hash": tx_hash, "status": status, "block_number": block_number})

    def record_receipt(
        self,
        *,
        tx_hash: str,
        block_number: int,
        block_hash: str,
        status: int,
        gas_used: int,
        effective_gas_price: int,
        revert_reason: str | None,
        logs: list[dict],
        order_status: OrdStatus | None = None,
    ) -> None:
        """Journal a receipt and mark its transaction 'mined' (status 1) or 'reverted' (status 0).

        A transaction has one receipt row: recording again (e.g. re-mined after a reorg)
        replaces it with the newer one.
        """
        tx_hash = _hash32(tx_hash)
        block_hash = _hash32(block_hash, "block_hash")
        status = int(status)
        if status not in (0, 1):
            raise ValueError(f"receipt status must be 0 or 1, got {status}")
        now = _now()
        logs = list(logs)

        tx_status = "mined" if status == 1 else "reverted"
        receipt = dict(tx_hash=tx_hash, block_number=block_number, block_hash=block_hash, status=status,
                       gas_used=gas_used, effective_gas_price=effective_gas_price, revert_reason=revert_reason,
                       logs=logs, ts=now)
        known = None if order_status is None else OrdStatus(order_status).value

        mined = dict(tx_hash=tx_hash, status=tx_status, block_number=block_number, updated_at=now)
        find, upsert, mark = self._tx_of_hash, self._receipt_upsert, self._tx_mined

        def op(s: Session) -> None:
            tx = find.first(s, mined)
            if tx is None:
                raise UnknownTransaction(tx_hash)
            tx_order_id, tx_purpose = tx
            upsert.run(s, receipt)
            mark.run(s, mined)
            self._tx_event(s, tx_order_id, now, f"{tx_purpose} tx {tx_status} in block {block_number}: {tx_hash}",
                           {"tx_hash": tx_hash, "status": tx_status, "block_number": block_number,
                            "gas_used": gas_used, "revert_reason": revert_reason}, known)

        self._apply(op)

    def receipt(self, tx_hash: str) -> ReceiptRow | None:
        with self._read() as s:
            r = s.scalar(select(db.Receipt).where(db.Receipt.tx_hash == _hash32(tx_hash)))
            return None if r is None else _receipt_row(r)

    def get_transaction(self, tx_hash: str) -> TxRow | None:
        with self._read() as s:
            r = s.scalar(select(db.Transaction).where(db.Transaction.tx_hash == _hash32(tx_hash)))
            return None if r is None else _tx_row(r)

    def transactions_for(self, order_id: str) -> list[TxRow]:
        with self._read() as s:
            q = select(db.Transaction).where(db.Transaction.order_id == order_id).order_by(db.Transaction.id)
            return [_tx_row(r) for r in s.scalars(q)]

    def pending_transactions(self) -> list[TxRow]:
        """Transactions 'signed' or 'broadcast' (no receipt yet), oldest first: what recovery resumes."""
        with self._read() as s:
            q = select(db.Transaction).where(db.Transaction.status.in_(_PENDING_TX)).order_by(db.Transaction.id)
            return [_tx_row(r) for r in s.scalars(q)]

    def transactions_at(self, chain_id: int, wallet: str, from_nonce: int, to_nonce: int) -> list[TxRow]:
        """Every journaled attempt of `wallet` at nonces from_nonce <= n < to_nonce, oldest first."""
        with self._read() as s:
            q = (select(db.Transaction).where(
                db.Transaction.chain_id == chain_id, db.Transaction.wallet == _address(wallet, "wallet"),
                db.Transaction.nonce >= from_nonce, db.Transaction.nonce < to_nonce).order_by(db.Transaction.id))
            return [_tx_row(r) for r in s.scalars(q)]

    def next_nonce(self, chain_id: int, wallet: str) -> int | None:
        """One past the highest nonce journaled for (chain, wallet), or None if it never signed."""
        with self._read() as s:
            return s.scalar(
                select(db.WalletNonce.next_nonce).where(
                    db.WalletNonce.chain_id == chain_id, db.WalletNonce.wallet == _address(wallet, "wallet")
                )
            )

    # ---------------------------------------------------------------- fills, approvals

    def record_fill(self, fill: Fill, fee_eth: Decimal | None) -> bool | None:
        """Journal a fill; idempotent on exec_id. Returns True if new, False if already journaled."""
        values = dict(
            order_id=fill.order_id,
            exec_id=fill.exec_id,
            tx_hash=_hash32(fill.tx_hash),
            log_index=fill.log_index,
            block_number=fill.block_number,
            last_qty=fill.last_qty,
            last_px=fill.last_px,
            base_units=fill.base_units,
            quote_units=fill.quote_units,
            fee_eth=fee_eth,
            ts=_now(),
        )
        in_batch = self.in_batch() is not None

        def op(s: Session) -> bool:
            if not in_batch:  # a batch has nobody to tell; the foreign key still refuses it
                self._require_order(s, fill.order_id)
            return self._fill_insert.first(s, values) is not None

        return self._apply(op)  # None when queued in a batch

    def fills_for(self, order_id: str, *, include_busted: bool = True) -> list[FillRow]:
        with self._read() as s:
            q = select(db.Fill).where(db.Fill.order_id == order_id).order_by(db.Fill.id)
            if not include_busted:
                q = q.where(db.Fill.busted_at.is_(None))
            return [_fill_row(r) for r in s.scalars(q)]

    def bust_fills(self, exec_ids: list[str]) -> None:
        """Mark fills whose transaction a reorg removed (the rows stay: the journal keeps both)."""
        ts = _now()

        def op(s: Session) -> None:
            for f in s.scalars(select(db.Fill).where(db.Fill.exec_id.in_(exec_ids))):
                f.busted_at = ts

        self._apply(op)

    def record_approval(
        self,
        *,
        order_id: str | None,
        chain_id: int,
        wallet: str,
        token: str,
        spender: str,
        amount_units: int,
        policy: str,
        tx_hash: str,
    ) -> None:
        _check(policy, db.APPROVAL_POLICIES, "policy")
        row = db.Approval(
            order_id=order_id,
            chain_id=chain_id,
            wallet=_address(wallet, "wallet"),
            token=_address(token, "token"),
            spender=_address(spender, "spender"),
            amount_units=amount_units,
            policy=policy,
            tx_hash=_hash32(tx_hash),
            ts=_now(),
        )
        with self._write() as s:
            self._require_order(s, order_id)
            s.add(row)

    def approvals_for(self, order_id: str) -> list[ApprovalRow]:
        with self._read() as s:
            q = select(db.Approval).where(db.Approval.order_id == order_id).order_by(db.Approval.id)
            return [_approval_row(r) for r in s.scalars(q)]

    # ---------------------------------------------------------------- operations (fixbridge.ops)

    def read_session(self) -> contextlib.AbstractContextManager[Session]:
        """A read-only ORM session on one consistent snapshot, for the operator queries in
        ``fixbridge.ops`` (trail, order and fill listings). Use with ``with``; do not write."""
        return self._read()

    def record_reconciliation_run(
        self,
        *,
        started_at: datetime,
        chain_id: int,
        from_block: int,
        to_block: int,
        status: str,
        breaks: int,
        results: dict[str, Any],
    ) -> int:
        """Journal one reconciliation run (``fixbridge reconcile``); returns its id."""
        _check(status, db.RECONCILIATION_STATUSES, "status")
        row = db.ReconciliationRun(started_at=started_at, finished_at=_now(), chain_id=chain_id,
                                   from_block=from_block, to_block=to_block, status=status, breaks=breaks,
                                   results=results)
        with self._write() as s:
            s.add(row)
            s.flush()
            return row.id

    def reconciliation_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest reconciliation runs, newest first, as plain dicts (results included)."""
        with self._read() as s:
            q = select(db.ReconciliationRun).order_by(db.ReconciliationRun.id.desc()).limit(limit)
            return [{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at, "chain_id": r.chain_id,
                     "from_block": r.from_block, "to_block": r.to_block, "status": r.status, "breaks": r.breaks,
                     "results": r.results} for r in s.scalars(q)]
