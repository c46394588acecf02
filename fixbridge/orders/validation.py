"""Checks an order against the specs and the session before anything touches the chain.

Returns a Rejection (reason code + text the client reads) or None. No I/O here; balance and
allowance, which need the chain, are checked by the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from fixbridge.config import Counterparty, Spec
from fixbridge.orders.model import Order, OrdType, RejectReason
from fixbridge.orders.units import PrecisionError, to_units_exact


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    text: str


def validate(order: Order, spec: Spec, cp: Counterparty, now: datetime | None = None) -> Rejection | None:
    ins = spec.instruments.get(order.symbol)
    if ins is None:
        return Rejection(RejectReason.UNKNOWN_SYMBOL, f"Unknown symbol {order.symbol!r}; known: {', '.join(sorted(spec.instruments))}")
    if (order.order_qty is None) == (order.cash_order_qty is None):
        return Rejection(RejectReason.INCORRECT_QUANTITY, "Send exactly one of OrderQty (38) or CashOrderQty (152)")
    qty, tag, token = ((order.order_qty, "OrderQty", spec.tokens[ins.base]) if order.order_qty is not None
                       else (order.cash_order_qty, "CashOrderQty", spec.tokens[ins.quote]))
    assert qty is not None
    if not qty.is_finite() or qty <= 0:
        return Rejection(RejectReason.INCORRECT_QUANTITY, f"{tag} must be a positive number, got {qty}")
    try:
        if to_units_exact(qty, token.decimals) == 0:
            raise PrecisionError
    except PrecisionError:
        return Rejection(RejectReason.INCORRECT_QUANTITY, f"{tag} {qty} is finer than {token.symbol}'s {token.decimals} decimals")
    if order.ord_type is OrdType.LIMIT:
        if order.price is None:
            return Rejection(RejectReason.OTHER, "Price (44) is required for a limit order")
        if not order.price.is_finite() or order.price <= 0:
            return Rejection(RejectReason.OTHER, f"Price must be positive, got {order.price}")
    if order.account is not None and order.account not in cp.wallets:
        return Rejection(RejectReason.UNKNOWN_ACCOUNT, f"Account {order.account!r} is not bound to this session")
    if order.ex_destination is not None and order.ex_destination not in ins.venues:
        return Rejection(RejectReason.OTHER, f"ExDestination {order.ex_destination!r} does not list {order.symbol}; venues: {', '.join(ins.venues)}")
    now = now or datetime.now(timezone.utc)
    if order.expire_time is not None and order.expire_time <= now:
        return Rejection(RejectReason.TOO_LATE_TO_ENTER, f"ExpireTime {order.expire_time.isoformat()} has already passed")
    return None


