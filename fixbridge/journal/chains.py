"""Which chain a journal belongs to. Its nonces, transactions and fills mean something on one
chain only: a journal opened against another chain (a devnet started afresh, an RPC URL pointing
elsewhere) would sign at nonces the chain has never seen and wait forever behind the gap. So the
first start records each chain's identity (chain id, genesis block hash, the spec's contract
addresses) and every later start compares, before anything is signed."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import select

from . import schema as db

if TYPE_CHECKING:
    from .core import JournalCore


@dataclass(frozen=True)
class ChainIdentity:
    name: str
    chain_id: int
    genesis_hash: str
    contracts: dict[str, str] = field(default_factory=dict)  # the spec's key ('venues.uniswap_v2.router') -> address (Spec.contracts_on)

    def describe(self) -> str:
        return f"chain id {self.chain_id}, genesis {self.genesis_hash}"


@dataclass(frozen=True)
class IdentityMismatch:
    name: str
    recorded: ChainIdentity
    found: ChainIdentity
    what: str  # which part differs, in words

    def __str__(self) -> str:
        return (f"the journal was written against chain '{self.name}' with {self.recorded.describe()}, "
                f"but the node has {self.found.describe()} ({self.what})")


def compare(recorded: ChainIdentity, found: ChainIdentity) -> str | None:
    """What differs between the recorded identity and the node's, or None. A contract the spec
    adds is no difference; one whose address changed is (its approvals and fills are elsewhere)."""
    if recorded.chain_id != found.chain_id:
        return f"chain id {recorded.chain_id} != {found.chain_id}"
    if recorded.genesis_hash.lower() != found.genesis_hash.lower():
        return "a different genesis block: another chain, or the devnet was started afresh"
    moved = [f"{role} {addr} -> {found.contracts[role]}" for role, addr in sorted(recorded.contracts.items())
             if role in found.contracts and found.contracts[role].lower() != addr.lower()]
    if moved:
        return "contracts moved: " + "; ".join(moved)
    return None


class ChainRecords:
    """The `chain_identities` table; given the journal whose sessions it uses."""

    def __init__(self, journal: "JournalCore") -> None:
        self._journal = journal

    def get(self, name: str) -> ChainIdentity | None:
        with self._journal._read() as s:
            row = s.get(db.ChainIdentity, name)
            if row is None:
                return None
            return ChainIdentity(row.name, row.chain_id, row.genesis_hash, dict(row.contracts or {}))

    def check_or_record(self, found: ChainIdentity) -> IdentityMismatch | None:
        """Record `found` on first use (adding contracts the spec gained since), or say how it
        differs from what was recorded. Nothing is written when it differs."""
        with self._journal._write() as s:
            row = s.scalar(select(db.ChainIdentity).where(db.ChainIdentity.name == found.name).with_for_update())
            if row is None:
                s.add(db.ChainIdentity(name=found.name, chain_id=found.chain_id, genesis_hash=found.genesis_hash,
                                       contracts=dict(found.contracts), recorded_at=datetime.now(timezone.utc)))
                return None
            recorded = ChainIdentity(row.name, row.chain_id, row.genesis_hash, dict(row.contracts or {}))
            what = compare(recorded, found)
            if what is not None:
                return IdentityMismatch(found.name, recorded, found, what)
            if set(found.contracts) - set(recorded.contracts):
                row.contracts = {**recorded.contracts, **found.contracts}
            return None
