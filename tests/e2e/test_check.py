"""`fixbridge check` against the real devnet, run as users run it (a subprocess; its output is
not a terminal, so one plain line per check: `<status>  <check>  <detail>`)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from support import ADDR, FIXBRIDGE, ROOT


def run_check(*args: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Exit code, {check: (status, detail)}, and the whole output."""
    p = subprocess.run(FIXBRIDGE + ["check", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    rows = {}
    for line in p.stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "warn", "FAIL"):
            check, _, detail = rest.strip().partition("  ")
            rows[check.strip()] = (status.strip(), detail.strip())
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, rows, p.stdout + p.stderr


def fails(rows: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {k: d for k, (s, d) in rows.items() if s == "FAIL"}


@pytest.fixture(scope="module")
def sessions(sessions_dir) -> str:
    return str(sessions_dir / "counterparties.toml")


def edited_spec(devnet, tmp_path: Path, old: str, new: str) -> str:
    text = devnet.spec_path.read_text()
    assert old in text
    p = tmp_path / "spec.toml"
    p.write_text(text.replace(old, new, 1))
    return str(p)


def test_passes_on_the_devnet_and_only_reads(devnet, sessions):
    before = (devnet.rpc("eth_blockNumber"), devnet.rpc("eth_getTransactionCount", [ADDR[1], "latest"]))
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions)
    assert code == 0 and not fails(rows), out
    assert rows["config: spec"][0] == rows["config: sessions"][0] == "ok"
    assert rows["chains.devnet: node"][0] == "ok" and "chain id 31337" in rows["chains.devnet: node"][1]
    dep_weth = devnet.spec_path.read_text().split('[tokens.WETH]')[1].split('address = "')[1].split('"')[0]
    for key in ("venues.uniswap_v2.router", "venues.uniswap_v2.factory", "venues.uniswap_v3.router",
                "venues.uniswap_v3.quoter", "tokens.USDC", "options_markets.options"):
        assert rows[f"{key}: code"][0] == "ok", key
    assert rows["venues.uniswap_v2.router.WETH()"] == ("ok", f"{dep_weth} = tokens.WETH")
    assert rows["venues.uniswap_v2.router.factory()"][0] == "ok"
    assert rows["venues.uniswap_v3.router.WETH9()"][0] == rows["venues.uniswap_v3.quoter.WETH9()"][0] == "ok"
    assert rows["venues.uniswap_v3.quoter.factory()"][0] == "ok"
    assert rows["venues.uniswap_v3.router: ABI"][0] == "ok"
    assert rows["tokens.USDC.decimals"] == ("ok", "6") and rows["tokens.WBTC.decimals"] == ("ok", "8")
    assert rows["wallets.w1: key"] == ("ok", f"{ADDR[1]} (private_key)")
    assert rows["wallets.w1: ETH"][0] == "ok"
    usdc = rows["wallets.w1: USDC"]
    assert usdc[0] == "ok" and usdc[1].startswith("balance ") and "allowance to uniswap_v2 " in usdc[1]
    assert "journal: schema" not in rows  # only with --journal
    after = (devnet.rpc("eth_blockNumber"), devnet.rpc("eth_getTransactionCount", [ADDR[1], "latest"]))
    assert after == before  # nothing was sent: no block mined, no nonce used


def test_v2_router_without_code_fails_naming_it(devnet, sessions, tmp_path):
    router = devnet.spec_path.read_text().split("[venues.uniswap_v2]")[1].split('router = "')[1].split('"')[0]
    nowhere = to_checksum_address("0x" + os.urandom(20).hex())
    spec = edited_spec(devnet, tmp_path, f'router = "{router}"', f'router = "{nowhere}"')
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1, out
    status, detail = rows["venues.uniswap_v2.router: code"]
    assert status == "FAIL" and f"no contract at {nowhere} on chain 31337" in detail
    assert rows["venues.uniswap_v3.router: code"][0] == "ok"  # only the broken one is named


def test_wrong_chain_id_fails_naming_both(devnet, sessions, tmp_path):
    spec = edited_spec(devnet, tmp_path, "chain_id = 31337", "chain_id = 1")
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1, out
    status, detail = rows["chains.devnet: chain_id"]
    assert status == "FAIL" and "is chain 31337, the spec says 1" in detail


def test_router_of_another_factory_fails(devnet, sessions, tmp_path):
    """A V2 router from one deployment with a factory from another: both have code, only
    factory() tells them apart."""
    text = devnet.spec_path.read_text()
    v2_factory = text.split("[venues.uniswap_v2]")[1].split('factory = "')[1].split('"')[0]
    v3_factory = text.split("[venues.uniswap_v3]")[1].split('factory = "')[1].split('"')[0]
    spec = edited_spec(devnet, tmp_path, f'factory = "{v2_factory}"', f'factory = "{v3_factory}"')
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1, out
    status, detail = rows["venues.uniswap_v2.router.factory()"]
    assert status == "FAIL" and f"{v2_factory}, but the spec's factory is {v3_factory}" in detail


def test_wrong_decimals_fail(devnet, sessions, tmp_path):
    spec = edited_spec(devnet, tmp_path, "decimals = 6", "decimals = 18")
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1 and rows["tokens.USDC.decimals"] == ("FAIL", "the token says 6, the spec says 18"), out


def test_config_error_is_a_failed_row(devnet, sessions, tmp_path):
    spec = edited_spec(devnet, tmp_path, "router = ", "routr = ")
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1, out
    status, detail = rows["config: spec"]
    assert status == "FAIL" and "venues.uniswap_v2.routr: unknown key" in detail


def test_unreachable_node_fails_without_its_url_path(devnet, sessions, tmp_path):
    from support import free_port
    spec = edited_spec(devnet, tmp_path, f'rpc_url = "{devnet.rpc_url}"',
                       f'rpc_url = "http://127.0.0.1:{free_port()}/v2/secret-api-key"')
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 1 and rows["chains.devnet: node"][0] == "FAIL", out
    assert "secret-api-key" not in out


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory
    from fixbridge.journal.store import alembic_config
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_fresh_journal_schema_is_ok(devnet, sessions, tmp_path):
    from fixbridge.journal import Journal
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal(url).close()  # created and migrated to head, as `fixbridge run` leaves it
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions, "--journal", url)
    assert code == 0, out
    assert rows["journal: schema"] == ("ok", f"{url} at revision {_alembic_head()} (head)")


def test_old_journal_is_reported_not_migrated(devnet, sessions, tmp_path):
    from alembic import command
    from sqlalchemy import create_engine
    from fixbridge.journal.store import alembic_config
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0003")
    engine.dispose()
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions, "--journal", url)
    status, detail = rows["journal: schema"]
    assert code == 0 and status == "warn" and f"at revision 0003, behind head {_alembic_head()}" in detail, out
    assert _revision(url) == "0003"  # check never migrates


def test_journal_of_a_newer_version_fails(devnet, sessions, tmp_path):
    from sqlalchemy import create_engine, text
    from fixbridge.journal import Journal
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Journal(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions, "--journal", url)
    status, detail = rows["journal: schema"]
    assert code == 1 and status == "FAIL" and "revision 9999, which this fixbridge does not know" in detail, out


def test_swaprouter02_as_v3_router_fails(devnet, sessions):
    """The adapter speaks SwapRouter (a deadline in the swap struct); SwapRouter02 answers
    factoryV2(). Stand-in: code at the V3 router that answers any call with one word."""
    router = devnet.spec_path.read_text().split("[venues.uniswap_v3]")[1].split('router = "')[1].split('"')[0]
    original = devnet.rpc("eth_getCode", [router, "latest"])
    devnet.rpc("anvil_setCode", [router, "0x60206000f3"])  # PUSH1 32 PUSH1 0 RETURN
    try:
        code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions)
    finally:
        devnet.rpc("anvil_setCode", [router, original])
    assert code == 1, out
    status, detail = rows["venues.uniswap_v3.router: ABI"]
    assert status == "FAIL" and "this is SwapRouter02" in detail
    assert rows["venues.uniswap_v2.router: code"][0] == "ok"


def test_keystore_wallet(devnet, tmp_path, monkeypatch):
    """A keystore decrypts as `run` would decrypt it; without its password the row fails, and the
    address the keystore states still gets its balances checked."""
    from support import KEYS, acceptor_cfg
    from fixbridge.security.keystore import write_keystore
    (tmp_path / "acceptor.cfg").write_text(acceptor_cfg(("DESK",)))
    write_keystore(tmp_path / "desk.json", KEYS[1], "correct horse", iterations=2)
    sessions = tmp_path / "counterparties.toml"
    sessions.write_text('[wallets.desk]\nchain = "devnet"\nkeystore = "desk.json"\npassword_env = "FB_CHECK_PW"\n'
                        '[sessions.DESK]\nwallets = ["desk"]\n')
    monkeypatch.delenv("FB_CHECK_PW", raising=False)
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", str(sessions))
    assert code == 1 and rows["wallets.desk: key"] == ("FAIL", "environment variable FB_CHECK_PW is not set"), out
    assert rows["wallets.desk: ETH"][0] == "ok"
    monkeypatch.setenv("FB_CHECK_PW", "correct horse")
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", str(sessions))
    assert code == 0 and rows["wallets.desk: key"] == ("ok", f"{ADDR[1]} (keystore)"), out
    assert "correct horse" not in out


def test_instrument_pools(devnet, sessions, tmp_path):
    """The devnet has a V2 pair for WBTC/WETH but no V3 pool: listing uniswap_v3 for it is a warn."""
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions)
    assert rows["instruments.WETH/USDC: uniswap_v2"][1].startswith("pair 0x"), out
    v3 = rows["instruments.WETH/USDC: uniswap_v3"]
    assert v3[0] == "ok" and "500: 0x" in v3[1] and "3000: 0x" in v3[1]
    spec = edited_spec(devnet, tmp_path, 'base = "WBTC"\nquote = "WETH"\nvenues = ["uniswap_v2"]',
                       'base = "WBTC"\nquote = "WETH"\nvenues = ["uniswap_v2", "uniswap_v3"]')
    code, rows, out = run_check("--spec", spec, "--sessions", sessions)
    assert code == 0, out
    assert rows["instruments.WBTC/WETH: uniswap_v3"] == ("warn", "no pool for the pair on this venue: it never quotes it")
    assert rows["instruments.WBTC/WETH: uniswap_v2"][0] == "ok"


def test_journal_of_another_chain_fails_before_the_bridge_would(devnet, sessions, tmp_path):
    """The journal's recorded chain (what the bridge checks at start) against the node."""
    from fixbridge.journal import Journal
    from fixbridge.journal.chains import ChainIdentity

    url = f"sqlite:///{tmp_path / 'journal.db'}"
    genesis = devnet.rpc("eth_getBlockByNumber", ["0x1", False])["parentHash"]
    with Journal(url) as j:
        assert j.chains.check_or_record(ChainIdentity("devnet", 31337, genesis)) is None
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions, "--journal", url)
    assert code == 0 and rows["journal: chain devnet"][0] == "ok", out
    other = tmp_path / "other.db"
    with Journal(f"sqlite:///{other}") as j:
        assert j.chains.check_or_record(ChainIdentity("devnet", 31337, "0x" + "ab" * 32)) is None
    code, rows, out = run_check("--spec", str(devnet.spec_path), "--sessions", sessions, "--journal", f"sqlite:///{other}")
    status, detail = rows["journal: chain devnet"]
    assert code == 1 and status == "FAIL" and "0x" + "ab" * 32 in detail and genesis in detail, out
