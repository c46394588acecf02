"""50 start -> trade -> stop cycles of the real `fixbridge run` on a kept SQLite journal
(tests/stop_cycles.py says what each cycle checks)."""
from __future__ import annotations

from pathlib import Path

import pytest

from stop_cycles import run_stop_cycles

pytestmark = pytest.mark.e2e


def test_start_trade_stop_cycles_sqlite(journal_url: str, devnet, sessions_dir: Path, tmp_path: Path) -> None:
    run_stop_cycles("sqlite", journal_url, devnet, sessions_dir, tmp_path)
