"""Uniswap V2 through Router02: quote with getAmountsOut/In, swap exact-in or exact-out,
read fills from the pair's Swap event.

ABI encoding uses eth-abi directly with the function signatures below: the bridge needs a
handful of calls and no bytecode, so it carries no artifact at run time.
"""
from __future__ import annotations

from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from fixbridge.chain.rpc import eth_call
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import Call, Exact, SwapIntent, SwapLeg, selector

SWAP_EXACT_IN = "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"
SWAP_EXACT_OUT = "swapTokensForExactTokens(uint256,uint256,address[],address,uint256)"
GET_AMOUNTS_OUT = "getAmountsOut(uint256,address[])"
GET_AMOUNTS_IN = "getAmountsIn(uint256,address[])"
GET_PAIR = "getPair(address,address)"
SWAP_TOPIC = keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)")


def _calldata(signature: str, types: list[str], args: list[Any]) -> bytes:
    return selector(signature) + encode(types, args)


def swap_log_amounts(data: bytes) -> tuple[int, int, int, int]:
    """(amount0In, amount1In, amount0Out, amount1Out) of a pair's Swap log data."""
    return tuple(decode(["uint256"] * 4, data))  # type: ignore[return-value]


class UniswapV2:
    kind = "uniswap_v2"
    swap_gas = 110_000
    fills_partially = False  # the router has no price limit: all or nothing
    writes_into = True       # OptionsMarket.writeAndSell sells through Router02

    def __init__(self, name: str, w3: Web3, router: str, factory: str) -> None:
        self.name, self.w3 = name, w3
        self.router, self.factory = to_checksum_address(router), to_checksum_address(factory)
        self._pairs: dict[tuple[str, str], str] = {}

    def _call(self, to: str, data: bytes) -> bytes:
        return eth_call(self.w3, to, data)

    def pair(self, a: str, b: str) -> str:
        key = tuple(sorted((a.lower(), b.lower())))
        if key not in self._pairs:
            out = self._call(self.factory, _calldata(GET_PAIR, ["address", "address"], [a, b]))
            self._pairs[key] = to_checksum_address(decode(["address"], out)[0])
        return self._pairs[key]

    def remember_quote(self, token_in: str, token_out: str, exact: Exact, amount: int, quoted: int, fee: int) -> None:
        """One pair per token pair: nothing to choose, nothing to remember."""

    def quote(self, token_in: str, token_out: str, exact: Exact, amount: int) -> int:
        path = [token_in, token_out]
        if exact is Exact.INPUT:
            out = self._call(self.router, _calldata(GET_AMOUNTS_OUT, ["uint256", "address[]"], [amount, path]))
            return decode(["uint256[]"], out)[0][-1]
        out = self._call(self.router, _calldata(GET_AMOUNTS_IN, ["uint256", "address[]"], [amount, path]))
        return decode(["uint256[]"], out)[0][0]

    def build_swap(self, intent: SwapIntent) -> Call:
        path = [intent.token_in, intent.token_out]
        sig = SWAP_EXACT_IN if intent.exact is Exact.INPUT else SWAP_EXACT_OUT
        # Both functions take (amount, bound, path, to, deadline) in that order.
        data = _calldata(sig, ["uint256", "uint256", "address[]", "address", "uint256"],
                         [intent.amount, intent.bound, path, intent.recipient, intent.deadline])
        return Call(to=self.router, data=data, spender=self.router)

    def decode_swaps(self, receipt: dict[str, Any], intent: SwapIntent) -> list[SwapLeg]:
        pair = self.pair(intent.token_in, intent.token_out).lower()
        in_is_token0 = intent.token_in.lower() < intent.token_out.lower()
        legs = []
        for log in receipt["logs"]:
            topics = log["topics"]
            if log["address"].lower() != pair or not topics or bytes(topics[0]) != SWAP_TOPIC:
                continue
            if "0x" + bytes(topics[2])[-20:].hex() != intent.recipient.lower():
                continue
            a0in, a1in, a0out, a1out = swap_log_amounts(bytes(log["data"]))
            amount_in, amount_out = (a0in, a1out) if in_is_token0 else (a1in, a0out)
            legs.append(SwapLeg(log_index=int(log["logIndex"]), amount_in=amount_in, amount_out=amount_out))
        return legs
