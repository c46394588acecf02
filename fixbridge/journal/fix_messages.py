"""FIX messages in and out, as they went over the wire."""
from __future__ import annotations

import structlog
from sqlalchemy import select

from . import schema as db
from .core import JournalCore
from .rows import (
    FixMessageRow,
    _check,
    _enum_value,
    _fix_row,
    _now,
)

_log = structlog.get_logger(__name__)

class FixMessageRecords:
    """The `fix_messages` table."""

    def __init__(self, journal: "JournalCore") -> None:
        self._j = journal

    # ---- FIX messages

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
            self._j._apply_later(lambda s: self._j._append(s, t, [row]))
            return
        self._j._apply(lambda s: self._j._append(s, t, [row]))

    def last_inbound_seq_num(self, session_id: str) -> int | None:
        """MsgSeqNum of the newest inbound message journaled for the session (None if none)."""
        m = db.FixMessage
        with self._j._read() as s:
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
        with self._j._read() as s:
            return [_fix_row(r) for r in s.scalars(q.order_by(db.FixMessage.ts, db.FixMessage.id))]

