"""Connections the engine trades through, built once from the specs and sessions config:
one Web3 per chain, one adapter per venue, one signer per wallet."""
from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from fixbridge.chain.nonces import NonceBook
from fixbridge.chain.rpc import connect, eth_call
from fixbridge.chain.submitter import Submitter
from fixbridge.chain.wallet import Wallet
from fixbridge.config import SessionsConfig, Spec
from fixbridge.config.sessions import wallet_key
from fixbridge.venues import build_venue
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import Venue, selector

MAX_UINT256 = 2**256 - 1


@dataclass
class TradingWallet:
    wallet: Wallet
    chain: str
    submitter: Submitter


class Markets:
    def __init__(self, spec: Spec, sessions: SessionsConfig) -> None:
        self.spec = spec
        self.w3: dict[str, Web3] = {
            name: connect(c.rpc_url) for name, c in spec.chains.items()
        }
        self.venues: dict[str, Venue] = {}
        for name, v in spec.venues.items():
            self.venues[name] = build_venue(v, self.w3[v.chain])
        self._keys = {name: wallet_key(sessions, name) for name in sessions.wallets}
        self._sessions = sessions
        self.wallets: dict[str, TradingWallet] = {}

    def wallet_identities(self) -> dict[str, str]:
        """wallet name -> '<chain_id>:<address>', what a lease on the wallet is called."""
        from eth_account import Account

        out = {}
        for name, wc in self._sessions.wallets.items():
            key = self._keys.get(name)
            address = Account.from_key(key).address if key else self.wallets[name].wallet.address
            out[name] = f"{self.spec.chains[wc.chain].chain_id}:{address}"
        return out

    def open_wallets(self, journal_next_nonce) -> None:  # (chain_id, address) -> int | None
        """Seed each wallet's nonce from max(journal, chain pending count) and build its submitter."""
        for name, wc in self._sessions.wallets.items():
            chain = self.spec.chains[wc.chain]
            w3 = self.w3[wc.chain]
            wallet = Wallet.from_key(name, chain.chain_id, self._keys[name])
            on_chain = w3.eth.get_transaction_count(wallet.address, "pending")
            journaled = journal_next_nonce(chain.chain_id, wallet.address) or 0
            self.wallets[name] = TradingWallet(wallet, wc.chain, Submitter(w3, wallet, NonceBook(max(on_chain, journaled))))
        self._keys.clear()  # the Wallet objects hold the keys from here on

    # ERC-20 reads and writes the engine needs around a swap.
    def balance_of(self, chain: str, token: str, owner: str) -> int:
        return self._erc20_read(chain, token, "balanceOf(address)", ["address"], [owner])

    def allowance(self, chain: str, token: str, owner: str, spender: str) -> int:
        return self._erc20_read(chain, token, "allowance(address,address)", ["address", "address"], [owner, spender])

    def _erc20_read(self, chain: str, token: str, sig: str, types: list[str], args: list) -> int:
        data = selector(sig) + encode(types, args)
        return decode(["uint256"], eth_call(self.w3[chain], token, data))[0]


def approve_calldata(spender: str, amount: int) -> bytes:
    return selector("approve(address,uint256)") + encode(["address", "uint256"], [spender, amount])
