"""Reference data and positions over FIX: SecurityList (35=y), SecurityDefinition (35=d),
RequestForPositionsAck (35=AO) and PositionReport (35=AP), built from the specs and from the
positions the engine reads on chain. Knows FIX; the numbers come from the domain.

Repeating groups are QuickFIX's typed FIX 4.4 groups (quickfix44), which write their fields in the
order of the message definition, as FIX requires; a generic fix.Group(count, delim) writes tag
order, and a strict engine reads an option's entry 55,15,107,167,... as Symbol and Currency only.
Their order arrays lack the count tags of groups nested inside components (SecurityAltID 454,
UnderlyingStips 887, ...), which would go last: the bridge writes none of those. tests/unit/test_fix_wire.py
checks every message against specs/FIX44.xml."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timezone

import quickfix as fix
import quickfix44 as fix44

from fixbridge.config import Instrument, Spec
from fixbridge.engine.positions import Position
from fixbridge.fix.translate import _s, get

_ids = itertools.count(1)


def _response_id(prefix: str) -> str:
    return f"{prefix}{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{next(_ids)}"


def _message(msg_type: str) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(msg_type))
    return m


def _instrument_fields(g: fix.FieldMap, symbol: str, ins: Instrument, spec: Spec) -> None:
    """The Instrument component of one security, as FIX 4.4 names it."""
    _s(g, 55, symbol)
    if ins.security_type == "OPT":
        assert ins.expiry is not None and ins.strike is not None and ins.underlying is not None
        _s(g, 167, "OPT")
        _s(g, 200, ins.expiry.strftime("%Y%m%d"))
        _s(g, 541, ins.expiry.strftime("%Y%m%d"))
        _s(g, 202, ins.strike)
        _s(g, 947, ins.quote)          # StrikeCurrency
        _s(g, 201, "1" if ins.put_or_call == "C" else "0")
        _s(g, 231, ins.contract_multiplier)
        _s(g, 107, f"{'Call' if ins.put_or_call == 'C' else 'Put'} on {ins.underlying}, strike {ins.strike} "
                   f"{ins.quote}, expiry {ins.expiry.isoformat()}, cash-settled, fully collateralized")
    else:
        _s(g, 167, "FOR")               # a currency pair, quoted as base/quote
        _s(g, 107, f"{ins.base} against {ins.quote} on {', '.join(ins.venues)}")
    chain = spec.chain_of(ins)
    _s(g, 207, f"{chain.name}:{chain.chain_id}")  # SecurityExchange: where it trades


def _matches(symbol: str, ins: Instrument, req: fix.Message) -> bool:
    kind = get(req, 559)  # SecurityListRequestType: 0 symbol, 1 SecurityType/CFICode, 4 all
    if kind == "0":
        return symbol == get(req, 55)
    if kind == "1":
        want = get(req, 167)
        return want is None or want == ("OPT" if ins.security_type == "OPT" else "FOR")
    return True


def security_list(req: fix.Message, spec: Spec) -> fix.Message:
    m = _message(fix.MsgType_SecurityList)
    _s(m, 320, get(req, 320))
    _s(m, 322, _response_id("SL"))
    chosen = [(s, i) for s, i in sorted(spec.instruments.items()) if _matches(s, i, req)]
    _s(m, 560, "0" if chosen else "2")  # SecurityRequestResult: valid / no instruments found
    _s(m, 393, len(chosen))             # TotNoRelatedSym
    _s(m, 893, "Y")                     # LastFragment
    for symbol, ins in chosen:
        g = fix44.SecurityList.NoRelatedSym()
        _instrument_fields(g, symbol, ins, spec)
        if ins.security_type == "OPT":
            u = fix44.SecurityList.NoRelatedSym.NoUnderlyings()
            _s(u, 311, ins.underlying)
            g.addGroup(u)
        _s(g, 15, ins.quote)  # Currency
        m.addGroup(g)
    return m


def security_definition(req: fix.Message, spec: Spec) -> fix.Message:
    m = _message(fix.MsgType_SecurityDefinition)
    _s(m, 320, get(req, 320))
    _s(m, 322, _response_id("SD"))
    symbol = get(req, 55)
    ins = spec.instruments.get(symbol or "")
    if ins is None:
        _s(m, 323, "6")  # SecurityResponseType: cannot match selection criteria
        _s(m, 58, f"Unknown symbol {symbol!r}; known: {', '.join(sorted(spec.instruments))}")
        return m
    _s(m, 323, "1")      # SecurityResponseType: accept as is (the definition the spec holds)
    _instrument_fields(m, symbol, ins, spec)
    if ins.security_type == "OPT":
        u = fix44.SecurityDefinition.NoUnderlyings()
        _s(u, 311, ins.underlying)
        m.addGroup(u)
    _s(m, 15, ins.quote)
    return m


def positions_ack(req: fix.Message, account: str, count: int, result: str = "0", text: str | None = None) -> fix.Message:
    m = _message(fix.MsgType_RequestForPositionsAck)
    _s(m, 721, _response_id("PA"))
    _s(m, 710, get(req, 710))
    _s(m, 727, count)                       # TotalNumPosReports
    _s(m, 728, result)                      # PosReqResult: 0 valid, 2 none found, 99 other
    _s(m, 729, "0" if result in ("0", "2") else "2")  # PosReqStatus: completed / rejected
    _s(m, 1, account)
    _s(m, 581, "1")                         # AccountType: carried on customer side
    _s(m, 58, text)
    return m


def position_report(req: fix.Message, p: Position, total: int, business_day: date) -> fix.Message:
    m = _message(fix.MsgType_PositionReport)
    _s(m, 721, _response_id("PR"))
    _s(m, 710, get(req, 710))
    _s(m, 727, total)
    _s(m, 728, "0")
    _s(m, 715, business_day.strftime("%Y%m%d"))
    _s(m, 1, p.wallet)
    _s(m, 581, "1")
    _s(m, 55, p.symbol)
    if p.security_type == "OPT":
        _s(m, 167, "OPT")
    _s(m, 15, p.currency)
    _s(m, 730, p.price or 0)       # SettlPrice: the venue's price now
    _s(m, 731, "2")                # SettlPriceType: theoretical (a pool price, not a settlement)
    _s(m, 734, p.price or 0)       # PriorSettlPrice
    q = fix44.PositionReport.NoPositions()
    _s(q, 703, "TOT")              # PosType: total
    _s(q, 704, p.quantity)         # LongQty: what the wallet holds on chain
    _s(q, 705, 0)
    m.addGroup(q)
    a = fix44.PositionReport.NoPosAmt()
    _s(a, 707, "FMTM")             # PosAmtType: mark to market
    _s(a, 708, p.value or 0)
    m.addGroup(a)
    _s(m, 58, f"on-chain balance of {p.address} held by wallet {p.wallet_address}")
    return m


def settlement_report(r) -> fix.Message:
    """An unsolicited PositionReport (325=Y) for a settled option series: the final settlement
    price, the tokens redeemed (long) and written (short), and what the wallet received."""
    m = _message(fix.MsgType_PositionReport)
    _s(m, 721, _response_id("ST"))
    _s(m, 325, "Y")                # UnsolicitedIndicator
    _s(m, 728, "0")
    _s(m, 715, datetime.now(timezone.utc).strftime("%Y%m%d"))
    _s(m, 1, r.wallet)
    _s(m, 581, "1")
    _s(m, 55, r.symbol)
    _s(m, 167, "OPT")
    _s(m, 15, r.currency)
    _s(m, 730, r.settlement_price)  # SettlPrice: what the oracle settled at
    _s(m, 731, "1")                 # SettlPriceType: final
    _s(m, 734, r.settlement_price)
    q = fix44.PositionReport.NoPositions()
    _s(q, 703, "EX")                # PosType: exercise (settled at expiry)
    _s(q, 704, r.held)              # redeemed
    _s(q, 705, r.written)           # written
    m.addGroup(q)
    a = fix44.PositionReport.NoPosAmt()
    _s(a, 707, "SETL")              # PosAmtType: settlement value
    _s(a, 708, r.received)
    m.addGroup(a)
    _s(m, 58, f"{r.symbol} settled at {r.settlement_price}: redeemed {r.held}, released collateral of {r.written} "
              f"written; received {r.received} {r.currency}; tx {', '.join(r.tx_hashes) or 'none'}")
    return m
