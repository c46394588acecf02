"""A wallet the bridge signs from. The key stays inside this object: never in repr, logs or errors.

EIP-1559 (type 2) transactions, the only kind the bridge sends, are encoded and signed here with
rlp and coincurve directly (~0.1 ms); eth-account's general path (validation, typed-transaction
objects) costs about ten times that per order. Both produce the same bytes: RFC 6979 nonces, low-s
signatures (tests/unit/test_wallet.py checks them against eth-account). Other transactions go through
eth-account.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import rlp
from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_canonical_address


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str   # 0x-hex
    raw: str       # 0x-hex, what is journaled before broadcast


@dataclass
class Wallet:
    name: str
    chain_id: int
    _account: LocalAccount = field(repr=False)
    _key: PrivateKey | None = field(default=None, repr=False)

    @classmethod
    def from_key(cls, name: str, chain_id: int, key: str) -> "Wallet":
        account = Account.from_key(key)
        return cls(name=name, chain_id=chain_id, _account=account, _key=PrivateKey(bytes(account.key)))

    @property
    def address(self) -> str:
        return self._account.address

    def sign(self, tx: dict) -> SignedTx:
        if tx.get("type") == 2 and self._key is not None and not tx.get("accessList"):
            return self._sign_1559(tx)
        signed = self._account.sign_transaction({**tx, "chainId": self.chain_id})
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw="0x" + bytes(signed.raw_transaction).hex())

    def _sign_1559(self, tx: dict) -> SignedTx:
        data = tx.get("data") or b""
        if isinstance(data, str):
            data = bytes.fromhex(data.removeprefix("0x"))
        to = tx.get("to")
        fields = [self.chain_id, tx["nonce"], tx["maxPriorityFeePerGas"], tx["maxFeePerGas"], tx["gas"],
                  to_canonical_address(to) if to else b"", tx.get("value", 0), bytes(data), []]
        unsigned = b"\x02" + rlp.encode(fields)
        sig = self._key.sign_recoverable(keccak(unsigned), hasher=None)  # r (32) | s (32) | recovery id
        r, s, y_parity = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
        raw = b"\x02" + rlp.encode(fields + [y_parity, r, s])
        return SignedTx(tx_hash="0x" + keccak(raw).hex(), raw="0x" + raw.hex())
