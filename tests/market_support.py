"""What the market tests share (importable as `market_support`): an outside trader on the devnet,
an anvil account that is none of the bridge's wallets, who swaps through the real routers and
adds or removes V3 liquidity through the real NonfungiblePositionManager; and the comparison of
the market state's quotes with the chain's own quoters (V2 Router02, V3 QuoterV2)."""
from __future__ import annotations

import random
import time
from decimal import Decimal

from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3Exception

from fixbridge.chain.rpc import NodeError
from fixbridge.fix.client import FixClient
from fixbridge.devnet.anvil import DEFAULT_MNEMONIC
from fixbridge.devnet.deploy import DEPLOYER_KEY, load_own_artifact
from fixbridge.devnet.uniswap_v3 import MAX_SQRT_RATIO, MIN_SQRT_RATIO, _v3_artifacts
from fixbridge.market.pools import NoQuote, PoolKey
from fixbridge.market.v3_math import sqrt_ratio_at_tick
from fixbridge.market.state import MarketState
from fixbridge.venues.base import Exact, SwapIntent

OUTSIDER_INDEX = 7  # anvil's account #7: no session's wallet (those are #1-#4)
FAR = 2**40
MAX = 2**256 - 1
E18, E6 = 10**18, 10**6


def _account(i: int):
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")


def outside_market(devnet):
    """(w3, venues, an Outsider funded with 500 WETH and 5M USDC and approved on both routers, the
    deployment): someone else who moves the devnet's market in a test."""
    from fixbridge.config.spec import load_spec
    from fixbridge.venues import build_venue
    spec = load_spec(devnet.spec_path)
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    venues = {name: build_venue(v, w3) for name, v in spec.venues.items()}
    o = Outsider(w3, devnet.deployment)
    o.fund(500 * 10**18, 5_000_000 * 10**6, [venues["uniswap_v2"].router, venues["uniswap_v3"].router])
    return w3, venues, o, devnet.deployment


class Outsider:
    """Someone else trading on the same pools: a funded anvil account, its own nonces."""

    def __init__(self, w3: Web3, deployment, index: int = OUTSIDER_INDEX) -> None:
        self.w3, self.dep = w3, deployment
        self.account = _account(index)
        self.address = self.account.address
        self.erc20 = w3.eth.contract(abi=load_own_artifact("TestToken")["abi"])
        self.npm = (None if deployment.v3 is None else  # a chain with V2 only (devnet2)
                    w3.eth.contract(address=deployment.v3.position_manager, abi=_v3_artifacts()["position_manager"]["abi"]))

    def send(self, to: str, data: bytes | str, value: int = 0, key=None) -> dict:
        acct = Account.from_key(key) if key else self.account
        call = {"from": acct.address, "to": to, "data": data, "value": value}
        gas = self.w3.eth.estimate_gas(call)
        # Half again over the estimate: a bridge swap mined between the estimate and this one can
        # make its storage writes dearer (a V2 swap ran out of gas at +25 % once).
        signed = acct.sign_transaction({**call, "gas": gas + gas // 2, "chainId": self.w3.eth.chain_id,
                                        "nonce": self.w3.eth.get_transaction_count(acct.address, "pending"),
                                        # not eth_gasPrice * 2: anvil suggests what recent blocks paid, so that doubles each time
                                        "gasPrice": self.w3.eth.get_block("latest")["baseFeePerGas"] * 2 + 10**9})
        tx = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.sent_at = time.time()  # automine: the block exists once the node took the transaction
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=10, poll_latency=0.02)
        assert receipt["status"] == 1, receipt
        return receipt

    def fund(self, weth: int, usdc: int, spenders: list[str]) -> None:
        """Wrap ETH into WETH, have the tokens' owner (anvil #0) mint it USDC, approve the spenders."""
        from eth_utils import function_signature_to_4byte_selector as sel
        self.send(self.dep.weth, sel("deposit()"), weth)
        self.send(self.dep.usdc, self.erc20.encode_abi("mint", [self.address, usdc]), key=DEPLOYER_KEY)
        for token in (self.dep.weth, self.dep.usdc):
            for spender in spenders:
                self.send(token, self.erc20.encode_abi("approve", [spender, MAX]))

    def swap(self, venue, token_in: str, token_out: str, amount_in: int, fee: int | None = None) -> dict:
        intent = SwapIntent(token_in, token_out, Exact.INPUT, amount_in, 1, self.address, FAR)
        call = venue.build_swap(intent, fee=fee) if fee is not None else venue.build_swap(intent)
        return self.send(call.to, call.data)

    def add_liquidity(self, pool: PoolKey, lower: int, upper: int, amount0: int, amount1: int) -> int:
        """A new position in [lower, upper); returns its NFT id."""
        params = (Web3.to_checksum_address(pool.token0), Web3.to_checksum_address(pool.token1), pool.fee, lower, upper,
                  amount0, amount1, 0, 0, self.address, FAR)
        receipt = self.send(self.npm.address, self.npm.encode_abi("mint", [params]))
        transfer = Web3.keccak(text="Transfer(address,address,uint256)")
        [log] = [lg for lg in receipt["logs"] if lg["address"] == self.npm.address and lg["topics"][0] == transfer]
        return int.from_bytes(log["topics"][3], "big")

    def remove_liquidity(self, token_id: int, fraction: tuple[int, int] = (1, 2)) -> None:
        liquidity = self.npm.functions.positions(token_id).call()[7]
        part = liquidity * fraction[0] // fraction[1]
        self.send(self.npm.address, self.npm.encode_abi("decreaseLiquidity", [(token_id, part, 0, 0, FAR)]))


def wait_for_block(state: MarketState, chain: str, w3: Web3, timeout: float = 10.0) -> int:
    """Until the market state is as of the chain's latest block."""
    want = w3.eth.block_number
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (state.block(chain) or 0) >= want:
            return want
        time.sleep(0.01)
    raise TimeoutError(f"market state at {state.block(chain)}, chain at {want}")


def chain_quote(venues: dict, key: PoolKey, token_in: str, exact: Exact, amount: int) -> tuple[int, int] | None:
    """The chain's own quoter for one pool: (amount, V3 sqrt price after or 0); None if it cannot."""
    token_out = key.token1 if token_in == key.token0 else key.token0
    venue = venues[key.venue]
    if key.kind == "uniswap_v2":
        try:
            return venue.quote(Web3.to_checksum_address(token_in), Web3.to_checksum_address(token_out), exact, amount), 0
        except (Web3Exception, ValueError, NodeError):  # a revert (anvil names a 0.6 division by zero 'InvalidFE')
            return None
    q = venue.quote_tier(Web3.to_checksum_address(token_in), Web3.to_checksum_address(token_out), exact, amount, key.fee)
    return None if q is None else (q.amount, q.sqrt_price_after)


def state_quote(state: MarketState, key: PoolKey, token_in: str, exact: Exact, amount: int) -> tuple[int, int] | None:
    try:
        if exact is Exact.INPUT:
            q = state.quote_exact_in(key.address, token_in, amount)
            if key.kind == "uniswap_v3" and q.amount_out == 0:
                return None  # the venue adapter takes QuoterV2's 0 as no quote
            return q.amount_out, q.sqrt_price_after
        q = state.quote_exact_out(key.address, token_in, amount)
        return q.amount_in, q.sqrt_price_after
    except NoQuote:
        return None


def sizes(rng: random.Random, top: int, n: int) -> list[int]:
    """n sizes spread log-uniformly over [1, top] base units, with the edges."""
    out = [1, top]
    while len(out) < n:
        out.append(max(1, int(top ** rng.random())))
    return out


def crossing_sizes(state: MarketState, key: PoolKey, token_in: str, exact: Exact) -> list[int]:
    """Sizes that take a V3 pool just past each initialized tick on the way (and 10 % further)."""
    if key.kind != "uniswap_v3":
        return []
    pool = state.pool(key.address)
    zero = token_in == key.token0
    out = []
    for t in pool.ticks:
        if (t > pool.tick) == zero or t == pool.tick:
            continue  # not on the way
        limit = sqrt_ratio_at_tick(t)
        try:
            q = pool.quote_exact_in(token_in, 10 ** 40, limit)
        except NoQuote:
            continue
        edge = q.amount_in if exact is Exact.INPUT else q.amount_out
        out += [edge + 1, edge * 11 // 10 + 1]
    return out


def compare_all(state: MarketState, venues: dict, rng: random.Random, n: int = 8) -> tuple[int, int]:
    """Every pool of the state, both directions, exact in and out: the state's quote is the
    chain's, bit for bit (or neither can quote). Returns how many quotes were compared, and how
    many of them crossed an initialized V3 tick."""
    seen, compared, crossing = set(), 0, 0
    for listing in state.listings.values():
        for key in listing.pools:
            if key.address in seen:
                continue
            seen.add(key.address)
            pool = state.pool(key.address)
            for token_in in (key.token0, key.token1):
                zero = token_in == key.token0
                if key.kind == "uniswap_v2":
                    reserve_in, reserve_out = (pool.reserve0, pool.reserve1) if zero else (pool.reserve1, pool.reserve0)
                else:  # a V3 pool's tokens: what it holds bounds every quote
                    reserve_in = reserve_out = 10 ** 30
                for exact, top in ((Exact.INPUT, reserve_in), (Exact.OUTPUT, reserve_out)):
                    for amount in sizes(rng, top, n) + crossing_sizes(state, key, token_in, exact):
                        want = chain_quote(venues, key, token_in, exact, amount)
                        got = state_quote(state, key, token_in, exact, amount)
                        if want is not None and want[1] in (MIN_SQRT_RATIO + 1, MAX_SQRT_RATIO - 1):
                            want = None  # QuoterV2 ran out of range: the venue takes it as no quote too
                        assert got == want, (key.label, key.address, token_in, exact, amount, got, want)
                        compared += want is not None
                        if want is not None and key.kind == "uniswap_v3":
                            q = (state.quote_exact_in if exact is Exact.INPUT else state.quote_exact_out)(
                                key.address, token_in, amount)
                            crossing += q.ticks_crossed > 0
    return compared, crossing


def compare_limits(state: MarketState, venues: dict) -> int:
    """V3 quotes with a price limit (what an IOC order passes): for each pool, direction and
    initialized tick on the way, the state's exact-input quote up to that tick's price equals
    QuoterV2's, amount out and price after. Returns how many were compared."""
    compared = 0
    for listing in state.listings.values():
        for key in listing.pools:
            if key.kind != "uniswap_v3":
                continue
            pool = state.pool(key.address)
            for token_in in (key.token0, key.token1):
                zero = token_in == key.token0
                token_out = key.token1 if zero else key.token0
                for t in pool.ticks:
                    if (t > pool.tick) == zero or t == pool.tick:
                        continue
                    limit = sqrt_ratio_at_tick(t)
                    amount = 10**30  # more than the pool can take before the limit
                    q = venues[key.venue].quote_tier(Web3.to_checksum_address(token_in), Web3.to_checksum_address(token_out),
                                                     Exact.INPUT, amount, key.fee, limit)
                    try:
                        mine = pool.quote_exact_in(token_in, amount, limit)
                        got = (mine.amount_out, mine.sqrt_price_after)
                    except NoQuote:
                        got = None
                    assert got == (None if q is None else (q.amount, q.sqrt_price_after)), (key.label, token_in, t)
                    compared += q is not None
    return compared


# ---- resting orders' tests: the price the outside account moves, and the reports that follow ----

def v2_price(chain, size: int = E18 // 100) -> Decimal:
    """What buying `size` WETH on the V2 pair costs now, USDC per WETH."""
    _, venues, _, dep = chain
    cost = venues["uniswap_v2"].quote(dep.usdc, dep.weth, Exact.OUTPUT, size)
    return Decimal(cost) / E6 / (Decimal(size) / E18)


def push_down(chain, below: Decimal) -> None:
    """The outside account sells WETH into the V2 pair until a small buy costs less than `below`."""
    _, venues, outsider, dep = chain
    for _ in range(30):
        if v2_price(chain) < below:
            return settle()
        outsider.swap(venues["uniswap_v2"], dep.weth, dep.usdc, 5 * E18)
    raise AssertionError("could not move the market")


def push_up(chain, above: Decimal) -> None:
    _, venues, outsider, dep = chain
    for _ in range(30):
        if v2_price(chain) > above:
            return settle()
        outsider.swap(venues["uniswap_v2"], dep.usdc, dep.weth, 15_000 * E6)
    raise AssertionError("could not move the market")


def settle() -> None:
    """Give the bridge's watcher and market feed the block just made (they poll every 50 ms when
    idle): the next order is then judged on the market as moved, not on the block before it."""
    time.sleep(0.3)


def next_report(client: FixClient, cl_ord_id: str, timeout: float = 30.0):
    while True:
        m = client.receive(timeout, "8")
        if m[11] == cl_ord_id:
            return m


def no_report(client: FixClient, seconds: float) -> None:
    try:
        m = client.receive(seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {m.raw}")
