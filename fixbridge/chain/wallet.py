"""A wallet the bridge signs from. The key stays inside this object: never in repr, logs or errors."""
from __future__ import annotations

from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str   # 0x-hex
    raw: str       # 0x-hex, what is journaled before broadcast


@dataclass
class Wallet:
    name: str
    chain_id: int
    _account: LocalAccount = field(repr=False)

    @classmethod
    def from_key(cls, name: str, chain_id: int, key: str) -> "Wallet":
        # eth-keys uses coincurve when it is installed (~0.3 ms a signature instead of ~3 ms).
        return cls(name=name, chain_id=chain_id, _account=Account.from_key(key))

    @property
    def address(self) -> str:
        return self._account.address

    def sign(self, tx: dict) -> SignedTx:
        signed = self._account.sign_transaction({**tx, "chainId": self.chain_id})
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw="0x" + bytes(signed.raw_transaction).hex())
