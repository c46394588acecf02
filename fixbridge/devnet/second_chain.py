"""A second devnet chain: another anvil with its own chain id and the same venues, so one
session can trade on two chains in one run. Its spec names everything with a `:<chain>` suffix
(tokens `WETH:devnet2`, instruments `WETH/USDC:devnet2`) so it merges with the first chain's."""
from __future__ import annotations

from pathlib import Path

from eth_utils import to_checksum_address

from fixbridge.devnet.deploy import LIQUIDITY, REPLACEMENT_POLICY_LINES, Deployment

SECOND_CHAIN = "devnet2"
SECOND_CHAIN_ID = 31338


def render_second_spec(dep: Deployment, chain: str = SECOND_CHAIN) -> str:
    q = lambda s: '"' + s + '"'  # noqa: E731
    sfx = f":{chain}"
    lines = [f"# Written by `fixbridge run`: the second devnet chain ({chain}), Uniswap V2 only.",
             f"[chains.{chain}]", f"chain_id = {dep.chain_id}", f"rpc_url = {q(dep.rpc_url)}", "devnet = true",
             *REPLACEMENT_POLICY_LINES, ""]
    for symbol, address in dep.tokens.items():
        lines += [f"[tokens.{q(symbol + sfx)}]", f"chain = {q(chain)}", f"address = {q(to_checksum_address(address))}",
                  f"decimals = {dep.decimals[symbol]}", ""]
    lines += [f"[venues.{q('uniswap_v2' + sfx)}]", 'kind = "uniswap_v2"', f"chain = {q(chain)}",
              f"router = {q(to_checksum_address(dep.router))}", f"factory = {q(to_checksum_address(dep.factory))}", ""]
    for key in LIQUIDITY:
        base, quote = key.split("/")
        lines += [f"[instruments.{q(key + sfx)}]", f"base = {q(base + sfx)}", f"quote = {q(quote + sfx)}",
                  f"venues = [{q('uniswap_v2' + sfx)}]", ""]
    return "\n".join(lines[:-1]) + "\n"


def write_second_spec(dep: Deployment, path: Path, chain: str = SECOND_CHAIN) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_second_spec(dep, chain))
