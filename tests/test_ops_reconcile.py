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

from conftest import ADDR, KEYS, ROOT
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
    assert p.returncode in (0, 1), p.stdout + p.stderr
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
