"""The chains as the engine follows them: one block watcher per chain that has a wallet of this
bridge, its head, and whether its node answers."""
from __future__ import annotations

from fixbridge.chain.rpc import describe
from fixbridge.chain.watcher import BlockListener, BlockWatcher
from fixbridge.engine.markets import Markets


class ChainHeads:
    def __init__(self, markets: Markets) -> None:
        self.markets = markets
        self.watchers: dict[str, BlockWatcher] = {}
        self._down: dict[str, str] = {}

    def start(self, listener: BlockListener) -> None:
        for chain, w3 in self.markets.w3.items():
            if any(w.chain == chain for w in self.markets.wallets.values()):
                watcher = BlockWatcher(chain, w3, listener)
                watcher.start()
                self.watchers[chain] = watcher

    def stop(self) -> None:
        for w in self.watchers.values():
            w.stop()

    def watcher(self, chain: str) -> BlockWatcher | None:
        return self.watchers.get(chain)

    def head(self, chain: str) -> int:
        w = self.watchers.get(chain)
        return w.head if w and w.head is not None else 0

    def kick(self, chain: str) -> None:
        """The watcher may be idling (50 ms polls) with nothing in flight until now."""
        w = self.watchers.get(chain)
        if w is not None:
            w.kick()

    def outage(self, chain: str) -> str | None:
        """Why the chain's node is not answering, or None."""
        return self._down.get(chain)

    def set_outage(self, chain: str, error: Exception | None) -> None:
        if error is None:
            self._down.pop(chain, None)
        else:
            self._down[chain] = describe(error)
