"""What every venue offers the execution engine, in protocol-neutral terms.

A venue knows its protocol (how to quote, which call swaps, how to read its logs) and
nothing about FIX. Amounts here are integer base units.
"""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import function_signature_to_4byte_selector


class Exact(str, enum.Enum):
    INPUT = "exact_input"    # amount is what we give; bound is the minimum we accept back
    OUTPUT = "exact_output"  # amount is what we receive; bound is the most we will give


@dataclass(frozen=True)
class SwapIntent:
    token_in: str
    token_out: str
    exact: Exact
    amount: int
    bound: int
    recipient: str
    deadline: int  # unix seconds
    # IOC on a venue that can stop part-way (Uniswap V3's price limit): fill what the pool gives
    # at no worse than bound/amount at the margin, leave the rest. False: all or nothing.
    partial: bool = False

    @property
    def max_in(self) -> int:
        """The most token_in this swap can take (what balance and allowance must cover)."""
        return self.amount if self.exact is Exact.INPUT else self.bound


@dataclass(frozen=True)
class Call:
    """A contract call ready to sign: target, calldata, and who must be allowed to pull token_in."""
    to: str
    data: bytes
    spender: str
    value: int = 0


@dataclass(frozen=True)
class SwapLeg:
    """One swap the venue's logs prove happened for us (amounts in base units of token_in/out)."""
    log_index: int
    amount_in: int
    amount_out: int


class Venue(Protocol):
    name: str
    kind: str
    # What the engine needs to know of a protocol, asked of the venue rather than of its kind:
    swap_gas: int            # a typical swap's gas, to compare venues net of gas before simulating
    fills_partially: bool    # an IOC may fill part (a price limit), so its gas differs per order
    writes_into: bool        # the options market's writeAndSell sells through this venue's pools

    def quote(self, token_in: str, token_out: str, exact: Exact, amount: int) -> int:
        """For exact input: the output now; for exact output: the input now."""

    def remember_quote(self, token_in: str, token_out: str, exact: Exact, amount: int, quoted: int, fee: int) -> None:
        """A quote made elsewhere (the live market state) for this swap, on the pool with fee `fee`:
        a venue with several pools per pair builds the swap on that pool without asking again."""

    def build_swap(self, intent: SwapIntent) -> Call: ...

    def decode_swaps(self, receipt: dict[str, Any], intent: SwapIntent) -> list[SwapLeg]: ...


def revert_reason(data: bytes | str | None) -> str:
    """Error(string) / Panic(uint256) revert data as text."""
    from eth_abi import decode

    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if not data:
        return "reverted without a reason"
    if data[:4] == bytes.fromhex("08c379a0"):
        return decode(["string"], data[4:])[0]
    if data[:4] == bytes.fromhex("4e487b71"):
        return f"panic 0x{decode(['uint256'], data[4:])[0]:02x}"
    return "reverted with data 0x" + data.hex()


@functools.lru_cache(maxsize=None)
def selector(signature: str) -> bytes:
    """The 4-byte function selector (keccak of the signature), computed once per signature: the
    hot path builds a quote and a swap for every order."""
    return function_signature_to_4byte_selector(signature)
