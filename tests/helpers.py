"""Reading what a user can see on chain: token balances, by plain eth_call."""
from __future__ import annotations

from decimal import Decimal

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3


def balance(rpc_url: str, token: str, owner: str) -> int:
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    data = function_signature_to_4byte_selector("balanceOf(address)") + encode(["address"], [owner])
    return decode(["uint256"], bytes(w3.eth.call({"to": token, "data": data})))[0]


def units(amount: str, decimals: int) -> int:
    return int(Decimal(amount) * 10**decimals)


def tx_count(rpc_url: str, owner: str) -> int:
    return Web3(Web3.HTTPProvider(rpc_url)).eth.get_transaction_count(owner)


def eventually(read, ok, timeout: float = 5.0):
    """Poll `read()` until `ok(result)` or the timeout; returns the last result. The journal's copy
    of an outbound FIX message is committed a few milliseconds after the message leaves
    (fixbridge/journal/batch.py), so a test that has just received a message polls for its row."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)
