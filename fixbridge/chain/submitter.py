"""Sign, journal (write-ahead), broadcast, and wait for a receipt.

The journal hook is called with the signed raw transaction BEFORE it is broadcast: after a
crash the journal knows every transaction that may be on chain.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import structlog
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from fixbridge.chain.nonces import NonceBook
from fixbridge.chain.rpc import NodeError, batch_call, describe, latest_base_fee
from fixbridge.chain.wallet import SignedTx, Wallet
from fixbridge.venues.base import revert_reason

log = structlog.get_logger(__name__)

PRIORITY_FEE = Web3.to_wei(1, "gwei")
# Gas limit = estimate + 25% + a fixed margin: the first swap in a new block also writes the
# pool's price accumulators (tens of thousands of gas the estimate, taken a block earlier, misses).
GAS_HEADROOM_PCT = 25
GAS_MARGIN = 50_000


class WouldRevert(Exception):
    """Simulation says the call reverts; nothing was signed or sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stopping(Exception):
    """The bridge is stopping: a wait for the chain was given up, the journal keeps what was sent
    and the next start resumes from there."""


class BroadcastRejected(Exception):
    """The node refused a signed transaction; it was never in any mempool."""

    def __init__(self, sent: "SentTx", reason: str) -> None:
        super().__init__(reason)
        self.sent, self.reason = sent, reason


@dataclass(frozen=True)
class NoAnswer:
    """A broadcast whose answer was lost (connection reset, timeout, HTTP 5xx after the retries):
    the node may hold the transaction or not. It is neither accepted nor refused."""
    error: str


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    logs: list[dict[str, Any]]
    revert_reason: str | None = None

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


@dataclass(frozen=True)
class SentTx:
    signed: SignedTx
    nonce: int
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


# (signed tx, nonce, gas_limit, max_fee, priority_fee) -> None; must persist before returning.
WriteAhead = Callable[[SentTx], None]


class Submitter:
    def __init__(self, w3: Web3, wallet: Wallet, nonces: NonceBook, poll_seconds: float = 0.05) -> None:
        self.w3, self.wallet, self.nonces, self.poll = w3, wallet, nonces, poll_seconds
        self._base_fee, self._base_fee_at = 0, -1.0

    def simulate(self, to: str, data: bytes, value: int = 0) -> int:
        """Gas estimate of the call from our wallet against the pending state (our own transactions
        still in flight included); raises WouldRevert with the reason, or NodeError naming what the
        node answered when that is not a revert (HTTP 429/5xx, a timeout, insufficient funds for gas …)."""
        try:
            return int(self.w3.eth.estimate_gas({"from": self.wallet.address, "to": to, "data": data, "value": value},
                                                "pending"))
        except ContractLogicError as e:
            raise WouldRevert(_reason_of(e)) from None
        except Exception as e:
            raise NodeError(f"eth_estimateGas failed: {describe(e)}") from e

    def sign(self, to: str, data: bytes, gas_estimate: int, *, nonce: int | None = None, value: int = 0,
             max_fee: int | None = None, tip: int | None = None, gas_limit: int | None = None) -> SentTx:
        """Sign a call with the next nonce (or a given one, for a replacement). Nothing is sent."""
        if max_fee is None:
            base_fee = self.base_fee()
            tip = PRIORITY_FEE if tip is None else tip
            max_fee = 2 * base_fee + tip
        tip = PRIORITY_FEE if tip is None else tip
        gas_limit = gas_limit or gas_estimate + gas_estimate * GAS_HEADROOM_PCT // 100 + GAS_MARGIN
        nonce = self.nonces.take() if nonce is None else nonce
        signed = self.wallet.sign({
            "to": to, "data": data, "value": value, "nonce": nonce, "gas": gas_limit,
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2,
        })
        return SentTx(signed, nonce, gas_limit, max_fee, tip)

    def base_fee(self) -> int:
        """The latest block's base fee, read at most every 0.5 s: a fee cap of twice it plus the tip
        absorbs a block's change, so a slightly old reading is safe."""
        now = time.monotonic()
        if now - self._base_fee_at > 0.5:
            self._base_fee = latest_base_fee(self.w3)
            self._base_fee_at = now
        return self._base_fee

    def send(self, to: str, data: bytes, gas_estimate: int, write_ahead: WriteAhead, value: int = 0) -> SentTx:
        """Sign, journal (write_ahead), broadcast."""
        sent = self.sign(to, data, gas_estimate, value=value)
        write_ahead(sent)
        self.broadcast_new(sent)
        return sent

    def broadcast_new(self, sent: SentTx) -> None:
        try:
            self.broadcast(sent.signed.raw)
        except (ValueError, Web3RPCError) as e:
            # The node refused it outright (e.g. no ETH for gas): it can never be mined, so its
            # nonce goes back to the book and the caller journals it as failed.
            self.nonces.give_back(sent.nonce)
            raise BroadcastRejected(sent, str(e)) from None

    def broadcast_many(self, sents: list[SentTx]) -> list[str | NoAnswer | None]:
        """Broadcast signed transactions in one JSON-RPC batch (one HTTP round trip), in the order
        given: the node's refusal for each, None where it took it (or already had it), NoAnswer
        where the answer was lost (the node may have it: never a refusal). Nonces are not given back
        here: a refusal of a retried broadcast may follow a first try that arrived (the caller asks)."""
        return self.broadcast_raws([s.signed.raw for s in sents])

    def broadcast_raws(self, raws: list[str]) -> list[str | NoAnswer | None]:
        """broadcast_many for signed bytes (a journaled transaction sent again)."""
        try:
            res = batch_call(self.w3, [("eth_sendRawTransaction", [raw]) for raw in raws])
        except Exception as e:  # no answer after the retries: whether anything arrived is unknown
            log.warning("batch broadcast got no answer; sent again later", error=str(e)[:200], count=len(raws))
            return [NoAnswer(describe(e)) for _ in raws]
        out: list[str | NoAnswer | None] = []
        for r in res:
            err = r.get("error")
            msg = None if err is None else str(err.get("message", err) if isinstance(err, dict) else err)
            if msg is not None and ("already" in msg.lower() or "known" in msg.lower()):
                msg = None
            out.append(msg)
        return out

    def holds(self, tx_hash: str) -> bool | None:
        """Whether the node has the transaction (pending or mined); None: it cannot say now."""
        try:
            return self.w3.eth.get_transaction(tx_hash) is not None
        except TransactionNotFound:
            return False
        except Exception:
            return None

    def broadcast(self, raw: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except (ValueError, Web3RPCError) as e:
            # Already known (a rebroadcast of a journaled transaction) is not an error.
            if "already" not in str(e).lower() and "known" not in str(e).lower():
                raise

    def wait_receipt(self, tx_hash: str, timeout: float = 120.0, resend: str | None = None,
                     stop: "threading.Event | None" = None) -> Receipt:
        """Poll for the receipt: first after 1 ms, backing off to poll_seconds. A node that fails
        meanwhile is asked again until the timeout; `resend` (the signed bytes) is broadcast again
        every second while the node does not know the transaction (its first broadcast got no answer).
        Raises Stopping once `stop` is set."""
        deadline = time.monotonic() + timeout
        pause, resent_at, error = 0.001, time.monotonic(), None
        while True:
            try:
                r = self.w3.eth.get_transaction_receipt(tx_hash)
                if r is not None and r.get("blockNumber") is not None:
                    return self.to_receipt(r)
            except TransactionNotFound:
                pass
            except Exception as e:  # the node failing is not the transaction failing: ask again
                error = describe(e)
            if resend is not None and time.monotonic() - resent_at > 1.0:
                resent_at = time.monotonic()
                try:
                    self.w3.eth.get_transaction(tx_hash)
                except TransactionNotFound:
                    try:
                        self.broadcast(resend)
                    except Exception as e:
                        error = describe(e)
                except Exception as e:
                    error = describe(e)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no receipt for {tx_hash} after {timeout:.0f}s" + (f" (node: {error})" if error else ""))
            if stop is not None:
                if stop.wait(pause):
                    raise Stopping(f"stopped while waiting for the receipt of {tx_hash}")
            else:
                time.sleep(pause)
            pause = min(pause * 2, self.poll)

    def receipt_from_json(self, r: dict) -> Receipt:
        """A raw JSON-RPC receipt (hex strings), as the block watcher fetches them."""
        status = int(r["status"], 16)
        block = int(r["blockNumber"], 16)
        return Receipt(
            tx_hash=r["transactionHash"].lower(), block_number=block, block_hash=r["blockHash"].lower(),
            status=status, gas_used=int(r["gasUsed"], 16), effective_gas_price=int(r["effectiveGasPrice"], 16),
            revert_reason=self.replay_reason(r["transactionHash"], block) if status == 0 else None,
            logs=[{"address": l["address"], "topics": [bytes.fromhex(t[2:]) for t in l["topics"]],
                   "data": bytes.fromhex(l["data"][2:]), "logIndex": int(l["logIndex"], 16)} for l in r["logs"]],
        )

    def to_receipt(self, r: Any) -> Receipt:
        reason = None
        if r["status"] == 0:
            reason = self.replay_reason(r["transactionHash"], r["blockNumber"])
        return Receipt(
            tx_hash="0x" + bytes(r["transactionHash"]).hex(), block_number=int(r["blockNumber"]),
            block_hash="0x" + bytes(r["blockHash"]).hex(), status=int(r["status"]), gas_used=int(r["gasUsed"]),
            effective_gas_price=int(r["effectiveGasPrice"]), revert_reason=reason,
            logs=[{"address": l["address"], "topics": [bytes(t) for t in l["topics"]], "data": bytes(l["data"]),
                   "logIndex": int(l["logIndex"])} for l in r["logs"]],
        )

    def replay_reason(self, tx_hash: Any, block_number: int) -> str:
        """Why a mined transaction reverted. A call trace gives the exact revert data where the node
        offers debug_traceTransaction; otherwise replay the call on the parent block's state (which
        misses what earlier transactions in the same block changed)."""
        h = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
        try:
            trace = self.w3.provider.make_request("debug_traceTransaction", [h, {"tracer": "callTracer"}])
            out = (trace.get("result") or {}).get("output")
            if out and len(out) > 10:
                return revert_reason(out)
        except Exception:
            pass
        tx = self.w3.eth.get_transaction(tx_hash)
        try:
            self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"],
                              "gas": tx["gas"]}, block_number - 1)
        except ContractLogicError as e:
            return _reason_of(e)
        except Exception as e:  # the node may not keep old state; the status still says it reverted
            return f"reverted (reason unavailable: {type(e).__name__})"
        return "reverted (reason unavailable)"


def nonce_used(refusal: str) -> bool:
    """The node refused a transaction because its nonce is already used on chain."""
    return "nonce too low" in refusal.lower()


def _reason_of(e: ContractLogicError) -> str:
    if e.data and isinstance(e.data, str) and e.data.startswith("0x") and len(e.data) > 10:
        try:
            return revert_reason(e.data)
        except Exception:
            pass
    msg = str(e.message if hasattr(e, "message") and e.message else e)
    return msg.removeprefix("execution reverted: ").removeprefix("execution reverted")or "reverted"
