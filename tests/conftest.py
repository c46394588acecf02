"""Fixtures of the tests in tests/unit and tests/e2e: a real anvil devnet with the venues, the
real bridge as a subprocess (`fixbridge run --no-devnet`), a real QuickFIX initiator, fresh
PostgreSQL databases. What they are built from is in support.py."""
from __future__ import annotations


import itertools
import os
import time
import uuid
from pathlib import Path

import pytest

from support import (
    COUNTERPARTIES,
    Devnet,
    KEYS,
    PG_ADMIN_URL,
    PG_HOST,
    acceptor_cfg,
    start_bridge,
    start_devnet,
)


@pytest.fixture(scope="session")
def pg_new_database():
    """Makes uniquely named databases on the test server; drops them all at the end of the run.

    The one place a PostgreSQL test may skip: the server does not answer at connect time. Anything
    that fails after that (creating a database, the test itself) is a failure."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_HOST} not reachable: {exc.orig}")
    created: list[str] = []

    def new_database() -> str:
        name = f"fixbridge_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://postgres@{PG_HOST}/{name}"

    try:
        yield new_database
    finally:
        for name in created:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
        admin.dispose()


@pytest.fixture
def backend() -> str:
    """The journal backend of a test: SQLite unless the test parametrizes `backend` with BACKENDS."""
    return "sqlite"


@pytest.fixture
def journal_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh journal for the test on its backend: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    return request.getfixturevalue("pg_new_database")()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory) -> Devnet:
    """A fresh chain for each test module (about a second): one module's trades never move the
    prices another module's tests expect."""
    net = start_devnet(tmp_path_factory.mktemp("devnet"))
    yield net
    net.anvil.stop()


@pytest.fixture(scope="session")
def sessions_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sessions")
    (d / "acceptor.cfg").write_text(acceptor_cfg(("CLIENT1", "CLIENT2", "CLIENT3", "CLIENT4", "CLIENT5")))
    (d / "counterparties.toml").write_text(COUNTERPARTIES.format(k1=KEYS[1], k2=KEYS[2], k3=KEYS[3], k4=KEYS[4]))
    return d


@pytest.fixture(scope="module")
def bridge(devnet, sessions_dir, tmp_path_factory):
    """The bridge on the module's devnet with its own SQLite journal."""
    b = start_bridge([devnet.spec_path], sessions_dir / "counterparties.toml", tmp_path_factory.mktemp("bridge"))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def journal(bridge):
    from fixbridge.journal import Journal
    j = Journal(bridge.journal_url)
    yield j
    j.close()


_ids = itertools.count(1)


@pytest.fixture
def cl_ord_id(request) -> str:
    return f"{request.node.name[:24]}-{next(_ids)}-{int(time.time() * 1000) % 10**8}"


@pytest.fixture(scope="module")
def client_factory(bridge, tmp_path_factory):
    from fixbridge.fix.client import FixClient
    made: dict[str, FixClient] = {}

    def make(sender: str = "CLIENT1") -> FixClient:
        """One logged-on client per CompID (the acceptor allows one connection per session)."""
        if sender not in made:
            made[sender] = FixClient("127.0.0.1", bridge.port, sender, "FIXBRIDGE",
                                     data_dir=tmp_path_factory.mktemp(f"client-{sender}")).start()
        return made[sender]

    yield make
    for c in made.values():
        c.stop()


@pytest.fixture(scope="module")
def client(client_factory):
    return client_factory("CLIENT1")
