"""External movements (migration 0006): deposits into and withdrawals from the bridge's wallets
that no order explains — the devnet's funding, an operator's top-up, a sweep to cold storage.

``MovementRecords(journal)`` reads and writes the ``movements`` table through the journal's own
short transactions. Amounts are exact twice over: the Decimal the operator typed and the integer
base units it is on chain; the two must agree (``Movement.__post_init__``).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address
from sqlalchemy import select

from fixbridge.orders.units import from_units

from . import schema as db

if TYPE_CHECKING:  # pragma: no cover
    from .core import JournalCore as Journal

ETH = db.ETH
DIRECTIONS = db.DIRECTIONS


@dataclass(frozen=True, slots=True)
class Movement:
    """One deposit ('in') or withdrawal ('out'). ``token_address`` is None for ETH."""

    chain_id: int
    wallet: str
    token_symbol: str
    token_address: str | None
    amount: Decimal
    amount_units: int
    direction: str
    who: str
    why: str
    tx_hash: str | None = None
    block_number: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if isinstance(self.amount_units, bool) or not isinstance(self.amount_units, int) or self.amount_units <= 0:
            raise ValueError(f"amount_units must be a positive int, got {self.amount_units!r}")
        if (self.token_address is None) != (self.token_symbol == ETH):
            raise ValueError(f"{self.token_symbol}: only ETH has no token address")
        if not self.who.strip() or not self.why.strip():
            raise ValueError("a movement needs who and why")

    @property
    def key(self) -> tuple[int, str | None, str, str, str]:
        """What makes a movement with a transaction unique: one row per (tx, wallet, token, direction)."""
        return (self.chain_id, self.tx_hash, self.wallet, self.token_symbol, self.direction)

    def signed_units(self) -> int:
        """+units for a deposit, -units for a withdrawal: what it does to the wallet's balance."""
        return self.amount_units if self.direction == "in" else -self.amount_units


@dataclass(frozen=True, slots=True)
class MovementRow(Movement):
    id: int = 0
    recorded_at: datetime | None = None


def movement(chain_id: int, wallet: str, symbol: str, address: str | None, decimals: int, units: int,
             direction: str, who: str, why: str, tx_hash: str | None = None,
             block_number: int | None = None) -> Movement:
    """A Movement from base units (the Decimal is derived exactly: a power-of-ten scale never rounds)."""
    return Movement(chain_id, to_checksum_address(wallet), symbol,
                    None if address is None else to_checksum_address(address), from_units(units, decimals), units,
                    direction, who, why, tx_hash.lower() if tx_hash else None, block_number)


def _row(r: db.Movement) -> MovementRow:
    return MovementRow(r.chain_id, r.wallet, r.token_symbol, r.token_address, r.amount, r.amount_units, r.direction,
                       r.who, r.why, r.tx_hash, r.block_number, id=r.id, recorded_at=r.recorded_at)


class MovementRecords:
    """The movements table, through ``journal``'s ``_write()`` / ``_read()`` sessions."""

    def __init__(self, journal: Journal) -> None:
        self.j = journal

    def record(self, m: Movement) -> MovementRow:
        """Journal one movement; a movement with a transaction that is already journaled (same
        tx, wallet, token, direction) is not written twice: the journaled row is returned."""
        written = self.record_new([m])
        return written[0] if written else self.find(m)

    def record_new(self, movements: Iterable[Movement]) -> list[MovementRow]:
        """Journal the movements the journal does not have yet (keyed on the transaction), in one
        transaction; returns the rows written."""
        now = datetime.now(timezone.utc)
        wanted = list(movements)
        with self.j._write() as s:
            known = self._known(s, [m for m in wanted if m.tx_hash])
            rows = []
            for m in wanted:
                if m.tx_hash is not None and m.key in known:
                    continue
                known.add(m.key)
                rows.append(db.Movement(chain_id=m.chain_id, wallet=m.wallet, token_symbol=m.token_symbol,
                                        token_address=m.token_address, amount=m.amount, amount_units=m.amount_units,
                                        direction=m.direction, tx_hash=m.tx_hash, block_number=m.block_number,
                                        who=m.who, why=m.why, recorded_at=now))
            s.add_all(rows)
            s.flush()
            return [_row(r) for r in rows]

    @staticmethod
    def _known(s, movements: list[Movement]) -> set[tuple]:
        hashes = sorted({m.tx_hash for m in movements})
        if not hashes:
            return set()
        q = select(db.Movement).where(db.Movement.tx_hash.in_(hashes))
        return {(r.chain_id, r.tx_hash, r.wallet, r.token_symbol, r.direction) for r in s.scalars(q)}

    def find(self, m: Movement) -> MovementRow:
        with self.j._read() as s:
            r = s.scalar(select(db.Movement).where(
                db.Movement.chain_id == m.chain_id, db.Movement.tx_hash == m.tx_hash, db.Movement.wallet == m.wallet,
                db.Movement.token_symbol == m.token_symbol, db.Movement.direction == m.direction))
            return _row(r)

    def known_tx_hashes(self, chain_id: int) -> set[str]:
        with self.j._read() as s:
            q = select(db.Movement.tx_hash).where(db.Movement.chain_id == chain_id, db.Movement.tx_hash.is_not(None))
            return {h for (h,) in s.execute(q)}

    def all(self, chain_ids: list[int] | None = None) -> list[MovementRow]:
        """Every movement (of these chains), oldest first."""
        q = select(db.Movement).order_by(db.Movement.id)
        if chain_ids is not None:
            q = q.where(db.Movement.chain_id.in_(chain_ids))
        with self.j._read() as s:
            return [_row(r) for r in s.scalars(q)]

    def for_chain(self, chain_id: int, *, from_block: int | None = None, to_block: int | None = None,
                  undated_with_tx: bool = False) -> list[MovementRow]:
        """The chain's movements dated in from_block..to_block (inclusive), oldest first; with
        ``undated_with_tx`` also those with a transaction but no block (the caller dates them)."""
        c = db.Movement
        q = select(c).where(c.chain_id == chain_id)
        if from_block is not None and to_block is not None:
            dated = c.block_number.between(from_block, to_block)
            q = q.where(dated | (c.block_number.is_(None) & c.tx_hash.is_not(None)) if undated_with_tx else dated)
        with self.j._read() as s:
            return [_row(r) for r in s.scalars(q.order_by(c.id))]


__all__ = ["ETH", "Movement", "MovementRecords", "MovementRow", "movement"]
