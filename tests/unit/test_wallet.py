"""The wallet's own EIP-1559 signing gives exactly the bytes eth-account gives (it exists for speed)."""
from __future__ import annotations

import pytest
from eth_account import Account

from fixbridge.chain.wallet import Wallet

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil's account #1 (devnet only)


@pytest.mark.parametrize("tx", [
    {"to": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "data": bytes.fromhex("38ed1739" + "00" * 160), "value": 0,
     "nonce": 0, "gas": 160_000, "maxFeePerGas": 2_000_000_000, "maxPriorityFeePerGas": 1_000_000_000, "type": 2},
    {"to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "data": b"", "value": 10**18, "nonce": 12345,
     "gas": 21_000, "maxFeePerGas": 3 * 10**11, "maxPriorityFeePerGas": 7, "type": 2},
    {"to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "data": "0xdeadbeef", "value": 0, "nonce": 2**40,
     "gas": 30_000_000, "maxFeePerGas": 1, "maxPriorityFeePerGas": 0, "type": 2},
])
@pytest.mark.parametrize("chain_id", [31337, 1])
def test_fast_1559_signature_is_eth_accounts(tx, chain_id):
    mine = Wallet.from_key("w", chain_id, KEY).sign(tx)
    ref = Account.from_key(KEY).sign_transaction({**tx, "chainId": chain_id})
    assert mine.raw == "0x" + bytes(ref.raw_transaction).hex()
    assert mine.tx_hash == "0x" + bytes(ref.hash).hex()


def test_key_is_not_in_repr():
    w = Wallet.from_key("w", 31337, KEY)
    assert KEY[2:] not in repr(w) and KEY[2:].lower() not in repr(w).lower()
