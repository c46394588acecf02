"""The embedded devnet: a local anvil chain with Uniswap V2 and V3, WETH, USDC and WBTC.

    from fixbridge.devnet import Anvil, deploy_devnet, write_spec

    with Anvil(port=0) as node:
        dep = deploy_devnet(node.rpc_url)   # same addresses on every fresh chain
        write_spec(dep, Path("specs/devnet.toml"))

`python -m fixbridge.devnet --port 8545 --spec specs/devnet.toml` does the same
and runs until Ctrl-C. Names are imported lazily, so `fixbridge.devnet.anvil`
does not pull in web3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Anvil": "anvil",
    "AnvilError": "anvil",
    "DEFAULT_MNEMONIC": "anvil",
    "anvil_binary": "anvil",
    "node_modules_dir": "anvil",
    "project_root": "anvil",
    "CANONICAL": "deploy",
    "DEFAULT_FUNDED": "deploy",
    "DEPLOYER_ADDRESS": "deploy",
    "DEPLOYER_KEY": "deploy",
    "Deployment": "deploy",
    "DeployError": "deploy",
    "deploy_devnet": "deploy",
    "load_artifact": "deploy",
    "load_own_artifact": "deploy",
    "render_spec": "deploy",
    "write_spec": "deploy",
    "V3_CANONICAL": "uniswap_v3",
    "V3Deployment": "uniswap_v3",
    "deploy_uniswap_v3": "uniswap_v3",
    "OPTIONS_MARKET": "options",
    "OPTION_SERIES": "options",
    "OptionSeries": "options",
    "OptionsDeployment": "options",
    "deploy_options": "options",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from fixbridge.devnet.anvil import DEFAULT_MNEMONIC, Anvil, AnvilError, anvil_binary, node_modules_dir, project_root
    from fixbridge.devnet.deploy import (
        CANONICAL,
        DEFAULT_FUNDED,
        DEPLOYER_ADDRESS,
        DEPLOYER_KEY,
        Deployment,
        DeployError,
        deploy_devnet,
        load_artifact,
        load_own_artifact,
        render_spec,
        write_spec,
    )
    from fixbridge.devnet.options import OPTION_SERIES, OPTIONS_MARKET, OptionsDeployment, OptionSeries, deploy_options
    from fixbridge.devnet.uniswap_v3 import V3_CANONICAL, V3Deployment, deploy_uniswap_v3


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fixbridge.devnet' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"fixbridge.devnet.{module}"), name)
    globals()[name] = value
    return value
