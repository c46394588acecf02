"""Swap logs of every venue kind the bridge trades on, read the same way: which topic each kind
emits, and its amounts as (amount0In, amount1In, amount0Out, amount1Out). The decoding itself is
the venue modules' (the same one their ``decode_swaps`` uses for fills)."""
from __future__ import annotations

from typing import Any

from fixbridge.venues import uniswap_v2, uniswap_v3

SWAP_V2_TOPIC = "0x" + uniswap_v2.SWAP_TOPIC.hex()
SWAP_V3_TOPIC = "0x" + uniswap_v3.SWAP_TOPIC.hex()
SWAP_TOPICS = (SWAP_V2_TOPIC, SWAP_V3_TOPIC)  # in both, topic 2 is the recipient


def _hex(value: Any) -> str:
    """A topic or data field as 0x-hex text (raw JSON has text, web3's receipts HexBytes)."""
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()


def swap_amounts(log: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """(amount0In, amount1In, amount0Out, amount1Out) of a Uniswap V2 or V3 Swap log; None for
    any other log. V3's signed amounts are split into what went in and what came out."""
    topics = log.get("topics") or []
    if not topics:
        return None
    topic, data = _hex(topics[0]), bytes.fromhex(_hex(log["data"])[2:])
    if topic == SWAP_V2_TOPIC:
        return uniswap_v2.swap_log_amounts(data)
    if topic == SWAP_V3_TOPIC:
        a0, a1 = uniswap_v3.swap_log_amounts(data)
        return max(a0, 0), max(a1, 0), max(-a0, 0), max(-a1, 0)
    return None


__all__ = ["SWAP_TOPICS", "SWAP_V2_TOPIC", "SWAP_V3_TOPIC", "swap_amounts"]
