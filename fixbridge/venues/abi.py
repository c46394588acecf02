"""ABI encoding and decoding for the calls and logs of every order, with eth_abi for the rest.

eth_abi spends ~35 µs validating and dispatching to encode a V2 swap's five arguments, and an
order encodes two calls (the quote and the swap) and decodes two results: at a few hundred orders a
second that was the largest item of an intake worker's own time (bench/results/throughput.md).
The types those calls use — uint256, address, bool and dynamic arrays of uint256 or address — are
32-byte words, simple enough to write here exactly: the same bytes as eth_abi (tests/unit/test_abi.py
compares them over generated values), the same refusal of what does not fit (values out of
range, addresses that are not 20 bytes: eth_abi's own error, because those go to eth_abi). Like
eth_abi, neither checks a mixed-case address against its EIP-55 checksum; the spec loader writes
addresses in that form. Every other type goes to eth_abi unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from eth_abi import decode as _abi_decode
from eth_abi import encode as _abi_encode

_WORD = 32
_UINT_MAX = 2**256
_STATIC = frozenset({"uint256", "address", "bool"})
_ARRAYS = frozenset({"uint256[]", "address[]"})


class _Unsupported(Exception):
    """A value the fast path leaves to eth_abi (which encodes it or names what is wrong)."""


@functools.lru_cache(maxsize=4096)
def _address_word(value: str) -> bytes:
    # A desk trades a handful of tokens from a handful of wallets: each is converted once.
    body = value[2:] if value[:2] in ("0x", "0X") else None
    if body is None or len(body) != 40:
        raise _Unsupported
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise _Unsupported from None
    return bytes(12) + raw


def _word(typ: str, value: Any) -> bytes:
    if typ == "uint256":
        if type(value) is not int or not 0 <= value < _UINT_MAX:
            raise _Unsupported
        return value.to_bytes(_WORD, "big")
    if typ == "address":
        if isinstance(value, str):
            return _address_word(value)
        if isinstance(value, (bytes, bytearray)) and len(value) == 20:
            return bytes(12) + bytes(value)
        raise _Unsupported
    if type(value) is not bool:
        raise _Unsupported
    return (1 if value else 0).to_bytes(_WORD, "big")


def encode(types: Sequence[str], args: Sequence[Any]) -> bytes:
    """eth_abi.encode(types, args), by hand where every type is one of ours."""
    if len(types) != len(args) or not all(t in _STATIC or t in _ARRAYS for t in types):
        return _abi_encode(list(types), list(args))
    try:
        head, tail = [], []
        offset = _WORD * len(types)
        for typ, value in zip(types, args):
            if typ in _STATIC:
                head.append(_word(typ, value))
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise _Unsupported
            item = typ[:-2]
            head.append(offset.to_bytes(_WORD, "big"))
            part = len(value).to_bytes(_WORD, "big") + b"".join(_word(item, v) for v in value)
            tail.append(part)
            offset += len(part)
        return b"".join(head) + b"".join(tail)
    except _Unsupported:
        return _abi_encode(list(types), list(args))


def decode(types: Sequence[str], data: bytes) -> tuple:
    """eth_abi.decode(types, data) where every type is uint256 or uint256[] (results and log data
    of the swaps); anything else, or data that is not what those types say, goes to eth_abi."""
    data = bytes(data)
    if not all(t in ("uint256", "uint256[]") for t in types) or len(data) < _WORD * len(types):
        return _abi_decode(list(types), data)
    out: list[Any] = []
    for i, typ in enumerate(types):
        word = int.from_bytes(data[i * _WORD:(i + 1) * _WORD], "big")
        if typ == "uint256":
            out.append(word)
            continue
        if word % _WORD or word + _WORD > len(data):
            return _abi_decode(list(types), data)
        n = int.from_bytes(data[word:word + _WORD], "big")
        start = word + _WORD
        if start + n * _WORD > len(data):
            return _abi_decode(list(types), data)
        out.append(tuple(int.from_bytes(data[start + j * _WORD:start + (j + 1) * _WORD], "big") for j in range(n)))
    return tuple(out)
