"""The bridge owns each wallet's nonces: gapless, journaled, never read back from the node's
pending count while transactions are in flight (that is how concurrent sends collide)."""
from __future__ import annotations

import threading


class NonceBook:
    """Next nonce for one wallet on one chain. Seeded at start from max(journal, chain)."""

    def __init__(self, start: int) -> None:
        self._next = start
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            n = self._next
            self._next += 1
            return n

    def peek(self) -> int:
        with self._lock:
            return self._next

    def give_back(self, nonce: int) -> None:
        """Return the last nonce taken when its transaction was refused, so no gap is left."""
        with self._lock:
            if nonce == self._next - 1:
                self._next = nonce

    def resync(self, chain_next: int) -> None:
        """Move forward to the chain's count when a nonce was used outside the bridge."""
        with self._lock:
            self._next = max(self._next, chain_next)
