"""Readiness rules without a chain: a stale chain (by its block time), an unreachable node, a
watcher in outage or behind, and leases another instance took or that expired."""
from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest

from fixbridge.ops.health import Health, Ownership


class Node:
    def __init__(self, number: int, age_s: float, error: Exception | None = None) -> None:
        self.number, self.age, self.error = number, age_s, error

    def call(self, method, params):
        if self.error:
            raise self.error
        return {"result": {"number": hex(self.number), "timestamp": hex(int(time.time() - self.age))}}


def chain_state(**over):
    c = {"chain": "base", "chain_id": 8453, "rpc_url": "https://node/…", "watched": True, "head": 100,
         "node_height": 100, "polled_at": time.time(), "lag_blocks": 0, "outage": None}
    return {**c, **over}


def health(node: Node, block_time=None, journal=None, ownership=None, **state) -> Health:
    chain = SimpleNamespace(rpc_url="http://127.0.0.1:1", block_time_seconds=block_time, replace_after_blocks=5)
    view = SimpleNamespace(chains=lambda: [chain_state(**state)],
                           engine=SimpleNamespace(spec=SimpleNamespace(chains={"base": chain})))
    h = Health(view, journal, "127.0.0.1", 1, ownership)
    h._probe = lambda name, url: node
    return h


@pytest.mark.parametrize("node,block_time,state,words", [
    (Node(100, 1), Decimal(2), {}, None),
    (Node(100, 3600), None, {}, None),                      # automine: an old head is not stale
    (Node(100, 45), Decimal(2), {}, ("chain base is stale: its latest block 100 is", "old, more than 30s for a 2s block time")),
    (Node(100, 130), Decimal(12), {}, "more than 60s for a 12s block time"),
    (Node(0, 0, ConnectionRefusedError(111, "refused")), None, {}, "node of chain base (https://node/…) not reachable: ConnectionRefusedError"),
    (Node(100, 1), None, {"outage": "ConnectionError"}, "the watcher of chain base sees its node down"),
    (Node(120, 1), None, {}, "is 20 blocks behind the node"),
    (Node(100, 1), None, {"polled_at": time.time() - 60}, "has not heard the node's height for"),
])
def test_chain_readiness(node, block_time, state, words):
    got = health(node, block_time, **state)._chain(chain_state(**state))
    assert got["ok"] is (words is None), got
    for w in ((words,) if isinstance(words, str) else words or ()):
        assert w in got["error"]


def test_leases_and_journal_writes(tmp_path):
    from fixbridge.journal import Journal
    with Journal(f"sqlite:///{tmp_path / 'j.db'}") as j:
        owned = [("session", "CLIENT1"), ("wallet", "31337:0xabc")]
        j.claim("me", owned, 15)
        renewed = time.monotonic()
        h = health(Node(1, 1), journal=j, ownership=Ownership("me", owned, lambda: renewed, lambda: None))
        assert h._leases()["ok"] and h._journal()["ok"]
        j.claim("other", [("wallet", "31337:0xdef")], 15)
        j.release("me")
        j.claim("other", [("session", "CLIENT1")], 15)
        got = h._leases()
        assert not got["ok"] and "session CLIENT1 (owned by other)" in got["error"] and "wallet 31337:0xabc (no lease)" in got["error"]
        stale = health(Node(1, 1), journal=j, ownership=Ownership("me", owned, lambda: renewed - 60,
                                                                  lambda: "OperationalError: disk I/O error"))
        got = stale._journal()
        assert not got["ok"] and "journal not writable" in got["error"] and "disk I/O error" in got["error"]
