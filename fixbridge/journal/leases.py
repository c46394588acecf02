"""Ownership of sessions and wallets among bridge instances sharing one journal. The database is
the referee: a claim is one transaction that takes a free or expired row under a row lock, so two
instances can never both hold a wallet and sign from it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import select

from . import schema as db

if TYPE_CHECKING:
    from .core import JournalCore


class LeaseHeld(Exception):
    def __init__(self, kind: str, name: str, owner: str, expires_at: datetime) -> None:
        super().__init__(f"{kind} {name} is owned by bridge instance {owner} until {expires_at.isoformat()}")
        self.kind, self.name, self.owner, self.expires_at = kind, name, owner, expires_at


class LeaseRecords:
    """The `leases` table; given the journal core whose sessions it uses."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

    def claim(self, owner: str, things: list[tuple[str, str]], ttl_seconds: float) -> None:
        """Take (or renew) every (kind, name) for `owner`, all or nothing. Raises LeaseHeld naming
        the first one a live other instance holds."""
        now = datetime.now(timezone.utc)
        until = now + timedelta(seconds=ttl_seconds)
        with self._j._write() as s:
            for kind, name in things:
                row = s.scalar(select(db.Lease).where(db.Lease.kind == kind, db.Lease.name == name).with_for_update())
                if row is None:
                    s.add(db.Lease(kind=kind, name=name, owner=owner, acquired_at=now, expires_at=until))
                    s.flush()  # a concurrent insert of the same key fails here, not silently
                elif row.owner == owner or row.expires_at <= now:
                    if row.owner != owner:
                        row.owner, row.acquired_at = owner, now
                    row.expires_at = until
                else:
                    raise LeaseHeld(kind, name, row.owner, row.expires_at)

    def release(self, owner: str) -> None:
        with self._j._write() as s:
            for row in s.scalars(select(db.Lease).where(db.Lease.owner == owner)):
                s.delete(row)

    def leases(self) -> list[tuple[str, str, str, datetime]]:
        with self._j._read() as s:
            return [(r.kind, r.name, r.owner, r.expires_at) for r in s.scalars(select(db.Lease).order_by(db.Lease.kind, db.Lease.name))]
