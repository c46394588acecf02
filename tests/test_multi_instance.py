"""Several bridge instances share one PostgreSQL journal, each owning its sessions and wallets;
the database refuses a second owner of a wallet."""
from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal

import pytest

from conftest import KEYS, ROOT, acceptor_cfg, start_bridge
from fixbridge.fix.client import FixClient, new_order_single

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_url():
    import sqlalchemy as sa
    try:
        admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            name = f"fixbridge_multi_{uuid.uuid4().hex[:8]}"
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable: {e}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sessions(d, comp_id: str, key: str):
    d.mkdir(parents=True, exist_ok=True)
    (d / "acceptor.cfg").write_text(acceptor_cfg([comp_id]))
    (d / "counterparties.toml").write_text(f'[wallets.w]\nchain = "devnet"\nprivate_key = "{key}"\n'
                                           f'[sessions.{comp_id}]\nwallets = ["w"]\n')
    return d / "counterparties.toml"



def test_two_instances_share_a_journal_and_never_a_wallet(devnet, pg_url, tmp_path):
    one = sessions(tmp_path / "one", "CLIENT1", KEYS[1])
    two = sessions(tmp_path / "two", "CLIENT3", KEYS[3])
    a = start_bridge([devnet.spec_path], one, tmp_path / "a", journal=pg_url)
    b = start_bridge([devnet.spec_path], two, tmp_path / "b", journal=pg_url)
    try:
        # A third instance wanting instance A's session and wallet is refused before it starts.
        r = subprocess.run([sys.executable, "-m", "fixbridge.cli", "run", "--no-devnet", "--spec", str(devnet.spec_path),
                            "--sessions", str(one), "--journal", pg_url, "--state-dir", str(tmp_path / "c"), "--port", "0"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
        out = " ".join(r.stdout.split())
        assert r.returncode == 2 and "owned by bridge instance" in out and str(tmp_path / "a") in out
        # Both running instances trade, each from its own wallet, into the one journal.
        for bridge, comp_id in ((a, "CLIENT1"), (b, "CLIENT3")):
            with FixClient("127.0.0.1", bridge.port, comp_id, "FIXBRIDGE", data_dir=tmp_path / f"c-{comp_id}") as c:
                c.send(new_order_single(f"multi-{comp_id}", "WETH/USDC", "1", Decimal("0.01"), tif="3", ex_destination="uniswap_v2"))
                assert c.reports_until_terminal(f"multi-{comp_id}")[-1][39] == "2"
        from fixbridge.journal import Journal
        j = Journal(pg_url)
        try:
            owners = {(kind, owner) for kind, _, owner, _ in j.leases()}
            assert len({o for _, o in owners}) == 2 and {k for k, _ in owners} == {"session", "wallet"}
            assert j.find_order("FIX.4.4:FIXBRIDGE->CLIENT1", "multi-CLIENT1").status.value == "Filled"
            assert j.find_order("FIX.4.4:FIXBRIDGE->CLIENT3", "multi-CLIENT3").status.value == "Filled"
        finally:
            j.close()
    finally:
        a.stop()
        b.stop()
