"""The hot path's statements, compiled once for the journal's dialect and run on the DBAPI cursor.

At a few hundred orders a second, SQLAlchemy's work per execution — coercing a freshly built
statement, its cache key, the execution context — cost the journal's writer thread more than
SQLite's own work, and the writer was the busiest thread of the bridge (bench/results). A
``Prepared`` statement keeps SQLAlchemy for what it does well: the SQL text for each dialect
(the SQLite and PostgreSQL upserts differ) and each column type's bind processing (exact
decimals, UTC timestamps, JSON), taken from the types themselves; only the per-call overhead
goes. It runs inside the caller's Session transaction, on the same connection, so savepoints
and the group commit hold as for any other statement; driver errors come back as SQLAlchemy's
(IntegrityError and friends), which is what the journal's callers handle.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement


class Prepared:
    """One statement with named bind parameters, ready for ``run``, ``first`` and ``run_many``."""

    __slots__ = ("sql", "_dialect", "_plan", "_positional")

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        """``stmt``'s bind parameters are named ``p_<key>`` (a bind may not share its column's name)
        and take ``values[key]``."""
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self._dialect = dialect
        self._positional = bool(dialect.positional)
        binds = compiled.binds
        # A positional driver (SQLite's qmark) takes the values in the order the SQL names them,
        # a bind used twice twice; a named one (psycopg's pyformat) takes a dict.
        names = tuple(compiled.positiontup) if self._positional else tuple(binds)
        self._plan: tuple[tuple[str, str, Callable[[Any], Any] | None], ...] = tuple(
            (n, n.removeprefix("p_"), binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names)

    def _params(self, values: Mapping[str, Any]) -> Any:
        if self._positional:
            return tuple(values[k] if p is None else p(values[k]) for _, k, p in self._plan)
        return {n: values[k] if p is None else p(values[k]) for n, k, p in self._plan}

    @staticmethod
    def _cursor(s: Session) -> Any:
        if s.new or s.dirty or s.deleted:
            s.flush()  # ORM changes queued by an earlier write of the transaction go first, in order
        return s.connection().connection.dbapi_connection.cursor()

    def _execute(self, s: Session, values: Mapping[str, Any]) -> Any:
        params = self._params(values)
        cur = self._cursor(s)
        try:
            cur.execute(self.sql, params)
        except self._dialect.loaded_dbapi.Error as e:
            cur.close()
            raise DBAPIError.instance(self.sql, params, e, self._dialect.loaded_dbapi.Error) from e
        return cur

    def run(self, s: Session, values: Mapping[str, Any]) -> None:
        """Execute once."""
        self._execute(s, values).close()

    def first(self, s: Session, values: Mapping[str, Any]) -> tuple | None:
        """Execute once; the first row it returns (a SELECT, or an INSERT ... RETURNING), or None."""
        cur = self._execute(s, values)
        try:
            return cur.fetchone()
        finally:
            cur.close()

    def run_many(self, s: Session, rows: Iterable[Mapping[str, Any]]) -> None:
        """Execute once per row, in one driver call, in the rows' order."""
        params = [self._params(r) for r in rows]
        if not params:
            return
        cur = self._cursor(s)
        try:
            cur.executemany(self.sql, params)
        except self._dialect.loaded_dbapi.Error as e:
            raise DBAPIError.instance(self.sql, params, e, self._dialect.loaded_dbapi.Error) from e
        finally:
            cur.close()


class PreparedCache:
    """Prepared statements by key, built on first use (the set of keys is small and fixed)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._by_key: dict[Any, Prepared] = {}

    def get(self, key: Any, build: Callable[[], ClauseElement]) -> Prepared:
        p = self._by_key.get(key)
        if p is None:
            p = self._by_key[key] = Prepared(build(), self._dialect)
        return p
