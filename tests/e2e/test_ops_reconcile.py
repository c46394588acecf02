"""Reconciliation on a real devnet: orders through the real bridge reconcile clean; then each kind
of break is made for real and `fixbridge reconcile` reports it and exits 1.

The devnet is shared with other modules, so every run here covers only blocks mined since this
module started (its bridge is the only one trading then)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as sel
from sqlalchemy import delete, select, update
from web3 import Web3

from support import ADDR, KEYS, ROOT
from fixbridge.fix.client import new_order_single
from fixbridge.journal import schema as db

pytestmark = pytest.mark.e2e
S1 = "FIX.4.4:FIXBRIDGE->CLIENT1"


@pytest.fixture(scope="module")
def start_block(devnet):
    return int(devnet.rpc("eth_blockNumber"), 16) + 1


@pytest.fixture(scope="module")
def traded(start_block, client_factory, journal, devnet):
    c = client_factory("CLIENT1")
    tag = datetime.now(timezone.utc).strftime("%H%M%S%f")
    out = {}
    for key, msg in (("buy", new_order_single(f"RC-buy-{tag}", "WETH/USDC", "1", Decimal("0.2"),
                                              limit=Decimal("3200"), tif="3")),
                     ("sell", new_order_single(f"RC-sell-{tag}", "WBTC/USDC", "2", Decimal("0.002"), tif="3")),
                     ("nofill", new_order_single(f"RC-nofill-{tag}", "WETH/USDC", "1", Decimal("1"),
                                                 limit=Decimal("1000"), tif="4"))):
        c.send(msg)
        reports = c.reports_until_terminal(msg.getField(11))
        out[key] = reports[-1]
    assert (out["buy"][39], out["sell"][39], out["nofill"][39]) == ("2", "2", "4"), [m.raw for m in out.values()]
    return out, int(devnet.rpc("eth_blockNumber"), 16)


def reconcile(bridge, devnet, sessions_dir, *args: str) -> tuple[int, dict | str]:
    fmt_json = "--format" not in args
    p = subprocess.run([sys.executable, "-m", "fixbridge.cli", "reconcile", "--journal", bridge.journal_url,
                        "--spec", str(devnet.spec_path), "--sessions", str(sessions_dir / "counterparties.toml"),
                        *args, *(["--format", "json"] if fmt_json else [])],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, timeout=120)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout) if fmt_json else p.stdout


def kinds(doc) -> list[str]:
    return sorted(b["kind"] for b in doc["breaks"])


def test_clean_run_exits_0_and_is_recorded(traded, start_block, bridge, devnet, sessions_dir, journal):
    reports, end = traded
    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block), "--to-block", str(end))
    assert rc == 0 and doc["status"] == "clean" and doc["breaks"] == [], json.dumps(doc, indent=1)
    assert doc["checked"]["swaps"] == 2 and doc["checked"]["fills"] == 2 and doc["checked"]["transfers"] >= 4
    assert ADDR[1] in doc["wallets"] and ADDR[3] in doc["wallets"]
    (run, *_) = journal.reconciliation_runs()
    assert run["id"] == doc["run_id"] and run["status"] == "clean" and run["breaks"] == 0
    assert (run["from_block"], run["to_block"]) == (start_block, end)
    assert run["results"]["checked"] == doc["checked"]

    # the same range by time, as a person would ask for it, and the readable form
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    t0 = datetime.fromtimestamp(w3.eth.get_block(start_block)["timestamp"], timezone.utc)
    rc, text = reconcile(bridge, devnet, sessions_dir, "--since", t0.isoformat(), "--to-block", str(end),
                         "--format", "table")
    assert rc == 0 and "clean" in text and "journaled transactions" in text


def test_altered_fill_is_a_break(traded, start_block, bridge, devnet, sessions_dir, journal):
    reports, end = traded
    exec_id = reports["buy"][17]
    with journal._write() as s:
        f = s.scalar(select(db.Fill).where(db.Fill.exec_id == exec_id))
        saved = (f.quote_units, f.last_px, f.block_number)
        f.quote_units, f.last_px, f.block_number = f.quote_units + 1, f.last_px + 1, f.block_number - 1
    try:
        rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block), "--to-block", str(end))
        assert rc == 1 and kinds(doc) == ["fill_mismatch"], doc
        (b,) = doc["breaks"]
        assert b["exec_id"] == exec_id and b["order_id"] == reports["buy"][37]
        assert set(b["journal"]) == {"quote_units", "last_px", "block_number"}
        assert b["chain"]["quote_units"] == saved[0] and b["journal"]["quote_units"] == saved[0] + 1
        assert b["chain"]["block_number"] == int(reports["buy"][20002])
        assert b["chain"]["last_px"] == reports["buy"][31]  # exact, as text
        run = journal.reconciliation_runs(1)[0]
        assert run["status"] == "breaks" and run["breaks"] == 1 and run["results"]["breaks"][0]["kind"] == "fill_mismatch"
    finally:
        with journal._write() as s:
            s.execute(update(db.Fill).where(db.Fill.exec_id == exec_id).values(
                quote_units=saved[0], last_px=saved[1], block_number=saved[2]))


def test_journaled_tx_not_on_chain_and_deleted_fill(traded, start_block, bridge, devnet, sessions_dir, journal):
    reports, end = traded
    ghost = "0x" + os.urandom(32).hex()
    now = datetime.now(timezone.utc)
    with journal._write() as s:
        s.add(db.Transaction(order_id=None, purpose="swap", chain_id=31337, wallet=ADDR[1], nonce=10**6,
                             tx_hash=ghost, raw_tx="0x02f8", gas_limit=200_000, max_fee_per_gas=10**9,
                             max_priority_fee_per_gas=10**9, status="mined", block_number=end,
                             created_at=now, updated_at=now))
        gone = s.scalar(select(db.Fill).where(db.Fill.exec_id == reports["sell"][17]))
        kept = {c.key: getattr(gone, c.key) for c in db.Fill.__table__.columns}
        s.delete(gone)
    try:
        rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block), "--to-block", str(end))
        assert rc == 1 and kinds(doc) == ["missing_fill", "tx_not_on_chain"], doc
        by = {b["kind"]: b for b in doc["breaks"]}
        assert by["tx_not_on_chain"]["tx_hash"] == ghost and by["tx_not_on_chain"]["journal"]["status"] == "mined"
        assert by["missing_fill"]["exec_id"] == reports["sell"][17]
        assert by["missing_fill"]["order_id"] == reports["sell"][37]
    finally:
        with journal._write() as s:
            s.execute(delete(db.Transaction).where(db.Transaction.tx_hash == ghost))
            s.add(db.Fill(**kept))
    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block), "--to-block", str(end))
    assert rc == 0, doc


# ---- movements, balances, nothing new ----------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fixbridge.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250"}, timeout=120)


def book(bridge, devnet, sessions_dir, kind: str, *args: str) -> subprocess.CompletedProcess:
    """`fixbridge journal deposit|withdrawal` on the module's journal and spec."""
    return cli("journal", kind, "--journal", bridge.journal_url, "--spec", str(devnet.spec_path),
               "--sessions", str(sessions_dir / "counterparties.toml"), *args)


def send(devnet, key: str, to: str, data: bytes) -> tuple[str, int]:
    """A transaction signed with `key` outside the bridge: (hash, block)."""
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    acct = Account.from_key(key)
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = acct.sign_transaction({"to": to, "data": data, "value": 0, "gas": 150_000,
                                "nonce": w3.eth.get_transaction_count(acct.address), "chainId": 31337,
                                "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9})
    h = w3.eth.send_raw_transaction(tx.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=30)
    assert receipt.status == 1
    return "0x" + bytes(h).hex(), receipt.blockNumber


def head(devnet) -> int:
    return int(devnet.rpc("eth_blockNumber"), 16)


def test_devnet_funding_journaled_as_deposits_makes_genesis_clean(traded, bridge, devnet, sessions_dir, journal):
    """The user's report: straight after the devnet funded the wallets and a trade, reconcile from
    block 0 said unjournaled_transfer_in. With the funding journaled the way `fixbridge run` does
    it, the same range is clean, balances included."""
    from fixbridge.cli import _journal_devnet_funding
    from fixbridge.journal.movements import MovementRecords
    _, end = traded
    fundings = devnet.deployment.fundings
    assert {f.wallet for f in fundings} == {ADDR[1], ADDR[3], ADDR[4]} and all(f.tx_hash for f in fundings)
    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", "0", "--to-block", str(end), "--no-record")
    assert rc == 1 and set(kinds(doc)) == {"unjournaled_transfer_in"}, doc
    assert {b["tx_hash"] for b in doc["breaks"]} == {f.tx_hash for f in fundings if f.token is not None}

    _journal_devnet_funding(bridge.journal_url, [devnet.spec_path], [devnet.deployment])
    _journal_devnet_funding(bridge.journal_url, [devnet.spec_path], [devnet.deployment])  # a restart: no-op
    rows = MovementRecords(journal).all([31337])
    assert len(rows) == len(fundings) and {(r.who, r.why, r.direction) for r in rows} == {("devnet", "devnet funding", "in")}
    usdc = next(r for r in rows if r.wallet == ADDR[1] and r.token_symbol == "USDC")
    assert usdc.amount == Decimal("1000000") and usdc.amount_units == 1_000_000 * 10**6

    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", "0", "--to-block", str(end), "--no-record")
    assert rc == 0 and doc["breaks"] == [], json.dumps(doc, indent=1)
    assert doc["checked"]["movements"] == len(fundings) and doc["checked"]["balances"] > 0, doc


def test_outside_deposit_is_a_break_until_booked(traded, bridge, devnet, sessions_dir):
    from fixbridge.devnet.deploy import DEPLOYER_KEY
    data = sel("mint(address,uint256)") + encode(["address", "uint256"], [ADDR[1], 250_500000])
    h, block = send(devnet, DEPLOYER_KEY, devnet.deployment.usdc, data)
    rng = ("--from-block", str(block), "--to-block", str(block))
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 1 and kinds(doc) == ["unjournaled_transfer_in"] and doc["breaks"][0]["tx_hash"] == h, doc

    # refused, nothing written: finer than USDC's 6 decimals; not what the transaction moved; no such wallet
    p = book(bridge, devnet, sessions_dir, "deposit", "--wallet", "w1", "--token", "USDC", "--amount", "250.5000001",
             "--tx", h, "--who", "ops", "--why", "top-up")
    assert p.returncode == 2 and "finer than USDC's 6 decimals" in p.stdout, p.stdout + p.stderr
    p = book(bridge, devnet, sessions_dir, "deposit", "--wallet", "w1", "--token", "USDC", "--amount", "250",
             "--tx", h, "--who", "ops", "--why", "top-up")
    assert p.returncode == 2 and "not 250000000" in p.stdout, p.stdout + p.stderr
    p = book(bridge, devnet, sessions_dir, "deposit", "--wallet", "w9", "--token", "USDC", "--amount", "250.5",
             "--tx", h, "--who", "ops", "--why", "top-up")
    assert p.returncode == 2 and "counterparties.toml: no [wallets.w9]" in p.stdout, p.stdout + p.stderr
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 1, doc

    p = book(bridge, devnet, sessions_dir, "deposit", "--wallet", "w1", "--token", "USDC", "--amount", "250.5",
             "--tx", h, "--who", "ops", "--why", "top-up from treasury")
    assert p.returncode == 0 and "250.5 USDC into " + ADDR[1] in p.stdout, p.stdout + p.stderr
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 0 and doc["breaks"] == [] and doc["checked"]["movements"] == 1, doc


def test_outside_withdrawal_booked_with_its_tx(traded, bridge, devnet, sessions_dir):
    """Wallet #4's key sends USDC away outside the bridge: a transfer and a nonce the journal does
    not know. Booked as a withdrawal with --tx, both are explained (and its gas in the ETH balance)."""
    data = sel("transfer(address,uint256)") + encode(["address", "uint256"], ["0x000000000000000000000000000000000000bEEF", 10_000000])
    h, block = send(devnet, KEYS[4], devnet.deployment.usdc, data)
    rng = ("--from-block", str(block), "--to-block", str(block))
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 1 and kinds(doc) == ["unjournaled_transfer_out", "unjournaled_tx"], doc
    p = book(bridge, devnet, sessions_dir, "withdrawal", "--wallet", ADDR[4].lower(), "--token", "USDC",
             "--amount", "10", "--tx", h, "--who", "ops", "--why", "sweep")
    assert p.returncode == 0 and "withdrawal" in p.stdout, p.stdout + p.stderr
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 0 and doc["breaks"] == [], doc
    assert doc["checked"]["balances"] > 0


def test_reconcile_ack_books_a_break(traded, bridge, devnet, sessions_dir, journal):
    from fixbridge.devnet.deploy import DEPLOYER_KEY
    data = sel("mint(address,uint256)") + encode(["address", "uint256"], [ADDR[3], 7_000000])
    h, block = send(devnet, DEPLOYER_KEY, devnet.deployment.usdc, data)
    rng = ("--from-block", str(block), "--to-block", str(block))
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 1 and kinds(doc) == ["unjournaled_transfer_in"], doc
    p = cli("reconcile", "--journal", bridge.journal_url, "--spec", str(devnet.spec_path), "--sessions",
            str(sessions_dir / "counterparties.toml"), "--ack", h, "--who", "ops", "--why", "airdrop")
    assert p.returncode == 0 and "deposit" in p.stdout and "7 USDC into " + ADDR[3] in p.stdout, p.stdout + p.stderr
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 0, doc


def test_balance_mismatch(traded, bridge, devnet, sessions_dir, journal):
    """A deposit journaled that never happened (no transaction: nothing to match a log against) and
    ETH that appeared without any transaction are both found by the balance check."""
    devnet.rpc("evm_mine")
    block = head(devnet)
    rng = ("--from-block", str(block), "--to-block", str(block))
    p = book(bridge, devnet, sessions_dir, "deposit", "--wallet", "w1", "--token", "USDC", "--amount", "5",
             "--block", str(block), "--who", "ops", "--why", "wrongly booked")
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
        assert rc == 1 and kinds(doc) == ["balance_mismatch"], doc
        (b,) = doc["breaks"]
        assert b["wallet"] == ADDR[1] and "USDC" in b["detail"]
        assert b["journal"]["balance_units"] - b["chain"]["balance_units"] == 5_000000
        assert b["journal"]["movements"] == "5"
    finally:
        with journal._write() as s:
            s.execute(delete(db.Movement).where(db.Movement.block_number == block, db.Movement.why == "wrongly booked"))
    rc, doc = reconcile(bridge, devnet, sessions_dir, *rng)
    assert rc == 0, doc

    # anvil writes the balance into the latest block's state: a range from that block sees it appear
    before, bal = head(devnet), int(devnet.rpc("eth_getBalance", [ADDR[2], "latest"]), 16)
    devnet.rpc("anvil_setBalance", [ADDR[2], hex(bal + 1)])
    devnet.rpc("evm_mine")
    try:
        rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(before), "--to-block", str(head(devnet)))
        assert rc == 1 and kinds(doc) == ["balance_mismatch"], doc
        (b,) = doc["breaks"]
        assert b["wallet"] == ADDR[2] and b["detail"].startswith("ETH")
        assert b["chain"]["balance_units"] - b["journal"]["balance_units"] == 1
    finally:  # the wei taken back, so the ranges of later tests net to nothing
        devnet.rpc("anvil_setBalance", [ADDR[2], hex(bal)])
        devnet.rpc("evm_mine")


def test_no_new_block_is_nothing_new(traded, bridge, devnet, sessions_dir, journal):
    """The user's report: a scheduled run on a chain that mined nothing since the last one said
    `error: empty block range 68..67` and exited 2."""
    devnet.rpc("evm_mine")
    last = head(devnet)
    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(last), "--to-block", str(last))
    assert rc == 0 and doc["status"] == "clean", doc
    runs = len(journal.reconciliation_runs(1000))
    rc, doc = reconcile(bridge, devnet, sessions_dir)
    assert rc == 0 and doc["status"] == "nothing_new" and doc["from_block"] == last + 1, doc
    rc, text = reconcile(bridge, devnet, sessions_dir, "--format", "table")
    assert rc == 0 and f"nothing new — no block after {last}" in text and "empty block range" not in text, text
    assert len(journal.reconciliation_runs(1000)) == runs  # nothing checked, nothing recorded

    # on a schedule: a new block, then nothing new; each run starts where the last ended
    devnet.rpc("evm_mine")
    p = cli("reconcile", "--journal", bridge.journal_url, "--spec", str(devnet.spec_path), "--sessions",
            str(sessions_dir / "counterparties.toml"), "--watch", "0.05", "--rounds", "2", "--format", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    docs, text = [], p.stdout.strip()
    while text:
        d, n = json.JSONDecoder().raw_decode(text)
        docs.append(d)
        text = text[n:].strip()
    assert [d["status"] for d in docs] == ["clean", "nothing_new"], docs
    assert docs[0]["from_block"] == docs[0]["to_block"] == last + 1 and docs[1]["from_block"] == last + 2


def test_outside_transfer_from_a_bridge_wallet(traded, start_block, bridge, devnet, sessions_dir):
    """Someone with wallet #3's key moves USDC out behind the bridge's back (last in this module:
    the bridge would otherwise have to notice the nonce it did not use)."""
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    acct = Account.from_key(KEYS[3])
    thief = "0x000000000000000000000000000000000000dEaD"
    data = sel("transfer(address,uint256)") + encode(["address", "uint256"], [thief, 1234_500000])
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = acct.sign_transaction({"to": devnet.deployment.usdc, "data": data, "value": 0, "gas": 100_000,
                                "nonce": w3.eth.get_transaction_count(acct.address), "chainId": 31337,
                                "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9})
    h = w3.eth.send_raw_transaction(tx.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=30)
    assert receipt.status == 1
    rc, doc = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block),
                        "--to-block", str(receipt.blockNumber))
    assert rc == 1 and kinds(doc) == ["unjournaled_transfer_out", "unjournaled_tx"], doc
    by = {b["kind"]: b for b in doc["breaks"]}
    out = by["unjournaled_transfer_out"]
    assert out["tx_hash"] == "0x" + bytes(h).hex() and out["wallet"] == ADDR[3]
    assert out["chain"]["amount_units"] == 1234_500000 and "1234.5 USDC to " + thief in out["detail"]
    sent = by["unjournaled_tx"]
    assert sent["tx_hash"] == out["tx_hash"] and sent["wallet"] == ADDR[3] and sent["block"] == receipt.blockNumber
    rc, text = reconcile(bridge, devnet, sessions_dir, "--from-block", str(start_block),
                         "--to-block", str(receipt.blockNumber), "--format", "table")
    assert rc == 1 and "2 breaks" in text and "unjournaled_transfer_out" in text and "1234.5 USDC" in text


def test_make_run_then_a_trade_reconciles_clean(tmp_path):
    """The user's whole report, end to end: `fixbridge run` on its embedded devnet (the repo's own
    sessions), one trade, `fixbridge reconcile` exits 0 (the funding is journaled as deposits); run
    again with no new block, it exits 0 with "nothing new" instead of `empty block range 68..67`."""
    from support import BridgeProcess, FIXBRIDGE, free_port, free_port_pair
    port, anvil_port = free_port(), free_port_pair()
    specs, url = [tmp_path / "devnet.toml", tmp_path / "devnet2.toml"], f"sqlite:///{tmp_path / 'journal.db'}"
    b = BridgeProcess(FIXBRIDGE + ["run", *[a for p in specs for a in ("--spec", str(p))], "--journal", url,
                                   "--state-dir", str(tmp_path / "var"), "--port", str(port),
                                   "--devnet-port", str(anvil_port), "--metrics-port", "0"], port, url, tmp_path).start(timeout=90)
    try:
        assert "the devnet's funding recorded as" in b.log()
        # as the user trades (a QuickFIX initiator of its own: this process already has a CLIENT1 session)
        p = cli("client", "buy", "WETH/USDC", "0.5", "--limit", "3100", "--tif", "IOC", "--port", str(port))
        assert p.returncode == 0 and "Filled" in p.stdout, p.stdout + p.stderr + b.log()[-3000:]
        args = ["reconcile", "--journal", url, *[a for p in specs for a in ("--spec", str(p))]]
        p = cli(*args)
        assert p.returncode == 0 and p.stdout.count("clean: the journal and the chain agree") == 2, p.stdout + p.stderr
        p = cli(*args)
        assert p.returncode == 0 and p.stdout.count("nothing new") == 2, p.stdout + p.stderr
        p = cli("journal", "movements", "--journal", url, "--format", "json")
        rows = json.loads(p.stdout)
        assert rows and {r["who"] for r in rows} == {"devnet"} and {r["chain_id"] for r in rows} == {31337, 31338}
    finally:
        b.stop()
