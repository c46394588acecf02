"""One way to reach a node: a Web3 over HTTP, trimmed for a hot path that signs its own
transactions. web3's default 'validation' middleware asks the node for eth_chainId around every
call (three HTTP requests per eth_call); the bridge checks the chain id once at start instead.
ENS resolution is dropped too: every address the bridge uses comes from a spec, never a name."""
from __future__ import annotations

from web3 import Web3


def connect(rpc_url: str, timeout: float = 15.0) -> Web3:
    # No request caching: web3's cache keeps blocks by number, which a reorg makes wrong.
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    for name in ("validation", "ens_name_to_address"):
        try:
            w3.middleware_onion.remove(name)
        except ValueError:
            pass
    return w3
