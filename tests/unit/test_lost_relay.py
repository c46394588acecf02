"""LostRelay (engine/relaying.py) without a chain: which of a wallet's pending transactions it looks
up and sends again. The node is a test double here (a dict of what it holds), because the race it
guards against (a swap's first broadcast refused and being decided while the watcher looks after
the wallet) cannot be timed on a real node; tests/e2e/test_e2e_chain.py drives the relay on anvil."""
from __future__ import annotations

from types import SimpleNamespace

from fixbridge.engine.relaying import LostRelay


class Node:  # a test double of the submitter and its node: what the node holds, what was sent to it
    def __init__(self, holds: set[str]) -> None:
        self.held, self.sent = set(holds), []
        self.w3 = self

    def holds(self, tx_hash: str) -> bool:
        return tx_hash in self.held

    def base_fee(self) -> int:
        return 10

    def broadcast_raws(self, raws: list[str]) -> list[None]:
        self.sent += raws
        self.held |= set(raws)
        return [None for _ in raws]


class Journal:
    def __init__(self) -> None:
        self.events: list[str] = []

    def add_event(self, order_id, kind, reason, **kw) -> None:
        self.events.append(reason)

    def set_tx_status(self, tx_hash, status, **kw) -> None:
        pass


def flight(node: Node, nonce: int, *, queued: bool = False, sent_block: int = 5):
    h = f"0x{nonce:064x}"
    return SimpleNamespace(nonce=nonce, receipt=None, queued=queued, unsent=False, sent_block=sent_block,
                           attempts=[SimpleNamespace(tx_hash=h, raw=h, max_fee=100)], last_action_block=0,
                           wallet=SimpleNamespace(submitter=node, wallet=SimpleNamespace(name="w1")),
                           order=SimpleNamespace(order_id=f"O{nonce}"))


def relay(node: Node, flights, monkeypatch) -> LostRelay:
    import fixbridge.engine.relaying as relaying
    monkeypatch.setattr(relaying, "batch_call", lambda w3, calls: [
        {"result": {"hash": p[0]} if node.holds(p[0]) else None} for _, p in calls])
    return LostRelay(Journal())  # type: ignore[arg-type]


def test_a_lost_run_is_sent_again_at_once_in_nonce_order(monkeypatch):
    node = Node(holds={f"0x{3:064x}"})  # the node kept nonce 3 and lost 1, 2 and 4
    flights = [flight(node, n) for n in (1, 2, 3, 4)]
    r = relay(node, flights, monkeypatch)
    assert r.relay(flights, chain_nonce=1, head=6, height=6) == []
    assert node.sent == [f"0x{n:064x}" for n in (1, 2, 4)]
    assert [f.last_action_block for f in flights] == [6, 6, 0, 6]


def test_a_swap_whose_first_broadcast_is_being_decided_is_never_sent_by_the_relay(monkeypatch):
    node = Node(holds=set())
    lowest_queued = [flight(node, 1, queued=True), flight(node, 2)]
    r = relay(node, lowest_queued, monkeypatch)
    assert r.relay(lowest_queued, chain_nonce=1, head=6, height=6) == [] and node.sent == []
    behind = [flight(node, 1), flight(node, 2, queued=True)]
    assert r.relay(behind, chain_nonce=1, head=6, height=6) == []
    assert node.sent == [f"0x{1:064x}"]  # the lost one that is decided; not the one being decided


def test_nothing_is_looked_up_before_the_node_had_a_block_for_it(monkeypatch):
    node = Node(holds=set())
    flights = [flight(node, 1, sent_block=6)]
    assert relay(node, flights, monkeypatch).relay(flights, chain_nonce=1, head=6, height=6) == [] and node.sent == []
