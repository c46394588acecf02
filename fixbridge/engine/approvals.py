"""Approvals, pipelined: an order whose wallet has not approved the venue's router (or not enough,
under the 'exact' policy) gets an approval transaction signed at the wallet's next nonce,
journaled (write-ahead) and sent, and its swap is signed right behind it at the nonce after —
no wait for the approval's receipt. The approval is then a tracked transaction like any swap
(flights.py: `InFlight.approves`): the confirmer settles it from its block's receipts, the
resender re-prices, rebroadcasts and sends it again. One approval in flight per wallet, token and
spender serves every order that needs no more than it grants."""
from __future__ import annotations

import threading

import structlog
from eth_utils import to_checksum_address

from fixbridge.chain.rpc import refresh_pin
from fixbridge.chain.submitter import BroadcastRejected
from fixbridge.config import Token
from fixbridge.engine.faults import crash_point
from fixbridge.engine.flights import ApprovalTerms, Attempt, InFlight, InFlightBook
from fixbridge.engine.heads import ChainHeads
from fixbridge.engine.journaling import WalletLease, WriteAhead
from fixbridge.engine.markets import MAX_UINT256, Markets, TradingWallet, approve_calldata
from fixbridge.engine.planning import Plan, PlanError, short_reason
from fixbridge.journal import Journal
from fixbridge.orders.model import Order, RejectReason
from fixbridge.orders.validation import Rejection

log = structlog.get_logger(__name__)

NEVER = 2**256  # an approval has no deadline
BARRIER_WAIT_S = 5.0  # the longest an approval waits for the broadcasts of the swaps signed before it
ZERO = "0x" + "00" * 20


def approved_by(data: bytes) -> tuple[str, int]:
    """(spender, amount) of an ERC-20 approve(address,uint256) call's data (markets.approve_calldata)."""
    if len(data) != 68 or data[:4] != approve_calldata(ZERO, 0)[:4]:
        raise ValueError("not an approve(address,uint256) call")
    return to_checksum_address(data[16:36]), int.from_bytes(data[36:68], "big")


class Approver:
    def __init__(self, journal: Journal, markets: Markets, book: InFlightBook, heads: ChainHeads,
                 write_ahead: WriteAhead, lease: WalletLease) -> None:
        self.journal, self.markets, self.book, self.heads = journal, markets, book, heads
        self.write_ahead, self.lease = write_ahead, lease

    def ensure(self, order: Order, plan: Plan, token: Token, spender: str, need: int, policy: str) -> InFlight | None:
        """What the order's swap must wait for: None when the allowance already covers `need` (the
        order's most plus what swaps in flight may take), else the approval in flight that grants
        it (one already sent, or one sent now). Raises PlanError when it cannot be granted."""
        w = plan.wallet
        pending = self.book.approval_pending(w, token.address, spender)
        if pending is not None and pending.approves is not None and pending.approves.amount >= need:
            self.journal.add_event(order.order_id, "approval", f"waits for the approval {pending.attempts[-1].tx_hash} "
                                   f"of {token.symbol} already in flight", detail={"tx_hash": pending.attempts[-1].tx_hash})
            return pending
        if pending is None:
            # The reads of this batch are pinned to one block: an approval mined since is not in
            # them. Read again at the head before granting a second one.
            refresh_pin(w.submitter.w3)
            if self.markets.allowance(w.chain, token.address, w.wallet.address, spender) >= need:
                return None
        amount = MAX_UINT256 if policy == "standing" else need
        return self._send(order, plan, token, spender, amount, policy)

    def _send(self, order: Order, plan: Plan, token: Token, spender: str, amount: int, policy: str) -> InFlight:
        w: TradingWallet = plan.wallet
        if self.lease.lost:  # an approval is a signature too: none without the wallet's lease
            raise PlanError(Rejection(RejectReason.OTHER, "Not sent: this bridge instance no longer holds its "
                                      f"wallet lease ({self.lease.lost})"))
        data = approve_calldata(spender, amount)
        unsent = False
        try:
            gas = w.submitter.simulate(token.address, data)
            sent = w.submitter.sign(token.address, data, gas)
            # Committed before it is sent (a non-swap transaction: flush and wait), then sent at
            # once, ahead of the swap that follows it (that one is broadcast after its own commit).
            # The swaps this worker signed before it go out on the broadcast lane after that same
            # commit: the approval waits for them, or the node would hold it as a future nonce and
            # the swap's simulation on its pending state would not see it.
            handed = threading.Event()
            self.journal.collect_after_commit("approval-barrier", None, lambda _: handed.set(), lane="broadcast")
            self.write_ahead.hook(order.order_id, "approve", w)(sent)
            if not handed.wait(BARRIER_WAIT_S):
                log.warning("earlier broadcasts not done; approval sent anyway", wallet=w.wallet.name)
            try:
                w.submitter.broadcast_new(sent)
                self.journal.set_tx_status(sent.signed.tx_hash, "broadcast", only_from=("signed",))
            except BroadcastRejected:
                raise
            except Exception:  # no answer: it is journaled, tracked, and sent again each tick
                unsent = True
        except BroadcastRejected as e:
            self.journal.set_tx_status(e.sent.signed.tx_hash, "failed")
            raise PlanError(Rejection(RejectReason.OTHER, f"Allowance for {token.symbol} cannot be granted: "
                                      f"the node refused the approval ({e.reason})"))
        except Exception as e:
            raise PlanError(Rejection(RejectReason.OTHER, f"Allowance for {token.symbol} cannot be granted: "
                                      f"{short_reason(e)}"))
        f = InFlight(order=order, plan=plan, wallet=w, nonce=sent.nonce, to=token.address, data=data,
                     gas_limit=sent.gas_limit, attempts=[Attempt.of(sent, "approve")],
                     sent_block=self.heads.head(w.chain), reserved=(token.address, 0), deadline=NEVER,
                     approves=ApprovalTerms(token, spender, amount, policy), unsent=unsent)
        self.book.track(f)
        crash_point("after_approval")
        self.journal.add_event(order.order_id, "approval", f"approval of {spender} for {token.symbol} ({policy}) sent: "
                               f"{f.attempts[0].tx_hash}, nonce {sent.nonce}; the swap follows without waiting",
                               detail={"tx_hash": f.attempts[0].tx_hash, "amount": str(amount), "nonce": sent.nonce})
        return f
