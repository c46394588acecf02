"""Market data on the wire (FIX 4.4): MarketDataSnapshotFullRefresh (W), MarketDataIncremental-
Refresh (X) and MarketDataRequestReject (Y), built with QuickFIX's typed quickfix44 groups (fields
in the dictionary's order). What an entry is comes from fixbridge.market.book; here only tags.

An entry's MDEntryID (X only: FIX 4.4's W has no MDEntryID) is built from what W shows, so a client
can match them: `<symbol>:<0|1>:<MDEntryPositionNo>:<MDMkt or *>` for a bid/offer level (`*`: the
best across venues, sent without MDMkt), `<tx hash>:<log index>` for a trade.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import quickfix as fix
import quickfix44 as fix44

from fixbridge.market.book import BID, Level, Print
from fixbridge.orders.units import fmt

TAG_CHAIN_TX_HASH, TAG_CHAIN_BLOCK_NUMBER = 20001, 20002
BID_TYPE, OFFER_TYPE, TRADE_TYPE = "0", "1", "2"
NEW, CHANGE, DELETE = "0", "1", "2"

# Empty typed groups as prototypes: a copy keeps the dictionary's field order and costs one SWIG
# call (a fresh typed group fills its order array field by field: ~85 calls, per entry).
_FULL_ENTRY = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
_INC_ENTRY = fix44.MarketDataIncrementalRefresh.NoMDEntries()

# MDReqRejReason (281)
UNKNOWN_SYMBOL, DUPLICATE_MD_REQ_ID = "0", "1"
UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE, UNSUPPORTED_MARKET_DEPTH = "4", "5"
UNSUPPORTED_MD_UPDATE_TYPE, UNSUPPORTED_MD_ENTRY_TYPE = "6", "8"


@dataclass(frozen=True)
class Entry:
    """One MDEntry: a bid/offer level or a trade, of one symbol."""
    symbol: str
    entry_id: str
    type: str
    price: Decimal
    size: Decimal
    venue: str | None = None
    position: int | None = None
    tx_hash: str | None = None
    block: int | None = None
    buyer: str | None = None
    seller: str | None = None

    def same_quote(self, other: "Entry") -> bool:
        return (self.price, self.size) == (other.price, other.size)


def level_entry(symbol: str, lv: Level) -> Entry:
    t = BID_TYPE if lv.side == BID else OFFER_TYPE
    return Entry(symbol, f"{symbol}:{t}:{lv.position}:{lv.venue or '*'}", t, lv.price, lv.size, lv.venue, lv.position)


def print_entry(symbol: str, p: Print) -> Entry:
    return Entry(symbol, f"{p.tx_hash}:{p.log_index}", TRADE_TYPE, p.price, p.size, p.venue, None, p.tx_hash, p.block,
                 buyer=p.taker if p.buy else None, seller=None if p.buy else p.taker)


# FieldMap.setField(tag, text): the field without a SWIG object per field (as fix/translate.py);
# a refresh of 50 instruments carries about a thousand entries.
def _fill(g: fix.Group, e: Entry) -> None:
    g.setField(270, fmt(e.price))
    g.setField(271, fmt(e.size))
    if e.venue:
        g.setField(275, e.venue)
    if e.buyer:
        g.setField(288, e.buyer)
    if e.seller:
        g.setField(289, e.seller)
    if e.position is not None:
        g.setField(290, str(e.position))
    if e.tx_hash:
        g.setField(TAG_CHAIN_TX_HASH, e.tx_hash)
        g.setField(TAG_CHAIN_BLOCK_NUMBER, str(e.block))


def snapshot(md_req_id: str | None, symbol: str, entries: list[Entry]) -> fix.Message:
    """W: the whole book of one symbol (and its recent trades)."""
    m = fix44.MarketDataSnapshotFullRefresh()
    if md_req_id is not None:
        m.setField(262, md_req_id)
    m.setField(55, symbol)
    if not entries:  # NoMDEntries is required: an empty book says so with a count of zero
        m.setField(268, "0")
    for e in entries:
        g = fix.Group(_FULL_ENTRY)
        g.setField(269, e.type)
        _fill(g, e)
        m.addGroup(g)
    return m


def incremental(md_req_id: str | None, updates: list[tuple[str, Entry]]) -> fix.Message:
    """X: (MDUpdateAction, entry) pairs, any symbols; a delete carries only its id, type and symbol."""
    m = fix44.MarketDataIncrementalRefresh()
    if md_req_id is not None:
        m.setField(262, md_req_id)
    for action, e in updates:
        g = fix.Group(_INC_ENTRY)
        g.setField(279, action)
        g.setField(269, e.type)
        g.setField(278, e.entry_id)
        g.setField(55, e.symbol)
        if action != DELETE:
            _fill(g, e)
        m.addGroup(g)
    return m


def reject(md_req_id: str, reason: str | None, text: str) -> fix.Message:
    """Y: the request refused; nothing was subscribed or unsubscribed."""
    m = fix44.MarketDataRequestReject()
    m.setField(262, md_req_id)
    if reason is not None:
        m.setField(281, reason)
    m.setField(58, text[:200])
    return m
