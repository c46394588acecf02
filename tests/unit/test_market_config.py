"""The spec's market data ladder (instruments.<symbol>.depth_sizes): sizes the base token can hold."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fixbridge.config import ConfigError, load_spec

ROOT = Path(__file__).resolve().parents[2]


def _spec_with(tmp_path: Path, sizes: str) -> Path:
    text = (ROOT / "specs" / "devnet.toml").read_text()
    text = text.replace('[instruments."WBTC/USDC"]\n', f'[instruments."WBTC/USDC"]\ndepth_sizes = {sizes}\n')
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_depth_sizes_are_read_exactly(tmp_path):
    spec = load_spec(_spec_with(tmp_path, '["0.01", "0.5", "2"]'))
    assert spec.instruments["WBTC/USDC"].depth_sizes == [Decimal("0.01"), Decimal("0.5"), Decimal("2")]
    assert spec.instruments["WETH/USDC"].depth_sizes == []  # the default ladder


@pytest.mark.parametrize("sizes", ['["0"]', '["-1"]', '["0.000000001"]'], ids=["zero", "negative", "below a unit"])
def test_a_size_the_token_cannot_hold_is_named(tmp_path, sizes):
    with pytest.raises(ConfigError, match=r"instruments.WBTC/USDC.depth_sizes.*8 decimals"):
        load_spec(_spec_with(tmp_path, sizes))
