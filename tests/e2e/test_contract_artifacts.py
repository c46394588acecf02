"""The committed contracts/artifacts/ are exactly what contracts/*.sol compile to."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
ARTIFACTS = CONTRACTS / "artifacts"
COMPILE = CONTRACTS / "compile.mjs"


def _need_solc() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the artifact check needs node + npm solc (run `make setup`)")
    if not (ROOT / "node_modules" / "solc" / "package.json").is_file():
        pytest.skip("node_modules/solc is missing; run `npm ci` (or `make setup`) to check the artifacts")
    return node


def _compile(*args: str) -> subprocess.CompletedProcess[str]:
    node = _need_solc()
    return subprocess.run(
        [node, str(COMPILE), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_artifact_names_its_source_by_hash() -> None:
    """Cheap, no node needed: each artifact's sourceHash is the sha256 of a current .sol file."""
    sources = [p for p in CONTRACTS.rglob("*.sol") if ARTIFACTS not in p.parents]  # contracts/**/*.sol
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in sources}
    artifacts = sorted(ARTIFACTS.glob("*.json"))
    assert artifacts, "no committed artifacts in contracts/artifacts/; run `node contracts/compile.mjs`"
    for path in artifacts:
        art = json.loads(path.read_text())
        assert set(art) == {"contractName", "abi", "bytecode", "sourceHash", "compiler"}, path.name
        assert art["contractName"] == path.stem
        assert art["sourceHash"] in hashes, (
            f"{path.name} was compiled from a source that no longer exists or changed; "
            "run `node contracts/compile.mjs` and commit contracts/artifacts/"
        )
        assert art["compiler"]["settings"] == {"evmVersion": "paris", "optimizer": {"enabled": True, "runs": 200}}


def test_test_token_artifact_is_deployable() -> None:
    art = json.loads((ARTIFACTS / "TestToken.json").read_text())
    assert art["bytecode"].startswith("0x60") and len(art["bytecode"]) > 1000
    names = {e.get("name") for e in art["abi"]}
    assert {"mint", "transfer", "transferFrom", "approve", "decimals", "Transfer", "Approval"} <= names


def test_options_artifacts_are_deployable() -> None:
    market = json.loads((ARTIFACTS / "OptionsMarket.json").read_text())
    names = {e.get("name") for e in market["abi"]}
    assert {"createSeries", "write", "writeAndSell", "settle", "redeem", "releaseCollateral", "getSeries",
            "SeriesCreated", "Written", "Settled", "Redeemed", "CollateralReleased"} <= names
    token = json.loads((ARTIFACTS / "OptionToken.json").read_text())
    assert {"mint", "burn", "market", "seriesId", "Transfer"} <= {e.get("name") for e in token["abi"]}
    # the market deploys OptionTokens itself: their creation code is inside the market's
    assert token["bytecode"][2:200] in market["bytecode"]
    # contracts/test/ is compiled too (flat artifact names); interfaces and abstract contracts get none
    assert (ARTIFACTS / "ReentrantToken.json").is_file()
    assert not {"ReentrancyGuard.json", "SafeTransfer.json", "IERC20Minimal.json"} & {p.name for p in ARTIFACTS.iterdir()}


def test_recompiling_reproduces_the_committed_artifacts_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    res = _compile("--out", str(out))
    assert res.returncode == 0, res.stderr
    fresh = {p.name: p.read_bytes() for p in out.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in ARTIFACTS.glob("*.json")}
    assert sorted(fresh) == sorted(committed), "artifact set differs; run `node contracts/compile.mjs`"
    for name, data in fresh.items():
        assert committed[name] == data, f"contracts/artifacts/{name} is stale; run `node contracts/compile.mjs`"


def test_check_mode_passes_on_the_committed_artifacts() -> None:
    res = _compile("--check")
    assert res.returncode == 0, res.stderr
    assert "match the sources" in res.stdout


def test_check_mode_catches_a_stale_and_an_orphan_artifact(tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS, out)
    token = out / "TestToken.json"
    token.write_text(token.read_text().replace('"bytecode": "0x60', '"bytecode": "0x61', 1))
    (out / "Gone.json").write_text("{}\n")
    res = _compile("--check", "--out", str(out))
    assert res.returncode == 1
    assert "differs" in res.stderr and "TestToken.json" in res.stderr
    assert "stale (no source)" in res.stderr and "Gone.json" in res.stderr
