"""Config errors name the file, the key and what is expected, before anything starts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fixbridge.config import ConfigError, load_sessions, load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "specs" / "devnet.toml").read_text()
SESSIONS = (ROOT / "sessions" / "counterparties.toml").read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


BOTH = [ROOT / "specs" / "devnet.toml", ROOT / "specs" / "devnet2.toml"]


def test_committed_files_load():
    spec = load_spec(BOTH)
    assert spec.tokens["USDC"].decimals == 6 and spec.instruments["WETH/USDC"].venues == ["uniswap_v2", "uniswap_v3"]
    assert spec.chain_of(spec.instruments["WETH/USDC:devnet2"]).chain_id == 31338
    cfg = load_sessions(ROOT / "sessions" / "counterparties.toml", spec)
    assert cfg.sessions["CLIENT1"].wallets == ["devnet-1", "devnet2-1"]
    c42 = cfg.sessions["CLIENT42"]  # the FIX 4.2 demo session, with cancel on disconnect
    assert (c42.cancel_on_disconnect, c42.cancel_on_disconnect_grace_seconds) == (True, 5)
    assert not cfg.sessions["CLIENT1"].cancel_on_disconnect
    acceptor = (ROOT / "sessions" / "acceptor.cfg").read_text()
    assert "BeginString=FIX.4.2\nSenderCompID=FIXBRIDGE\nTargetCompID=CLIENT42\nDataDictionary=../specs/FIX42.xml" in acceptor


def test_replacement_policy_per_chain(tmp_path):
    devnet = load_spec(BOTH).chains["devnet"]
    assert (devnet.replace_after_blocks, devnet.fee_bump_percent, devnet.max_fee_per_gas_wei) == (3, 20, 500 * 10**9)
    lines = [line for line in SPEC.splitlines() if not line.startswith(("replace_after", "fee_bump", "max_fee"))]
    bare = load_spec(write(tmp_path, "spec.toml", "\n".join(lines))).chains["devnet"]  # the defaults: no ceiling
    assert (bare.replace_after_blocks, bare.fee_bump_percent, bare.max_fee_per_gas_wei) == (3, 20, None)
    exact = load_spec(write(tmp_path, "spec.toml", SPEC.replace('"500"', '"1.000000001"'))).chains["devnet"]
    assert exact.max_fee_per_gas_wei == 1_000_000_001


def test_a_name_defined_in_two_spec_files_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_spec([ROOT / "specs" / "devnet.toml", write(tmp_path, "again.toml", SPEC)])
    assert e.value.key == "chains.devnet" and "already defined" in e.value.problem


@pytest.mark.parametrize("edit, key, words", [
    (lambda s: s.replace("decimals = 6", "decimals = -6"), "tokens.USDC.decimals", "greater than or equal to 0"),
    (lambda s: s.replace('quote = "USDC"', 'quote = "USDT"', 1), "instruments.WETH/USDC.quote", "unknown token 'USDT'"),
    (lambda s: s.replace('kind = "uniswap_v2"', 'kind = "curve"'), "venues.uniswap_v2.kind", "uniswap_v2"),
    (lambda s: s.replace("router = ", "routr = "), "venues.uniswap_v2.routr", "unknown key"),
    (lambda s: s.replace('address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"', 'address = "0x123"'), "tokens.WETH.address", "20-byte hex address"),
    (lambda s: s.replace('venues = ["uniswap_v2", "uniswap_v3"]', 'venues = ["sushi"]', 1), "instruments.WETH/USDC.venues", "unknown venue 'sushi'"),
    (lambda s: s + "\n[broken", "-", "not valid TOML"),
    (lambda s: s.replace("fee_bump_percent = 20", "fee_bump_percent = 5"), "chains.devnet.fee_bump_percent", "greater than or equal to 10"),
    (lambda s: s.replace("replace_after_blocks = 3", "replace_after_blocks = 0"), "chains.devnet.replace_after_blocks", "greater than or equal to 1"),
    (lambda s: s.replace('max_fee_per_gas_gwei = "500"', 'max_fee_per_gas_gwei = "0.0000000001"'), "chains.devnet.max_fee_per_gas_gwei", "whole number of wei"),
    (lambda s: s.replace('max_fee_per_gas_gwei = "500"', 'max_fee_per_gas_gwei = "-1"'), "chains.devnet.max_fee_per_gas_gwei", "greater than 0"),
])
def test_bad_spec_is_named(tmp_path, edit, key, words):
    with pytest.raises(ConfigError) as e:
        load_spec(write(tmp_path, "spec.toml", edit(SPEC)))
    assert e.value.key == key and words in e.value.problem and e.value.path.endswith("spec.toml")


@pytest.mark.parametrize("edit, key, words", [
    (lambda s: s.replace('wallets = ["devnet-1", "devnet2-1"]', 'wallets = ["nope"]'), "sessions.CLIENT1.wallets", "unknown wallet 'nope'"),
    (lambda s: s.replace('approval_policy = "standing"', 'approval_policy = "always"'), "sessions.CLIENT1.approval_policy", "'exact' or 'standing'"),
    (lambda s: s.replace("max_slippage_bps = 50", "max_slippage_bps = -1"), "sessions.CLIENT1.max_slippage_bps", "greater than or equal to 0"),
    (lambda s: s.replace('private_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"', "", 1), "wallets.devnet-1", "exactly one of private_key"),
    (lambda s: s.replace("deadline_seconds = 120", 'deadline_seconds = 120\ntime_zone = "Mars/Olympus"', 1), "sessions.CLIENT1.time_zone", "unknown time zone 'Mars/Olympus'"),
    (lambda s: s.replace("deadline_seconds = 120", 'deadline_seconds = 120\nday_close = "5pm"', 1), "sessions.CLIENT1.day_close", "expected HH:MM"),
    (lambda s: s.replace("deadline_seconds = 120", 'deadline_seconds = 120\nday_close = "24:00"', 1), "sessions.CLIENT1.day_close", "expected HH:MM"),
    (lambda s: s.replace("cancel_on_disconnect_grace_seconds = 5\n", "cancel_on_disconnect_grace_seconds = -1\n"),
     "sessions.CLIENT42.cancel_on_disconnect_grace_seconds", "greater than or equal to 0"),
    (lambda s: s.replace("cancel_on_disconnect = true", 'cancel_on_disconnect = "sometimes"'),
     "sessions.CLIENT42.cancel_on_disconnect", "valid boolean"),
])
def test_bad_sessions_are_named(tmp_path, edit, key, words):
    spec = load_spec(BOTH)
    with pytest.raises(ConfigError) as e:
        load_sessions(write(tmp_path, "counterparties.toml", edit(SESSIONS)), spec)
    assert e.value.key == key and words in e.value.problem


def test_a_sessions_trading_day(tmp_path):
    from datetime import datetime, timezone
    spec = load_spec(BOTH)
    edited = SESSIONS.replace("deadline_seconds = 120", 'deadline_seconds = 120\ntime_zone = "America/New_York"\nday_close = "17:00"', 1)
    cp = load_sessions(write(tmp_path, "counterparties.toml", edited), spec).sessions["CLIENT1"]
    # 15:00 UTC on 4 Dec 2026 is 10:00 in New York: the day ends at 17:00 there, 22:00 UTC.
    assert cp.trading_day().next_after(datetime(2026, 12, 4, 15, tzinfo=timezone.utc)) == datetime(2026, 12, 4, 22, tzinfo=timezone.utc)
    assert load_sessions(ROOT / "sessions" / "counterparties.toml", spec).sessions["CLIENT1"].trading_day().time_zone == "UTC"


def test_raw_key_refused_off_devnet(tmp_path):
    spec = load_spec([write(tmp_path, "spec.toml", SPEC.replace("devnet = true", "devnet = false")), BOTH[1]])
    with pytest.raises(ConfigError) as e:
        load_sessions(ROOT / "sessions" / "counterparties.toml", spec)
    assert e.value.key == "wallets.devnet-1.private_key" and "only on a devnet" in e.value.problem
    assert "0x59c6" not in str(e.value)


def test_bridge_refuses_to_start_and_says_where(tmp_path):
    bad = write(tmp_path, "spec.toml", SPEC.replace("decimals = 8", 'decimals = "eight"'))
    r = subprocess.run([sys.executable, "-m", "fixbridge.cli", "run", "--no-devnet", "--spec", str(bad),
                        "--state-dir", str(tmp_path / "var"), "--journal", f"sqlite:///{tmp_path}/j.db"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    out = " ".join(r.stdout.split())
    assert "spec.toml: tokens.WBTC.decimals:" in out and "valid integer" in out


def test_unreachable_chain_is_a_config_error(tmp_path):
    spec = write(tmp_path, "spec.toml", SPEC.replace("http://127.0.0.1:8545", "http://127.0.0.1:9"))
    r = subprocess.run([sys.executable, "-m", "fixbridge.cli", "run", "--no-devnet", "--spec", str(spec), "--spec", str(BOTH[1]),
                        "--state-dir", str(tmp_path / "var"), "--journal", f"sqlite:///{tmp_path}/j.db"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    out = " ".join(r.stdout.split())
    assert r.returncode == 2 and "chains.devnet.rpc_url" in out and "cannot reach a node at http://127.0.0.1:9" in out
