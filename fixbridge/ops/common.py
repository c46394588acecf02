"""Shared by the operator tools: opening an existing journal."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from fixbridge.journal import Journal


class JournalNotFound(LookupError):
    pass


def open_journal(url: str) -> Journal:
    """The journal at ``url``, migrated to the newest schema; a SQLite file must already exist
    (a typo in the path should not quietly create an empty journal)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db not in ("", ":memory:") and not db.startswith("file:") and not Path(db).expanduser().is_file():
            raise JournalNotFound(f"no journal at {url} (file {db} does not exist)")
    return Journal(url)
