"""What the operator tools record: reconciliation runs."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select

from . import schema as db
from .core import JournalCore
from .rows import (
    _check,
    _now,
)

_log = structlog.get_logger(__name__)

class OperationsRecords:
    """The `reconciliation_runs` table."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

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
        with self._j._write() as s:
            s.add(row)
            s.flush()
            return row.id

    def reconciliation_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest reconciliation runs, newest first, as plain dicts (results included)."""
        with self._j._read() as s:
            q = select(db.ReconciliationRun).order_by(db.ReconciliationRun.id.desc()).limit(limit)
            return [{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at, "chain_id": r.chain_id,
                     "from_block": r.from_block, "to_block": r.to_block, "status": r.status, "breaks": r.breaks,
                     "results": r.results} for r in s.scalars(q)]
