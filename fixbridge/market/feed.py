"""MarketFeed: keeps MarketState in step with the chains. A BlockListener (it rides on the
chain's BlockWatcher): each block's logs of every pool in one eth_getLogs (by block hash, so a
block replaced meanwhile cannot be mixed in), applied in log order; a full reload after a reorg,
a gap, or a block whose logs could not be read.

The full load reads the pools' storage with eth_call at one block: getReserves (V2); slot0,
liquidity and every initialized tick (V3: the tickBitmap words over the whole tick range, then
ticks() of each set bit). Chosen over replaying Mint/Burn history because it costs the same on a
pool with years of history (a few batched round trips), and needs no archive of logs.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import structlog
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from fixbridge.chain.rpc import result, results
from fixbridge.config import Spec
from fixbridge.market.pools import V2_FEE, Pool, PoolKey, V2Pool, V3Pool
from fixbridge.market.state import BlockChange, Listing, MarketState, Trade
from fixbridge.market.v3_math import MAX_TICK, MIN_TICK
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import selector

log = structlog.get_logger(__name__)

SYNC = "0x" + keccak(text="Sync(uint112,uint112)").hex()
V2_SWAP = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
V3_SWAP = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
MINT = "0x" + keccak(text="Mint(address,address,int24,int24,uint128,uint256,uint256)").hex()
BURN = "0x" + keccak(text="Burn(address,int24,int24,uint128,uint256,uint256)").hex()
_ZERO = "0x" + "00" * 20


def _call(to: str, sig: str, types: list[str] | None = None, args: list | None = None) -> dict[str, Any]:
    return {"to": to, "data": "0x" + (selector(sig) + encode(types or [], args or [])).hex()}


def _int24(topic: str) -> int:
    v = int(topic, 16)
    return v - (1 << 256) if v >= 1 << 255 else v


def _address(topic: str) -> str:
    return "0x" + topic[-40:].lower()


class MarketFeed:
    def __init__(self, spec: Spec, w3: dict[str, Web3], state: MarketState) -> None:
        self.spec, self.w3, self.state = spec, w3, state
        self._keys: dict[str, dict[str, PoolKey]] = {}  # chain -> address -> key
        self._stale: set[str] = set()  # chains to reload at their next block
        self._lock = threading.Lock()   # a chain's load vs its blocks (one watcher per chain)
        self.follow: Callable[[], bool] = lambda: False  # set by the bridge: market data has subscribers

    # ---- start: find the pools, read them whole ---------------------------------------------
    def start(self) -> None:
        """Find every pool of the spec's instruments and load each chain's at its latest block."""
        listings = {}
        for chain in self.spec.chains:
            self._keys[chain] = {}
        for symbol, ins in self.spec.instruments.items():
            base, quote = self.spec.tokens[ins.base], self.spec.tokens[ins.quote]
            keys = [k for v in ins.venues for k in self._find_pools(v, base.address, quote.address)]
            for k in keys:
                self._keys[k.chain][k.address] = k
            listings[symbol] = Listing(symbol, base.chain, base.address.lower(), quote.address.lower(),
                                       base.decimals, quote.decimals, tuple(keys))
        self.state.list(listings)
        for chain in self.spec.chains:
            if self._keys[chain]:
                self.reload(chain)

    def _find_pools(self, venue_name: str, a: str, b: str) -> list[PoolKey]:
        v = self.spec.venues[venue_name]
        w3 = self.w3[v.chain]
        t0, t1 = sorted((a.lower(), b.lower()))
        args = [to_checksum_address(t0), to_checksum_address(t1)]
        if v.kind == "uniswap_v2":
            calls = [("eth_call", [_call(v.factory, "getPair(address,address)", ["address", "address"], args), "latest"])]
        else:
            calls = [("eth_call", [_call(v.factory, "getPool(address,address,uint24)", ["address", "address", "uint24"],
                                         args + [fee]), "latest"]) for fee in v.fee_tiers]
        found = []
        for i, out in enumerate(results(w3, calls)):
            address = "0x" + out[-40:].lower()
            if address == _ZERO:
                continue
            if v.kind == "uniswap_v2":
                found.append(PoolKey(venue_name, "uniswap_v2", v.chain, address, t0, t1, V2_FEE))
            else:
                fee = v.fee_tiers[i]
                spacing = decode(["int24"], bytes.fromhex(result(w3, "eth_call", [
                    _call(address, "tickSpacing()"), "latest"])[2:]))[0]
                found.append(PoolKey(venue_name, "uniswap_v3", v.chain, address, t0, t1, fee, spacing))
        return found

    def reload(self, chain: str, at: int | None = None) -> int:
        """Read every pool of the chain at block `at` (default: latest) and publish them."""
        w3 = self.w3[chain]
        with self._lock:
            n = at if at is not None else int(result(w3, "eth_blockNumber", []), 16)
            pools = {a: self._read(w3, k, hex(n)) for a, k in self._keys[chain].items()}
            self._stale.discard(chain)
            self.state.publish(chain, n, pools, BlockChange(chain, n, frozenset(pools), reloaded=True))
        log.info("market state loaded", chain=chain, block=n, pools=len(pools))
        return n

    def _read(self, w3: Web3, k: PoolKey, tag: str) -> Pool:
        if k.kind == "uniswap_v2":
            r0, r1, _ = decode(["uint112", "uint112", "uint32"],
                               bytes.fromhex(result(w3, "eth_call", [_call(k.address, "getReserves()"), tag])[2:]))
            return V2Pool(k, r0, r1)
        slot0, liq = results(w3, [("eth_call", [_call(k.address, "slot0()"), tag]),
                                  ("eth_call", [_call(k.address, "liquidity()"), tag])])
        sqrt_p, tick = decode(["uint160", "int24"], bytes.fromhex(slot0[2:])[:64])
        liquidity = int(liq, 16)
        words = range((MIN_TICK // k.spacing) >> 8, ((MAX_TICK // k.spacing) >> 8) + 1)
        answers = results(w3, [("eth_call", [_call(k.address, "tickBitmap(int16)", ["int16"], [w]), tag]) for w in words])
        ticks = [((w << 8) + bit) * k.spacing for w, a in zip(words, answers) if int(a, 16)
                 for bit in range(256) if int(a, 16) >> bit & 1]
        infos = results(w3, [("eth_call", [_call(k.address, "ticks(int24)", ["int24"], [t]), tag]) for t in ticks])
        net, gross = {}, {}
        for t, info in zip(ticks, infos):
            g, n = decode(["uint128", "int128"], bytes.fromhex(info[2:])[:64])
            gross[t], net[t] = g, n
        return V3Pool(k, sqrt_p, tick, liquidity, tuple(ticks), net, gross)

    # ---- BlockListener -----------------------------------------------------------------------
    def wanted(self) -> set[str]:
        return set()  # no receipts: the logs say everything

    def following(self) -> bool:
        """Someone waits for every block (market data subscribers): the watcher polls fast."""
        return self.follow()

    def on_block(self, chain: str, block: Any) -> None:
        if not self._keys.get(chain):
            return
        log.debug("market block", chain=chain, block=block.number, seen_at=time.time())  # bench/market_data.py reads it
        try:
            self._apply_block(chain, block.number, block.hash)
        except Exception as e:  # the node failed us: read the whole state again at the next block
            log.warning("market state not updated; reloading at the next block", chain=chain, block=block.number,
                        error=f"{type(e).__name__}: {e}"[:300])
            self._stale.add(chain)

    def on_reorg(self, chain: str, fork_number: int) -> None:
        if not self._keys.get(chain):
            return
        try:
            self.reload(chain, fork_number)  # the blocks above the fork follow, each from its logs
        except Exception as e:
            log.warning("market state reload after a reorg failed; again at the next block", chain=chain,
                        error=f"{type(e).__name__}: {e}"[:300])
            self._stale.add(chain)

    def on_receipts(self, chain: str, receipts: dict[str, dict]) -> None:
        pass

    def on_tick(self, chain: str) -> None:
        pass

    def on_outage(self, chain: str, error: Exception | None) -> None:
        if error is not None:
            self._stale.add(chain)  # blocks may pass unseen while the node is away

    def _apply_block(self, chain: str, number: int, block_hash: str) -> None:
        have = self.state.block(chain)
        if chain in self._stale or have is None or number > have + 1:
            self.reload(chain, number)  # a gap, or a state we no longer trust
            return
        if number <= have:
            return  # already in the state (loaded at this block or later)
        keys = self._keys[chain]
        logs = result(self.w3[chain], "eth_getLogs", [{"blockHash": block_hash, "address": list(keys)}])
        changed: dict[str, Pool] = {}
        trades: list[Trade] = []
        current = self.state.snapshot()
        for lg in logs or []:
            if lg.get("removed"):
                continue
            address = lg["address"].lower()
            pool = changed.get(address) or current.get(address)
            if pool is None:
                continue
            new, trade = self._apply_log(chain, pool, lg)
            if new is not pool:
                changed[address] = new
            if trade is not None:
                trades.append(trade)
        self.state.publish(chain, number, changed,
                           BlockChange(chain, number, frozenset(changed), tuple(trades)) if changed or trades else None)

    @staticmethod
    def _apply_log(chain: str, pool: Pool, lg: dict[str, Any]) -> tuple[Pool, Trade | None]:
        topics = [t.lower() for t in lg["topics"]]
        data = bytes.fromhex(lg["data"][2:])
        t0 = topics[0] if topics else ""

        def trade(a0: int, a1: int, sender: str, recipient: str) -> Trade:
            return Trade(chain, int(lg["blockNumber"], 16), lg["transactionHash"].lower(), int(lg["logIndex"], 16),
                         pool.key.address, a0, a1, sender, recipient)

        if isinstance(pool, V2Pool):
            if t0 == SYNC:
                r0, r1 = decode(["uint112", "uint112"], data)
                return pool.synced(r0, r1), None
            if t0 == V2_SWAP:
                in0, in1, out0, out1 = decode(["uint256"] * 4, data)
                return pool, trade(in0 - out0, in1 - out1, _address(topics[1]), _address(topics[2]))
            return pool, None
        if t0 == V3_SWAP:
            a0, a1, sqrt_p, liquidity, tick = decode(["int256", "int256", "uint160", "uint128", "int24"], data)
            return pool.swapped(sqrt_p, liquidity, tick), trade(a0, a1, _address(topics[1]), _address(topics[2]))
        if t0 == MINT:
            amount = decode(["address", "uint128", "uint256", "uint256"], data)[1]
            return pool.position_changed(_int24(topics[2]), _int24(topics[3]), amount), None
        if t0 == BURN:
            amount = decode(["uint128", "uint256", "uint256"], data)[0]
            return pool.position_changed(_int24(topics[2]), _int24(topics[3]), -amount), None
        return pool, None
