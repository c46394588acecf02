"""Keys: wallets from encrypted Ethereum keystores (password from an environment variable or a
file), and the proof that no private key, keystore password or FIX password appears anywhere the
bridge writes: its stdout/stderr, QuickFIX's logs and store, the journal (every row of every
table, and the database files), after real flows (fills, rejects, a bad Logon, a crash of the
config on a wrong password)."""
from __future__ import annotations

import os
import subprocess
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import MetaData, create_engine, select

from support import ADDR, FIXBRIDGE, KEYS, ROOT, _anvil_account
from fixbridge.config import ConfigError, load_sessions, load_spec
from fixbridge.config.sessions import wallet_key
from fixbridge.fix.client import FixClient, new_order_single, order_status_request
from fixbridge.security.keystore import write_keystore
from fixbridge.security.passwords import hash_password, verify_password
from helpers import tx_count
from security_support import RawFix, start_bridge, write_sessions

KS_PW_ENV = "FIXBRIDGE_TEST_KEYSTORE_PW"
KS1_PW = f"ks1-{uuid.uuid4().hex}"
KS3_PW = f"ks3-{uuid.uuid4().hex}"
FIX_PW = f"fix-{uuid.uuid4().hex}"
SCRYPT_N = 2**14  # keystores made here decrypt fast; the format is the one geth writes
# The second keystore wallet is anvil's account #5, which no other test uses (so its approvals
# cannot change what another module expects of wallets #1-#4); it wraps its own WETH.
ACCT5 = _anvil_account(5)
KEY5, ADDR5 = "0x" + bytes(ACCT5.key).hex(), ACCT5.address

COUNTERPARTIES = f"""
[wallets.k1]
chain = "devnet"
keystore = "k1.json"
password_env = "{KS_PW_ENV}"
[wallets.k3]
chain = "devnet"
keystore = "keys/k3.json"
password_file = "keys/k3.password"
[wallets.w2]
chain = "devnet"
private_key = "{{k2}}"

[sessions.CLIENT1]
wallets = ["k1", "k3"]
password_hash = "{hash_password(FIX_PW)}"
[sessions.CLIENT2]
wallets = ["w2"]
"""


def secrets() -> list[bytes]:
    out = []
    for k in [*KEYS.values(), KEY5]:
        h = k[2:] if k.startswith("0x") else k
        out += [h, h.upper(), "0x" + h, "0x" + h.upper()]
    out += [KS1_PW, KS3_PW, FIX_PW]
    return [s.encode() for s in out]


def make_sessions(d):
    toml = write_sessions(d / "sessions", COUNTERPARTIES, comp_ids=("CLIENT1", "CLIENT2"))
    write_keystore(d / "sessions" / "k1.json", KEYS[1], KS1_PW, iterations=SCRYPT_N)
    (d / "sessions" / "keys").mkdir()
    write_keystore(d / "sessions" / "keys" / "k3.json", KEY5, KS3_PW, iterations=SCRYPT_N)
    (d / "sessions" / "keys" / "k3.password").write_text(KS3_PW + "\n")
    return toml


# ---- configuration --------------------------------------------------------------------------

def test_keystore_wallets_load_and_decrypt(tmp_path, devnet, monkeypatch):
    toml = make_sessions(tmp_path)
    spec = load_spec(devnet.spec_path)
    cfg = load_sessions(toml, spec)
    assert cfg.wallets["k1"].keystore == str(tmp_path / "sessions" / "k1.json")  # resolved beside the toml
    monkeypatch.setenv(KS_PW_ENV, KS1_PW)
    assert wallet_key(cfg, "k1") == KEYS[1] and wallet_key(cfg, "k3") == KEY5
    assert KS1_PW not in repr(cfg) and KEYS[2] not in repr(cfg)


@pytest.mark.parametrize("env, fix_file, key, words", [
    (None, None, "wallets.k1.keystore", f"environment variable {KS_PW_ENV} is not set"),
    ("WRONG-" + KS1_PW, None, "wallets.k1.keystore", "cannot be decrypted: wrong password or damaged file"),
    (KS1_PW, "", "wallets.k3.keystore", "is empty"),
], ids=["unset", "wrong", "empty"])  # stable ids: the passwords are random per run (xdist collects twice)
def test_keystore_errors_never_show_the_password(tmp_path, devnet, monkeypatch, env, fix_file, key, words):
    toml = make_sessions(tmp_path)
    if fix_file is not None:
        (tmp_path / "sessions" / "keys" / "k3.password").write_text(fix_file)
    cfg = load_sessions(toml, load_spec(devnet.spec_path))
    monkeypatch.delenv(KS_PW_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(KS_PW_ENV, env)
    with pytest.raises(ConfigError) as e:
        for w in ("k1", "k3"):
            wallet_key(cfg, w)
    assert e.value.key == key and words in e.value.problem
    assert not any(s.decode() in str(e.value) for s in secrets())


@pytest.mark.parametrize("body, words", [
    ('keystore = "k1.json"\nprivate_key_env = "X"', "exactly one of private_key"),
    ('keystore = "k1.json"', "exactly one of password_env or password_file"),
    ('keystore = "k1.json"\npassword_env = "A"\npassword_file = "B"', "exactly one of password_env or password_file"),
    ('private_key_env = "X"\npassword_env = "A"', "go with keystore"),
    ('keystore = "missing.json"\npassword_env = "A"', "not found"),
])
def test_bad_keystore_config_is_named(tmp_path, devnet, body, words):
    make_sessions(tmp_path)
    p = tmp_path / "sessions" / "bad.toml"
    p.write_text(f'[wallets.k]\nchain = "devnet"\n{body}\n[sessions.CLIENT1]\nwallets = ["k"]\n')
    with pytest.raises(ConfigError) as e:
        load_sessions(p, load_spec(devnet.spec_path))
    assert words in e.value.problem and e.value.key.startswith("wallets.k")


def test_hash_password_cli():
    r = subprocess.run(FIXBRIDGE + ["hash-password", "--stdin"], input=FIX_PW + "\n", cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("scrypt$14$8$1$") and FIX_PW not in r.stdout + r.stderr
    assert verify_password(FIX_PW, h) and not verify_password(FIX_PW + "x", h)
    assert hash_password(FIX_PW) != h  # salted


# ---- real flows, then grep everything ----------------------------------------------------------

@pytest.mark.e2e
def test_no_secret_anywhere_after_real_flows(devnet, tmp_path):
    toml = make_sessions(tmp_path)
    # a wrong keystore password: the bridge refuses to start, and says which keystore without the password
    r = subprocess.run(FIXBRIDGE + ["run", "--no-devnet", "--spec", str(devnet.spec_path), "--sessions", str(toml),
                                    "--journal", f"sqlite:///{tmp_path / 'bad.db'}", "--state-dir", str(tmp_path / "bad"),
                                    "--port", "1"], cwd=ROOT, capture_output=True, timeout=120,
                       env={**os.environ, KS_PW_ENV: "not-" + KS1_PW})
    assert r.returncode == 2 and b"wallets.k1.keystore" in r.stdout + r.stderr
    outputs = [r.stdout, r.stderr]

    from web3 import Web3
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    weth = load_spec(devnet.spec_path).tokens["WETH"].address
    if w3.eth.call({"to": weth, "data": "0x70a08231" + ADDR5[2:].lower().rjust(64, "0")}) == b"\0" * 32:
        tx = ACCT5.sign_transaction({"to": weth, "data": "0xd0e30db0", "value": 10**18, "gas": 100_000, "gasPrice": w3.eth.gas_price,
                                     "nonce": w3.eth.get_transaction_count(ADDR5), "chainId": w3.eth.chain_id})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction))  # WETH9.deposit
    state = tmp_path / "state"
    b = start_bridge(devnet, toml, state, env={KS_PW_ENV: KS1_PW})
    try:
        sent = {1: tx_count(devnet.rpc_url, ADDR[1]), 5: tx_count(devnet.rpc_url, ADDR5)}
        with FixClient("127.0.0.1", b.port, "CLIENT1", data_dir=tmp_path / "c1", password=FIX_PW) as c:
            for account in ("k1", "k3"):  # a fill from each keystore wallet
                cl = f"ks-{account}-{uuid.uuid4().hex[:6]}"
                c.send(new_order_single(cl, "WETH/USDC", "2", Decimal("0.01"), tif="3", account=account))
                last = c.reports_until_terminal(cl)[-1]
                assert last[39] == "2", last.raw
            c.send(new_order_single("ks-rej", "WETH/USDC", "1", Decimal("-1"), tif="3"))
            assert c.reports_until_terminal("ks-rej")[-1][39] == "8"
            c.send(order_status_request("ks-rej"))
            c.receive(10, "8")
        assert tx_count(devnet.rpc_url, ADDR[1]) > sent[1] and tx_count(devnet.rpc_url, ADDR5) > sent[5]
        with FixClient("127.0.0.1", b.port, "CLIENT2", data_dir=tmp_path / "c2") as c:
            c.send(new_order_single("raw-key", "WETH/USDC", "2", Decimal("0.01"), tif="3"))
            assert c.reports_until_terminal("raw-key")[-1][39] == "8"  # w2 holds no WETH
        with RawFix(b.port, "CLIENT1") as raw:  # a bad FIX password
            assert "bad username or password" in raw.logon(password=KS1_PW)[58]
    finally:
        b.stop()
    outputs.append(b.log().encode())

    found = []
    files = [p for p in list(state.rglob("*")) + list((tmp_path / "c1").rglob("*")) + list((tmp_path / "c2").rglob("*"))
             if p.is_file()]
    assert any(p.name == "journal.db" for p in files) and any(p.suffix == ".log" for p in files)
    blobs = [(str(p), p.read_bytes()) for p in files] + [("output", o) for o in outputs]
    engine = create_engine(b.journal_url)
    md = MetaData()
    md.reflect(engine)
    rows = 0
    with engine.connect() as conn:
        for t in md.sorted_tables:
            for row in conn.execute(select(t)):
                rows += 1
                blobs.append((f"journal {t.name}", repr(tuple(row)).encode()))
    engine.dispose()
    assert rows > 50
    for where, data in blobs:
        for s in secrets():
            if s in data:
                found.append((where, s[:6]))
    assert found == [], found
