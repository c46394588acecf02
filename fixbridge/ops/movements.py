"""Booking external movements: ``fixbridge journal deposit|withdrawal`` and ``fixbridge
reconcile --ack``. What the operator typed is resolved against the spec and the sessions file
(every refusal names the file, the key and the fix), the amount is taken exactly (never rounded),
and a movement that names a transaction is checked against the chain before it is journaled.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from eth_utils import is_hex_address, to_checksum_address
from sqlalchemy import select
from web3 import Web3

from fixbridge.chain.rpc import RpcError, connect, result
from fixbridge.config import ConfigError, SessionsConfig, Spec
from fixbridge.journal import Journal
from fixbridge.journal import schema as db
from fixbridge.journal.movements import ETH, MovementRow, movement
from fixbridge.ops.reconcile import TRANSFER_TOPIC
from fixbridge.orders.units import PrecisionError, to_units_exact


class MovementError(Exception):
    """The movement cannot be booked; the message says what to fix."""


@dataclass(frozen=True)
class MovementRequest:
    """A deposit or withdrawal as the operator gave it (before it is resolved)."""
    wallet: str            # an address, or a wallet name of the sessions file
    token: str             # a spec symbol, or ETH
    amount: str            # decimal text, in token units
    direction: str         # 'in' | 'out'
    who: str
    why: str
    tx_hash: str | None = None
    chain: str | None = None
    block: int | None = None


@dataclass(frozen=True)
class TokenRef:
    symbol: str
    address: str | None  # None for ETH
    decimals: int


def _spec_where(spec: Spec) -> str:
    return spec.path or "the spec"


def resolve_chain(spec: Spec, sessions: SessionsConfig | None, req: MovementRequest) -> str:
    """--chain; else the token's chain; else the named wallet's; else the spec's only chain."""
    if req.chain is not None:
        if req.chain not in spec.chains:
            raise MovementError(f"{_spec_where(spec)}: no [chains.{req.chain}]; --chain must be one of "
                                f"{', '.join(spec.chains)}")
        return req.chain
    if req.token != ETH and req.token in spec.tokens:
        return spec.tokens[req.token].chain
    if sessions is not None and req.wallet in sessions.wallets:
        return sessions.wallets[req.wallet].chain
    if len(spec.chains) == 1:
        return next(iter(spec.chains))
    raise MovementError(f"{_spec_where(spec)} has {len(spec.chains)} chains: pass --chain "
                        f"({', '.join(spec.chains)})")


def resolve_wallet(sessions: SessionsConfig | None, wallet: str, chain: str) -> str:
    """An address as given (checksummed), or the address of a wallet named in the sessions file."""
    if is_hex_address(wallet):
        return to_checksum_address(wallet)
    if sessions is None:
        raise MovementError(f"--wallet {wallet!r} is not an address, and there is no sessions file to look the "
                            "name up in: give --sessions or the wallet's address")
    if wallet not in sessions.wallets:
        raise MovementError(f"{sessions.path}: no [wallets.{wallet}]; --wallet takes an address or one of "
                            f"{', '.join(sessions.wallets) or '(none)'}")
    if sessions.wallets[wallet].chain != chain:
        raise MovementError(f"{sessions.path}: wallets.{wallet}.chain is {sessions.wallets[wallet].chain!r}, "
                            f"not {chain!r}: pass --chain {sessions.wallets[wallet].chain} or another wallet")
    from eth_account import Account

    from fixbridge.config.sessions import wallet_key
    try:
        return Account.from_key(wallet_key(sessions, wallet)).address
    except ConfigError as e:
        raise MovementError(f"{e}; or give the wallet's address instead of its name") from None


def resolve_token(spec: Spec, chain: str, symbol: str) -> TokenRef:
    if symbol == ETH:
        return TokenRef(ETH, None, 18)
    t = spec.tokens.get(symbol)
    if t is None or t.chain != chain:
        known = sorted(s for s, x in spec.tokens.items() if x.chain == chain)
        raise MovementError(f"{_spec_where(spec)}: no [tokens.{symbol}] on chain {chain}; --token takes ETH or one "
                            f"of {', '.join(known)}")
    return TokenRef(t.symbol, t.address, t.decimals)


def exact_units(amount: str, token: TokenRef) -> tuple[Decimal, int]:
    """The amount as a Decimal and in base units; refused (never rounded) when finer than the
    token's decimals, not positive, or not a number."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise MovementError(f"--amount must be a decimal number, got {amount!r}") from None
    if not value.is_finite() or value <= 0:
        raise MovementError(f"--amount must be a positive number, got {amount!r}")
    try:
        return value, to_units_exact(value, token.decimals)
    except PrecisionError:
        raise MovementError(f"--amount {amount} is finer than {token.symbol}'s {token.decimals} decimals; "
                            "amounts are never rounded: give at most that many decimal places") from None


def _tx_hash(h: str) -> str:
    body = h.lower().removeprefix("0x")
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        raise MovementError(f"--tx must be a 32-byte 0x-hex transaction hash, got {h!r}")
    return "0x" + body


def transfers_in_tx(rc: dict, wallet: str, token: str, direction: str) -> int:
    """What the receipt's ERC-20 Transfers of `token` moved to ('in') or from ('out') `wallet`."""
    side = 2 if direction == "in" else 1
    return sum(int(l["data"], 16) if l["data"] not in ("0x", "") else 0 for l in rc["logs"]
               if l["address"].lower() == token.lower() and len(l["topics"]) >= 3
               and l["topics"][0] == TRANSFER_TOPIC and to_checksum_address("0x" + l["topics"][side][-40:]) == wallet)


def _ether_in_tx(w3: Web3, tx_hash: str, wallet: str, direction: str) -> int | None:
    """The ETH value a transaction sent to ('in') or from ('out') the wallet at its top level; None
    when the wallet is not that end of it (ETH moved by a contract leaves no log: the balance check
    is what verifies such a movement)."""
    try:
        tx = result(w3, "eth_getTransactionByHash", [tx_hash])
    except RpcError as e:
        raise MovementError(f"cannot check --tx: {e}") from None
    end = tx.get("to") if direction == "in" else tx.get("from")
    if end is None or to_checksum_address(end) != wallet:
        return None
    return int(tx["value"], 16)


def _receipt(w3: Web3, tx_hash: str, chain: str) -> dict:
    try:
        rc = result(w3, "eth_getTransactionReceipt", [tx_hash])
    except RpcError as e:
        raise MovementError(f"cannot check --tx on chain {chain}: {e}") from None
    if rc is None:
        raise MovementError(f"transaction {tx_hash} is not mined on chain {chain}: check --tx and --chain")
    if int(rc["status"], 16) != 1:
        raise MovementError(f"transaction {tx_hash} reverted on chain {chain}: it moved nothing")
    return rc


def _head(w3: Web3, chain: str) -> int:
    try:
        return int(result(w3, "eth_blockNumber", []), 16)
    except RpcError as e:
        raise MovementError(f"cannot read chain {chain}'s latest block ({e}): give --block") from None


def book(journal: Journal, spec: Spec, sessions: SessionsConfig | None, req: MovementRequest,
         w3: Web3 | None = None) -> tuple[MovementRow, bool]:
    """Journal the movement; (row, True) if written, (the journaled row, False) if its
    transaction was booked already. With --tx, an ERC-20 movement must be exactly what that
    transaction moved; without it, the movement is dated at --block (default: the latest block)."""
    if req.direction not in ("in", "out"):
        raise MovementError(f"direction must be in or out, got {req.direction!r}")
    if not req.who.strip() or not req.why.strip():
        raise MovementError("--who and --why must say who books the movement and why")
    chain = resolve_chain(spec, sessions, req)
    token = resolve_token(spec, chain, req.token)
    wallet = resolve_wallet(sessions, req.wallet, chain)
    amount, units = exact_units(req.amount, token)
    w3 = w3 or connect(spec.chains[chain].rpc_url)
    tx = _tx_hash(req.tx_hash) if req.tx_hash else None
    block = req.block
    if tx is not None:
        rc = _receipt(w3, tx, chain)
        block = int(rc["blockNumber"], 16)
        moved = (transfers_in_tx(rc, wallet, token.address, req.direction) if token.address is not None
                 else _ether_in_tx(w3, tx, wallet, req.direction))
        if moved is not None and moved != units:
            raise MovementError(
                f"transaction {tx} moved {moved} base units of {token.symbol} {'to' if req.direction == 'in' else 'from'}"
                f" {wallet}, not {units} ({amount} {token.symbol}): check --amount, --wallet and --token")
    elif block is None:
        block = _head(w3, chain)
    m = movement(spec.chains[chain].chain_id, wallet, token.symbol, token.address, token.decimals, units,
                 req.direction, req.who, req.why, tx_hash=tx, block_number=block)
    records = journal.movements
    written = records.record_new([m])
    return (written[0], True) if written else (records.find(m), False)


def acknowledge(journal: Journal, spec: Spec, chain: str, tx_hash: str, wallets: list[str], who: str, why: str,
                w3: Web3 | None = None) -> list[MovementRow]:
    """Book every ERC-20 Transfer of a transaction to or from one of `wallets` (tokens of the spec's
    chain) as a movement with the chain's exact amount (``fixbridge reconcile --ack``). A
    transaction the journal holds as the bridge's own has nothing to book."""
    tx = _tx_hash(tx_hash)
    with journal.read_session() as s:
        if s.scalar(select(db.Transaction.id).where(db.Transaction.tx_hash == tx)) is not None:
            raise MovementError(f"transaction {tx} is the bridge's own (journaled): there is no movement to book")
    w3 = w3 or connect(spec.chains[chain].rpc_url)
    rc = _receipt(w3, tx, chain)
    tokens = {t.address.lower(): t for t in spec.tokens.values() if t.chain == chain}
    chain_id, block = spec.chains[chain].chain_id, int(rc["blockNumber"], 16)
    wanted = []
    for w in wallets:
        for t in tokens.values():
            for direction in ("in", "out"):
                units = transfers_in_tx(rc, w, t.address, direction)
                if units:
                    wanted.append(movement(chain_id, w, t.symbol, t.address, t.decimals, units, direction, who, why,
                                           tx_hash=tx, block_number=block))
    if not wanted:
        raise MovementError(f"transaction {tx} moves no token of chain {chain} to or from the bridge's wallets")
    return journal.movements.record_new(wanted)


__all__ = ["MovementError", "MovementRequest", "TokenRef", "acknowledge", "book", "exact_units", "resolve_chain",
           "resolve_token", "resolve_wallet", "transfers_in_tx"]
