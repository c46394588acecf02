"""Venues: one module per protocol. `build_venue` picks the adapter for a spec entry's kind."""
from __future__ import annotations

from web3 import Web3

from fixbridge.config.spec import Venue as VenueSpec
from fixbridge.venues.base import Venue


def build_venue(spec: VenueSpec, w3: Web3) -> Venue:
    if spec.kind == "uniswap_v2":
        from fixbridge.venues.uniswap_v2 import UniswapV2
        return UniswapV2(spec.name, w3, spec.router, spec.factory)
    if spec.kind == "uniswap_v3":
        from fixbridge.venues.uniswap_v3 import UniswapV3
        return UniswapV3(spec.name, w3, router=spec.router, factory=spec.factory, quoter=spec.quoter,
                         fee_tiers=spec.fee_tiers)
    raise ValueError(f"no adapter for venue kind {spec.kind!r}")
