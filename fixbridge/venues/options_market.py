"""The project's OptionsMarket contract (contracts/OptionsMarket.sol): what writing a series locks,
the one-transaction sell-to-open (mint, then sell through a Uniswap V2 router), and settlement.
Knows the contract's ABI and nothing about FIX."""
from __future__ import annotations

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from fixbridge.chain.rpc import eth_call
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import Call, selector

SETTLED_TOPIC = "0x" + keccak(text="Settled(uint256,uint256,uint256)").hex()


def _data(sig: str, types: list[str], args: list) -> bytes:
    return selector(sig) + encode(types, args)


class OptionsMarketClient:
    def __init__(self, w3: Web3, address: str) -> None:
        self.w3, self.address = w3, to_checksum_address(address)

    def _read(self, sig: str, types: list[str], args: list, out: list[str]):
        return decode(out, eth_call(self.w3, self.address, _data(sig, types, args)))

    def collateral(self, series_id: int, amount: int) -> tuple[str, int]:
        """(token, base units) that writing `amount` option units locks, rounded up by the contract."""
        (token,) = self._read("collateralAsset(uint256)", ["uint256"], [series_id], ["address"])
        (units,) = self._read("collateralFor(uint256,uint256)", ["uint256", "uint256"], [series_id, amount], ["uint256"])
        return to_checksum_address(token), units

    def write_and_sell(self, series_id: int, amount: int, router: str, min_out: int, deadline: int) -> Call:
        """Sell-to-open in one transaction; the proceeds go straight to the writer."""
        data = _data("writeAndSell(uint256,uint256,address,uint256,uint256)",
                     ["uint256", "uint256", "address", "uint256", "uint256"],
                     [series_id, amount, router, min_out, deadline])
        return Call(to=self.address, data=data, spender=self.address)

    def redeem(self, series_id: int, amount: int) -> Call:
        return Call(to=self.address, data=_data("redeem(uint256,uint256)", ["uint256", "uint256"], [series_id, amount]),
                    spender=self.address)

    def release_collateral(self, series_id: int) -> Call:
        return Call(to=self.address, data=_data("releaseCollateral(uint256)", ["uint256"], [series_id]),
                    spender=self.address)

    def written(self, series_id: int, writer: str) -> int:
        return self._read("written(uint256,address)", ["uint256", "address"], [series_id, writer], ["uint256"])[0]

    def payout_for(self, series_id: int, amount: int) -> int:
        return self._read("payoutFor(uint256,uint256)", ["uint256", "uint256"], [series_id, amount], ["uint256"])[0]

    def settlements(self, from_block: int, to_block: int) -> list[tuple[int, int, int]]:
        """(series id, settlement price, payout per token) of each Settled event in the range."""
        logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": from_block, "toBlock": to_block,
                                     "topics": [SETTLED_TOPIC]})
        out = []
        for log in logs:
            series = int.from_bytes(bytes(log["topics"][1]), "big")
            price, per_token = decode(["uint256", "uint256"], bytes(log["data"]))
            out.append((series, price, per_token))
        return out
