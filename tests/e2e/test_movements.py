"""Movements and reconciliation pieces that need no chain: the movements table, exact amounts,
what the operator typed resolved against the spec and sessions, the devnet's funding as deposits,
the venues' Swap log decoding, and a range with nothing new."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from eth_abi import encode
from eth_account import Account

from fixbridge.config import load_sessions, load_spec
from fixbridge.devnet.deploy import Deployment, Funding
from fixbridge.devnet.funding import deposits
from fixbridge.journal import Journal
from fixbridge.journal.movements import Movement, MovementRecords, movement
from fixbridge.ops.movements import (MovementError, MovementRequest, TokenRef, exact_units, resolve_chain,
                                     resolve_token, resolve_wallet)
from fixbridge.ops.reconcile import ReconcileError, resolve_range
from fixbridge.venues.swaps import SWAP_V2_TOPIC, SWAP_V3_TOPIC, swap_amounts

KEY = "0x" + "22" * 32
WALLET = Account.from_key(KEY).address
USDC = "0x" + "ab" * 20
H1, H2 = "0x" + "01" * 32, "0x" + "02" * 32

SPEC = f"""
[chains.devnet]
chain_id = 31337
rpc_url = "http://127.0.0.1:1"
devnet = true

[tokens.USDC]
chain = "devnet"
address = "{USDC}"
decimals = 6

[tokens.WETH]
chain = "devnet"
address = "0x{'cd' * 20}"
decimals = 18

[venues.uniswap_v2]
kind = "uniswap_v2"
chain = "devnet"
router = "0x{'01' * 20}"
factory = "0x{'02' * 20}"

[instruments."WETH/USDC"]
base = "WETH"
quote = "USDC"
venues = ["uniswap_v2"]
"""

SESSIONS = f"""
[wallets.w1]
chain = "devnet"
private_key = "{KEY}"

[sessions.CLIENT1]
wallets = ["w1"]
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def journal(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh journal on each backend (PostgreSQL keeps NUMERIC amounts: read back exactly too)."""
    url = (f"sqlite:///{tmp_path / 'journal.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_new_database")())
    j = Journal(url)
    yield j
    j.close()


@pytest.fixture
def config(tmp_path: Path):
    (tmp_path / "spec.toml").write_text(SPEC)
    (tmp_path / "acceptor.cfg").write_text("[DEFAULT]\nConnectionType=acceptor\n")
    (tmp_path / "counterparties.toml").write_text(SESSIONS)
    spec = load_spec(tmp_path / "spec.toml")
    return spec, load_sessions(tmp_path / "counterparties.toml", spec)


# ---- the movements table ----------------------------------------------------------------------
def test_movements_are_exact_and_written_once_per_transaction(journal) -> None:
    recs = MovementRecords(journal)
    m = movement(31337, WALLET.lower(), "USDC", USDC, 6, 1_000_000_000_001, "in", "devnet", "devnet funding",
                 tx_hash=H1.upper().replace("0X", "0x"), block_number=7)
    assert m.amount == Decimal("1000000.000001") and m.wallet == WALLET and m.tx_hash == H1
    (row,) = recs.record_new([m, m])  # twice in one call: one row
    assert recs.record_new([m]) == []  # again (a restart): nothing written
    assert recs.record(m).id == row.id
    eth = movement(31337, WALLET, "ETH", None, 18, 1, "out", "ops", "sweep")  # no tx: written each time
    assert recs.record(eth).id != recs.record(eth).id
    rows = recs.all([31337])
    assert [(r.token_symbol, r.amount, r.amount_units, r.direction) for r in rows] == [
        ("USDC", Decimal("1000000.000001"), 1_000_000_000_001, "in"),
        ("ETH", Decimal("0.000000000000000001"), 1, "out"), ("ETH", Decimal("0.000000000000000001"), 1, "out")]
    assert rows[1].signed_units() == -1 and rows[0].signed_units() == 1_000_000_000_001
    assert [r.id for r in recs.for_chain(31337, from_block=7, to_block=7)] == [row.id]
    assert recs.for_chain(31338) == [] and recs.known_tx_hashes(31337) == {H1}


@pytest.mark.parametrize("change, problem", [
    ({"direction": "sideways"}, "direction"), ({"amount_units": 0}, "positive"), ({"amount_units": 1.0}, "positive"),
    ({"token_address": None}, "only ETH"), ({"who": " "}, "who and why"),
])
def test_a_movement_refuses_what_it_cannot_mean(change, problem) -> None:
    base = dict(chain_id=1, wallet=WALLET, token_symbol="USDC", token_address=USDC, amount=Decimal(1),
                amount_units=10**6, direction="in", who="ops", why="top-up")
    with pytest.raises(ValueError, match=problem):
        Movement(**{**base, **change})


# ---- what the operator typed ------------------------------------------------------------------
def test_amounts_are_never_rounded() -> None:
    usdc = TokenRef("USDC", USDC, 6)
    assert exact_units("250.5", usdc) == (Decimal("250.5"), 250_500000)
    assert exact_units("1e-6", usdc) == (Decimal("0.000001"), 1)
    for bad, why in (("250.0000001", "finer than USDC's 6 decimals"), ("0", "positive"), ("-1", "positive"),
                     ("NaN", "positive"), ("1,5", "decimal number"), ("Infinity", "positive")):
        with pytest.raises(MovementError, match=why):
            exact_units(bad, usdc)


def test_config_errors_name_file_key_and_fix(config) -> None:
    spec, sessions = config

    def req(**kw):
        return MovementRequest(**{"wallet": "w1", "token": "USDC", "amount": "1", "direction": "in", "who": "ops",
                                  "why": "x", **kw})

    assert resolve_chain(spec, sessions, req()) == "devnet"
    assert resolve_chain(spec, sessions, req(token="ETH")) == "devnet"
    with pytest.raises(MovementError, match=r"spec.toml: no \[chains.mainnet\]; --chain must be one of devnet"):
        resolve_chain(spec, sessions, req(chain="mainnet"))
    assert resolve_token(spec, "devnet", "ETH") == TokenRef("ETH", None, 18)
    with pytest.raises(MovementError, match=r"spec.toml: no \[tokens.DOGE\] on chain devnet; --token takes ETH or "
                                            r"one of USDC, WETH"):
        resolve_token(spec, "devnet", "DOGE")
    assert resolve_wallet(sessions, "w1", "devnet") == WALLET
    assert resolve_wallet(None, WALLET.lower(), "devnet") == WALLET
    with pytest.raises(MovementError, match=r"counterparties.toml: no \[wallets.w9\]; --wallet takes an address "
                                            r"or one of w1"):
        resolve_wallet(sessions, "w9", "devnet")
    with pytest.raises(MovementError, match="no sessions file"):
        resolve_wallet(None, "w1", "devnet")
    with pytest.raises(MovementError, match=r"wallets.w1.chain is 'devnet', not 'other'"):
        resolve_wallet(sessions, "w1", "other")


# ---- the devnet's funding -----------------------------------------------------------------------
def test_devnet_funding_becomes_deposits() -> None:
    dep = Deployment(chain_id=31338, rpc_url="", weth="", usdc=USDC, wbtc="", factory="", router="", fundings=(
        Funding("USDC", USDC, 6, WALLET, 10**12, H1, 5), Funding("ETH", None, 18, WALLET, 10 * 10**18, H2, 6)))
    usdc, eth = deposits(dep, {(31338, USDC.lower()): "USDC:devnet2"})
    assert (usdc.token_symbol, usdc.amount, usdc.amount_units, usdc.tx_hash, usdc.block_number) == (
        "USDC:devnet2", Decimal(1_000_000), 10**12, H1, 5)
    assert (eth.token_symbol, eth.token_address, eth.amount, eth.direction, eth.who, eth.why) == (
        "ETH", None, Decimal(10), "in", "devnet", "devnet funding")
    assert deposits(dep)[0].token_symbol == "USDC"  # no spec: the deployment's own name


# ---- Swap logs: the venues' decoders ----------------------------------------------------------
def test_swap_logs_of_both_venues() -> None:
    v2 = {"topics": [SWAP_V2_TOPIC], "data": "0x" + encode(["uint256"] * 4, [1, 0, 0, 7]).hex()}
    assert swap_amounts(v2) == (1, 0, 0, 7)
    v3 = {"topics": [SWAP_V3_TOPIC], "data": "0x" + encode(["int256", "int256", "uint160", "uint128", "int24"],
                                                             [-5, 9, 2**96, 10**18, -3]).hex()}
    assert swap_amounts(v3) == (0, 9, 5, 0)  # token1 went in, token0 came out
    assert swap_amounts({"topics": ["0x" + "00" * 32], "data": "0x"}) is None
    assert swap_amounts({"topics": [], "data": "0x"}) is None


# ---- the range ---------------------------------------------------------------------------------
class _Node:
    """A provider answering eth_blockNumber only: what resolve_range asks without times."""

    def __init__(self, head: int) -> None:
        self.head = head

    def make_request(self, method: str, params: list) -> dict:
        assert method == "eth_blockNumber"
        return {"result": hex(self.head)}


class _W3:
    def __init__(self, head: int) -> None:
        self.provider = _Node(head)


def test_no_new_block_is_nothing_new_not_an_error() -> None:
    w3 = _W3(67)
    kw = dict(to_block=None, since=None, until=None)
    assert resolve_range(w3, from_block=None, default_from=68, **kw) == (68, 67)  # the user's 68..67
    assert resolve_range(w3, from_block=None, default_from=60, **kw) == (60, 67)
    with pytest.raises(ReconcileError, match="empty block range 69..67"):
        resolve_range(w3, from_block=69, **kw)
    with pytest.raises(ReconcileError, match="empty block range 50..40"):
        resolve_range(w3, from_block=50, to_block=40, since=None, until=None)
    with pytest.raises(ReconcileError, match="past the chain's latest block 67"):
        resolve_range(w3, from_block=1, to_block=68, since=None, until=None)


# ---- which transfers movements explain ----------------------------------------------------------
def _transfer(tx: str, frm: str, to: str, units: int, token: str = USDC) -> dict:
    def topic(a: str) -> str:
        return "0x" + "0" * 24 + a[2:].lower()
    from fixbridge.ops.reconcile import TRANSFER_TOPIC
    return {"transactionHash": tx, "address": token, "topics": [TRANSFER_TOPIC, topic(frm), topic(to)],
            "data": hex(units), "blockNumber": "0x5", "logIndex": "0x0"}


def test_movements_explain_transfers_exactly(config, tmp_path: Path) -> None:
    from fixbridge.journal.movements import MovementRow
    from fixbridge.ops.reconcile import Reconciler, Result
    spec, _ = config
    j = Journal(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        r = Reconciler(j, spec, "devnet", w3=object())  # no chain: only the matching is exercised
        other, h3 = "0x" + "ee" * 20, "0x" + "03" * 32

        def mv(units: int, direction: str = "in", tx: str | None = None) -> MovementRow:
            m = movement(31337, WALLET, "USDC", USDC, 6, units, direction, "ops", "x", tx_hash=tx, block_number=5)
            return MovementRow(*[getattr(m, f) for f in Movement.__slots__], id=units)

        t_in = [_transfer(H1, other, WALLET, 5), _transfer(H2, other, WALLET, 7), _transfer(h3, other, WALLET, 9)]
        t_out = [_transfer(H1, WALLET, other, 5)]
        res = Result(31337, 5, 5, [WALLET])
        left = r._match_movements(res, {}, t_out, t_in, [mv(5, tx=H1), mv(8, tx=H2), mv(9)])
        # H1's deposit explains H1's transfer in, not its transfer out; H2's says 8 where 7 moved;
        # the hashless 9 explains the 9 of h3
        assert left == {"out": t_out, "in": []}
        (b,) = res.breaks
        assert (b.kind, b.tx_hash, b.journal, b.chain) == ("movement_mismatch", H2, {"amount_units": 8},
                                                           {"amount_units": 7})
        assert "its transaction moved 0.000007 USDC to the wallet" in b.detail
    finally:
        j.close()


# ---- booking with --tx, checked against what the node says ------------------------------------------
class _Chain:
    """A provider that knows one mined transaction: WALLET received 250.5 USDC and 2 ETH in it."""

    def __init__(self) -> None:
        self.tx = {"from": "0x" + "ee" * 20, "to": WALLET.lower(), "value": hex(2 * 10**18)}
        self.rc = {"status": "0x1", "blockNumber": "0x2a", "logs": [_transfer(H1, "0x" + "ee" * 20, WALLET, 250_500000)]}

    def make_request(self, method: str, params: list) -> dict:
        if params[0] != H1:
            return {"result": None}
        return {"result": {"eth_getTransactionReceipt": self.rc, "eth_getTransactionByHash": self.tx}[method]}


class _ChainW3:
    def __init__(self) -> None:
        self.provider = _Chain()


def test_booking_with_a_tx_takes_exactly_what_it_moved(config, journal) -> None:
    from fixbridge.ops.movements import book
    spec, sessions = config
    w3 = _ChainW3()

    def req(**kw):
        return MovementRequest(**{"wallet": "w1", "token": "USDC", "amount": "250.5", "direction": "in",
                                  "who": "ops", "why": "top-up", "tx_hash": H1, **kw})

    row, new = book(journal, spec, sessions, req(), w3=w3)
    assert new and (row.amount, row.amount_units, row.block_number, row.tx_hash) == (Decimal("250.5"), 250_500000, 42, H1)
    assert book(journal, spec, sessions, req(), w3=w3) == (row, False)  # booked once
    eth, _ = book(journal, spec, sessions, req(token="ETH", amount="2"), w3=w3)
    assert (eth.token_symbol, eth.token_address, eth.amount_units) == ("ETH", None, 2 * 10**18)
    for bad, why in ((req(amount="250"), "moved 250500000 base units of USDC to .*, not 250000000"),
                     (req(token="ETH", amount="2.5"), "moved 2000000000000000000 base units of ETH"),
                     (req(direction="out"), "moved 0 base units of USDC from"),
                     (req(tx_hash=H2), "is not mined on chain devnet"),
                     (req(tx_hash="0x12"), "32-byte"),
                     (req(who=""), "--who and --why")):
        with pytest.raises(MovementError, match=why):
            book(journal, spec, sessions, bad, w3=w3)
    assert len(MovementRecords(journal).all()) == 2
