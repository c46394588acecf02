"""The block watcher's listener (chain/watcher.py BlockListener): what each chain's watcher thread
asks of the engine, handed to the components that own it — receipts and confirmations to the
confirmer, what is not mined to the resender, Settled events to option settlement. Under the
book's lock: an order moves through one state at a time."""
from __future__ import annotations

import structlog

from fixbridge.chain.watcher import Block
from fixbridge.engine.confirmation import Confirmer
from fixbridge.engine.flights import InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.resending import Resender
from fixbridge.engine.resting import RestingBook
from fixbridge.engine.settlement import OptionSettlement
from fixbridge.journal import Journal

log = structlog.get_logger(__name__)


class ChainFollower:
    def __init__(self, journal: Journal, book: InFlightBook, heads: ChainHeads, confirmer: Confirmer,
                 resender: Resender, options: OptionSettlement, resting: RestingBook) -> None:
        self.journal, self.book, self.heads = journal, book, heads
        self.confirmer, self.resender, self.options, self.resting = confirmer, resender, options, resting

    def wanted(self) -> set[str]:
        return self.book.wanted()

    def on_outage(self, chain: str, error: Exception | None) -> None:
        self.heads.set_outage(chain, error)

    def on_receipts(self, chain: str, receipts: dict[str, dict]) -> None:
        """Receipts the node served after their block was delivered."""
        try:
            with self.book.lock, self.journal.batch():
                self.confirmer.take_receipts(chain, receipts, self.heads.head(chain))
        except Exception:
            log.exception("late receipts not settled", chain=chain)

    def on_tick(self, chain: str) -> None:
        try:
            self.resender.on_tick(chain)
        except Exception:
            log.exception("resend failed", chain=chain)
        try:
            with self.journal.batch():
                self.resting.expire_due()  # Day and GTD orders end on the clock, not on a block
        except Exception:
            log.exception("resting orders' expiry failed", chain=chain)

    def on_block(self, chain: str, block: Block) -> None:
        with self.book.lock:
            # A block's receipts, fills and transitions go to the journal together (in units of
            # SETTLE_FLUSH_EVERY orders); each unit's reports follow its commit.
            with self.journal.batch():
                self.confirmer.on_block(chain, block.number, block.receipts())
            with self.journal.batch():
                self.resender.look_after(chain, block.number, block.timestamp)
                self.resender.look_after_loose(chain, block.number)
                self.options.check_settlements(chain, block.number)
                self.book.forget_settled(block.number)

    def on_reorg(self, chain: str, fork: int) -> None:
        """Blocks above `fork` are gone. What they held goes back in flight, sent again."""
        with self.book.lock, self.journal.batch():
            for f in self.confirmer.reorg(chain, fork):
                self.resender.revive(f, reprice=False)  # a reorg drops what it removed on some nodes
