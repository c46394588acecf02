"""The journal: the SQL system of record, written before things happen (write-ahead).

See docs/journal.md for the schema and example compliance queries.
"""
from .store import (
    ApprovalRow,
    DuplicateClOrdID,
    EventRow,
    FillRow,
    FixMessageRow,
    Journal,
    JournalError,
    OrderRow,
    ReceiptRow,
    Replacement,
    TxRow,
    UnknownOrder,
    UnknownTransaction,
)

__all__ = [
    "ApprovalRow",
    "DuplicateClOrdID",
    "EventRow",
    "FillRow",
    "FixMessageRow",
    "Journal",
    "JournalError",
    "OrderRow",
    "ReceiptRow",
    "Replacement",
    "TxRow",
    "UnknownOrder",
    "UnknownTransaction",
]
