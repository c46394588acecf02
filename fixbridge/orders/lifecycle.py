"""The order state machine: which OrdStatus may follow which, and the event that reports it."""
from __future__ import annotations


from fixbridge.orders.model import ExecEvent
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

# The event that announces entering each status; a fill is always a Trade.
EVENT_FOR: dict[S, ExecEvent] = {
    S.NEW: ExecEvent.NEW, S.PENDING_CANCEL: ExecEvent.PENDING_CANCEL, S.CANCELED: ExecEvent.CANCELED,
    S.EXPIRED: ExecEvent.EXPIRED, S.REJECTED: ExecEvent.REJECTED,
    S.PARTIALLY_FILLED: ExecEvent.TRADE, S.FILLED: ExecEvent.TRADE,
}
# A reorg that removes a reported fill takes the order back to New (FIX Trade Cancel).
TRADE_CANCEL_FROM = frozenset({S.FILLED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.NEW})

def check(current: S, nxt: S, *, trade_cancel: bool = False) -> None:
    # (to PartiallyFilled: a resting order whose earlier slices' fills stand)
    if trade_cancel and nxt in (S.NEW, S.PARTIALLY_FILLED) and current in TRADE_CANCEL_FROM:
        return
    if nxt not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value} -> {nxt.value} is not a legal order transition")
