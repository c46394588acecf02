"""Alembic environment for the fixbridge journal.

Programmatic use (what ``Journal`` does): the caller passes an open connection in
``config.attributes["connection"]`` and owns its transaction.

CLI use, from anywhere::

    alembic -c fixbridge/journal/alembic.ini upgrade head
    alembic -c fixbridge/journal/alembic.ini -x url=postgresql+psycopg://postgres@127.0.0.1/fixbridge current

The URL comes from ``-x url=...``, else ``$FIXBRIDGE_JOURNAL_URL``, else ``sqlalchemy.url`` in the ini.
"""
from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from fixbridge.journal.schema import metadata

config = context.config
target_metadata = metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs need table rebuilds
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("FIXBRIDGE_JOURNAL_URL")
        or config.get_main_option("sqlalchemy.url")
        or "sqlite:///var/journal.db"
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    # CLI: same engine setup as the Journal (SQLite pragmas, BEGIN IMMEDIATE).
    from fixbridge.journal.store import create_journal_engine

    engine = create_journal_engine(_url())
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
