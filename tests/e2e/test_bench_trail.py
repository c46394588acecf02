"""bench/trail_1m.py at 10,000 orders: the bulk-built journal is one the real code reads correctly
(trails, listings, views). Correctness only: the timing is the benchmark's job, not the suite's."""
from __future__ import annotations

import importlib.util
import os
import random
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from support import ROOT
from fixbridge.journal import Journal
from fixbridge.ops.queries import Filters, daily_fills, list_fills, list_orders
from fixbridge.ops.trail import order_trail

N = 10_000
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trail_1m", ROOT / "bench" / "trail_1m.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, bench, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("trail10k") / "journal.db"
        url = f"sqlite:///{path}"
        gen, build = bench.build_sqlite(path, N, log=None)
        drop = None
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            admin.connect().close()
        except OperationalError as exc:
            pytest.skip(f"PostgreSQL not reachable: {exc.orig}")
        name = f"fixbridge_test_trail_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        gen, build = bench.build_postgres(url, N, log=None)

        def drop():
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    j = Journal(url)
    yield gen, build, j
    j.close()
    if drop:
        drop()


def test_rows_and_indexes(built):
    gen, build, j = built
    with j._engine.connect() as c:
        for table, n in build["rows"].items():
            assert c.execute(text(f"SELECT count(*) FROM {table}")).scalar() == n
        indexes = {i["name"] for t in ("orders", "fix_messages", "order_events", "fills", "transactions")
                   for i in inspect(c).get_indexes(t)}
        if c.dialect.name == "sqlite":
            plan = " ".join(r[-1] for r in c.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM orders WHERE cl_ord_id = 'x'"))
            assert "ix_orders_cl_ord_id" in plan
    assert build["rows"]["orders"] == N and build["rows"]["fills"] > 0.8 * N
    assert {"ix_orders_cl_ord_id", "ix_fix_messages_cl_ord_id", "ix_order_events_order_id_id",
            "ix_fills_order_id", "ix_transactions_order_id"} <= indexes  # rebuilt after the load


def test_trails_of_random_orders(built):
    gen, build, j = built
    rng = random.Random(7)
    seen = set()
    for oid, sid, cl in rng.sample(gen.keys, 60):
        tr = order_trail(j, oid)
        assert tr is not None and tr.order["order_id"] == oid and tr.order["cl_ord_id"] == cl
        assert order_trail(j, cl).as_dict() == tr.as_dict()  # by ClOrdID alone: the same trail
        sources = [e.source for e in tr.entries]
        assert sources[0] == "fix in" and sources[-1] == "fix out"
        assert [e.ts for e in tr.entries] == sorted(e.ts for e in tr.entries)
        status = tr.order["status"]
        seen.add(status)
        if status == "Filled":
            swap = [e for e in tr.entries if e.source == "tx"]
            assert [e.what for e in swap][-3:] == ["tx signed", "tx broadcast", "tx mined"]
            assert sources.count("receipt") >= 1 and sources.count("fill") == 1
            assert tr.entries[-1].data["exec_type"] == "F"
        elif status == "Canceled":
            assert "tx" not in sources and tr.entries[-1].data["exec_type"] == "4"
        else:
            assert status == "Rejected" and len(tr.entries) == 4
    assert seen == {"Filled", "Canceled", "Rejected"}
    assert order_trail(j, "NOPE") is None


def test_listings_and_views_agree(built):
    gen, build, j = built
    day = datetime(2026, 10, 10, tzinfo=timezone.utc)
    f = Filters.parse(session="CLIENT07", since="2026-10-10", until="2026-10-10")
    orders = list_orders(j, f)
    assert orders and {o["session_id"] for o in orders} == {"FIX.4.4:FIXBRIDGE->CLIENT07"}
    assert all(o["created_at"].date() == day.date() for o in orders)
    fills = list_fills(j, Filters.parse(since="2026-10-10", until="2026-10-10"))
    with j._engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM fills WHERE ts >= '2026-10-10 00:00:00+00' "
                           "AND ts < '2026-10-11 00:00:00+00'")).scalar()
        assert len(fills) == n > 0
        per_day = c.execute(text("SELECT sum(fills) FROM v_fills_daily WHERE day = '2026-10-10'")).scalar()
        if c.dialect.name == "postgresql":  # exact sums in the view there; the same as Decimal sums in Python
            qty = c.execute(text("SELECT sum(qty) FROM v_fills_daily WHERE day = '2026-10-10'")).scalar()
            assert qty == sum(d["qty"] for d in daily_fills(fills))
        assert per_day == n == sum(d["fills"] for d in daily_fills(fills))
        oid = next(o["order_id"] for o in orders if o["status"] == "Filled")
        rows = c.execute(text("SELECT count(*) FROM v_order_trail WHERE order_id = :o"), {"o": oid}).scalar()
        txs = c.execute(text("SELECT count(*) FROM transactions WHERE order_id = :o"), {"o": oid}).scalar()
        assert rows == len(order_trail(j, oid).entries) + txs  # the view also lists each transaction row
        assert c.execute(text("SELECT count(*) FROM v_fill_breaks")).scalar() == 0
