"""Checks an order against the specs and the session before anything touches the chain.

Returns a Rejection (reason code + text the client reads) or None. No I/O here; balance and
allowance, which need the chain, are checked by the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from fixbridge.config import Counterparty, Instrument, Spec
from fixbridge.orders.model import Order, OrdType, RejectReason, SecurityClaims
from fixbridge.orders.resting import rests
from fixbridge.orders.units import PrecisionError, to_units_exact


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    text: str


def validate(order: Order, spec: Spec, cp: Counterparty, now: datetime | None = None) -> Rejection | None:
    ins = spec.instruments.get(order.symbol)
    if ins is None:
        return Rejection(RejectReason.UNKNOWN_SYMBOL, f"Unknown symbol {order.symbol!r}; known: {', '.join(sorted(spec.instruments))}")
    if order.claims is not None:
        mismatch = claims_mismatch(order.claims, ins)
        if mismatch:
            return Rejection(RejectReason.UNKNOWN_SYMBOL, f"{mismatch} for {order.symbol}")
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
    if order.ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT):
        if order.price is None:
            return Rejection(RejectReason.OTHER, "Price (44) is required for a limit order")
        if not order.price.is_finite() or order.price <= 0:
            return Rejection(RejectReason.OTHER, f"Price must be positive, got {order.price}")
    if order.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT):
        if order.stop_px is None:
            return Rejection(RejectReason.OTHER, "StopPx (99) is required for a stop order")
        if not order.stop_px.is_finite() or order.stop_px <= 0:
            return Rejection(RejectReason.OTHER, f"StopPx must be positive, got {order.stop_px}")
    if rests(order.time_in_force, order.ord_type) and order.order_qty is None:
        return Rejection(RejectReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                         "A resting order (Day, GTC, GTD, stop) is sized in OrderQty (38), not CashOrderQty")
    if order.account is not None and order.account not in cp.wallets:
        return Rejection(RejectReason.UNKNOWN_ACCOUNT, f"Account {order.account!r} is not bound to this session")
    if order.ex_destination is not None and order.ex_destination not in ins.venues:
        return Rejection(RejectReason.OTHER, f"ExDestination {order.ex_destination!r} does not list {order.symbol}; venues: {', '.join(ins.venues)}")
    now = now or datetime.now(timezone.utc)
    if order.expire_time is not None and order.expire_time <= now:
        return Rejection(RejectReason.TOO_LATE_TO_ENTER, f"ExpireTime {order.expire_time.isoformat()} has already passed")
    return None




def claims_mismatch(c: SecurityClaims, ins: Instrument) -> str | None:
    """The first instrument field the client sent that disagrees with the spec, said plainly."""
    is_opt = ins.security_type == "OPT"
    if c.security_type is not None and c.security_type != ("OPT" if is_opt else c.security_type):
        return f"SecurityType {c.security_type} does not match: the instrument is {'an option (OPT)' if is_opt else 'spot'}"
    if c.security_type == "OPT" and not is_opt:
        return "SecurityType OPT does not match: the instrument is spot"
    if not is_opt:
        if any(v is not None for v in (c.maturity_date, c.maturity_month_year, c.strike, c.put_or_call)):
            return "Option fields (200/541/202/201) sent, but the instrument is spot"
        return None
    assert ins.expiry is not None and ins.strike is not None
    ymd = ins.expiry.strftime("%Y%m%d")
    if c.maturity_date is not None and c.maturity_date != ymd:
        return f"MaturityDate {c.maturity_date} does not match the expiry {ymd}"
    if c.maturity_month_year is not None and not ymd.startswith(c.maturity_month_year[:8]):
        return f"MaturityMonthYear {c.maturity_month_year} does not match the expiry {ymd}"
    if c.strike is not None and c.strike != ins.strike:
        return f"StrikePrice {c.strike} does not match the strike {ins.strike}"
    if c.put_or_call is not None and c.put_or_call != ins.put_or_call:
        names = {"P": "put", "C": "call"}
        return f"PutOrCall says {names.get(c.put_or_call, c.put_or_call)} but the series is a {names[ins.put_or_call or 'C']}"
    if c.contract_multiplier is not None and c.contract_multiplier != ins.contract_multiplier:
        return f"ContractMultiplier {c.contract_multiplier} does not match {ins.contract_multiplier}"
    return None
