"""The order state machine: which OrdStatus may follow which, and the ExecType that reports it."""
from __future__ import annotations

from fixbridge.orders.model import OrdStatus as S


class IllegalTransition(Exception):
    pass


ALLOWED: dict[S, frozenset[S]] = {
    S.PENDING_NEW: frozenset({S.NEW, S.REJECTED}),
    S.NEW: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.PENDING_CANCEL}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.PENDING_CANCEL}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.NEW}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REJECTED: frozenset(),
}

# ExecType (150) that announces entering each status; a fill is always 'F' (Trade).
EXEC_TYPE_FOR: dict[S, str] = {
    S.NEW: "0", S.PENDING_CANCEL: "6", S.CANCELED: "4", S.EXPIRED: "C", S.REJECTED: "8",
    S.PARTIALLY_FILLED: "F", S.FILLED: "F",
}
ORD_STATUS_CODE: dict[S, str] = {
    S.PENDING_NEW: "A", S.NEW: "0", S.PARTIALLY_FILLED: "1", S.FILLED: "2", S.PENDING_CANCEL: "6",
    S.CANCELED: "4", S.EXPIRED: "C", S.REJECTED: "8",
}
EXEC_TYPE_TRADE = "F"
EXEC_TYPE_TRADE_CANCEL = "H"
# A reorg that removes a reported fill takes the order back to New (FIX Trade Cancel).
TRADE_CANCEL_FROM = frozenset({S.FILLED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.NEW})
EXEC_TYPE_STATUS = "I"


def check(current: S, nxt: S, *, trade_cancel: bool = False) -> None:
    if trade_cancel and nxt is S.NEW and current in TRADE_CANCEL_FROM:
        return
    if nxt not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value} -> {nxt.value} is not a legal order transition")
