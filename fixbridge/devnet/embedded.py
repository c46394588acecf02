"""The embedded devnet of `fixbridge run`: two anvil chains with the venues, whose state lives
under the state directory, so that stop-and-start continues the same chains (and the journal
beside them stays true). The first start deploys and funds; later starts load the chains and find
the venues where the specs say (`make clean` starts over)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fixbridge.devnet.anvil import Anvil
from fixbridge.devnet.deploy import Deployment, deploy_devnet, write_spec
from fixbridge.devnet.second_chain import SECOND_CHAIN, SECOND_CHAIN_ID, write_second_spec

FIRST_CHAIN = "devnet"
FIRST_CHAIN_ID = 31337


@dataclass
class EmbeddedDevnet:
    nodes: list[Anvil] = field(default_factory=list)
    resumed: list[bool] = field(default_factory=list)         # per chain: its state was loaded
    deployments: list[Deployment | None] = field(default_factory=list)  # per chain: None when resumed

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def state_file(state_dir: Path, chain: str) -> Path:
    return state_dir / "devnet" / f"{chain}.json"


def start_embedded_devnet(state_dir: Path, specs: list[Path], port: int, block_time: float | None) -> EmbeddedDevnet:
    """Start (or resume) both chains; the specs are written on a first start. Raises AnvilError
    or DeployError; whatever started is stopped first."""
    net = EmbeddedDevnet()
    chains = [(FIRST_CHAIN, FIRST_CHAIN_ID, write_spec), (SECOND_CHAIN, SECOND_CHAIN_ID, write_second_spec)]
    try:
        for i, ((chain, chain_id, write), spec) in enumerate(zip(chains, specs)):
            state = state_file(state_dir, chain)
            state.parent.mkdir(parents=True, exist_ok=True)
            had_state = state.is_file() and state.stat().st_size > 0
            node = Anvil("127.0.0.1", port + i, chain_id=chain_id, block_time=block_time,
                         log_path=state_dir / f"anvil{'' if i == 0 else i + 1}.log", state_path=state).start()
            net.nodes.append(node)
            if had_state and spec.is_file() and _venues_deployed(node, spec):
                _point_spec_at(spec, node.rpc_url)
                net.resumed.append(True)
                net.deployments.append(None)
                continue
            dep = deploy_devnet(node.rpc_url)
            write(dep, spec)
            net.resumed.append(False)
            net.deployments.append(dep)
    except BaseException:
        net.stop()
        raise
    return net


_ADDRESS = re.compile(r'^(?:router|factory|quoter|address)\s*=\s*"(0x[0-9a-fA-F]{40})"', re.M)


def _venues_deployed(node: Anvil, spec: Path) -> bool:
    """Every contract address of the written spec has code on the loaded chain."""
    addresses = _ADDRESS.findall(spec.read_text())
    return bool(addresses) and all(node.rpc("eth_getCode", [a, "latest"]) not in ("0x", "0x0", None) for a in addresses)


def _point_spec_at(spec: Path, rpc_url: str) -> None:
    """The chain is the same; only its port may have changed (--devnet-port)."""
    text = spec.read_text()
    new = re.sub(r'^rpc_url\s*=\s*"[^"]*"', f'rpc_url = "{rpc_url}"', text, count=1, flags=re.M)
    if new != text:
        spec.write_text(new)
