"""chain/watcher.Listeners: several block listeners on one BlockWatcher (the engine, then the
market feed). Each hears every call in order; one that fails keeps no other from hearing, and its
failure still reaches the watcher (which treats it as before: logged, the watcher goes on)."""
from __future__ import annotations

import pytest

from fixbridge.chain.watcher import Block, Listeners


class Recorder:
    def __init__(self, name: str, log: list, wanted: set[str] = frozenset(), fail: bool = False) -> None:
        self.name, self.log, self._wanted, self.fail = name, log, set(wanted), fail

    def wanted(self) -> set[str]:
        return self._wanted

    def __getattr__(self, call: str):
        if not call.startswith("on_"):
            raise AttributeError(call)

        def record(*args):
            self.log.append((self.name, call, args[1] if len(args) > 1 else None))
            if self.fail:
                raise RuntimeError(f"{self.name} failed")
        return record


def test_every_listener_hears_in_order_and_the_first_failure_is_raised():
    log: list = []
    engine = Recorder("engine", log, {"0xa"}, fail=True)
    feed = Recorder("feed", log, {"0xb"})
    both = Listeners(engine, feed)
    assert both.wanted() == {"0xa", "0xb"}
    block = Block(7, "0xh", "0xp", 0, [])
    with pytest.raises(RuntimeError, match="engine failed"):
        both.on_block("devnet", block)
    engine.fail = False
    both.on_reorg("devnet", 5)
    both.on_outage("devnet", None)
    assert log == [("engine", "on_block", block), ("feed", "on_block", block),
                   ("engine", "on_reorg", 5), ("feed", "on_reorg", 5),
                   ("engine", "on_outage", None), ("feed", "on_outage", None)]


def test_a_listener_that_follows_every_block_keeps_the_watcher_polling():
    """No receipt wanted, but market data has subscribers: the watcher does not idle."""
    from fixbridge.chain.watcher import BlockWatcher, IDLE_POLL_SECONDS

    class Feed(Recorder):
        following_now = False

        def following(self) -> bool:
            return self.following_now

    feed = Feed("feed", [])
    w = BlockWatcher("devnet", None, Listeners(Recorder("engine", []), feed), poll_seconds=0.005)
    assert w._pause() == IDLE_POLL_SECONDS
    feed.following_now = True
    assert w._pause() == 0.005
