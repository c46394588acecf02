"""50 start -> trade -> stop cycles of the real `fixbridge run` on a kept PostgreSQL journal
(tests/stop_cycles.py says what each cycle checks). A file of its own: pytest-xdist runs a file per
worker, so the SQLite and PostgreSQL runs go side by side."""
from __future__ import annotations

from pathlib import Path

import pytest

from stop_cycles import run_stop_cycles

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_start_trade_stop_cycles_postgres(backend: str, journal_url: str, devnet, sessions_dir: Path,
                                          tmp_path: Path) -> None:
    run_stop_cycles(backend, journal_url, devnet, sessions_dir, tmp_path)
