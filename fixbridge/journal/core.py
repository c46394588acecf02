"""The journal's core: the database, group commit (batch.py), prepared statements (prepared.py),
and the sessions the record stores write and read through."""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Engine,
    bindparam,
    case,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from . import schema as db
from .batch import Batch, Unit, Writer
from .prepared import Prepared, PreparedCache
from .rows import JournalError, UnknownOrder

_log = structlog.get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_MIGRATION_LOCK_KEY = 0x6678_6272_6A6E  # "fxbrjn": serialises concurrent migrations on PostgreSQL
_READ_ONLY = "fixbridge_journal_read_only"


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


class JournalCore:
    """The group-commit core: the database, the writer thread, batches, the prepared hot
    statements, and the write/read sessions every record store goes through."""

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

    def __repr__(self) -> str:
        return f"Journal({make_url(self.url).render_as_string(hide_password=True)!r})"

    def __enter__(self):
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
                if not (isinstance(e, IntegrityError) and "cl_ord_id" in str(e)) and type(e).__name__ != "RetiredClOrdIDUsed":
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
        JournalCore._append(s, db.OrderEvent.__table__, [dict(
            order_id=order_id, ts=ts, kind="tx", from_status=status, to_status=status, reason=reason,
            detail={k: v for k, v in detail.items() if v is not None})])

    @staticmethod
    def _require_order(s: Session, order_id: str | None) -> None:
        if order_id is not None and s.scalar(select(db.Order.id).where(db.Order.order_id == order_id)) is None:
            raise UnknownOrder(order_id)

    # ---------------------------------------------------------------- operations (fixbridge.ops)

    def read_session(self) -> contextlib.AbstractContextManager[Session]:
        """A read-only ORM session on one consistent snapshot, for the operator queries in
        ``fixbridge.ops`` (trail, order and fill listings). Use with ``with``; do not write."""
        return self._read()

