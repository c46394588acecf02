"""The journal: the bridge's SQL system of record, written before things happen (write-ahead).

``Journal(url)`` opens SQLite (``sqlite:///var/journal.db``) or PostgreSQL
(``postgresql+psycopg://user@host:5432/db``), migrates the schema to the newest Alembic revision
and then answers the calls below. One ``Journal`` is shared by every thread of the bridge.

It is a façade: the group-commit core (core.py) and one record store per part of the record,
each given the core in its constructor and owning its tables:

| store | tables |
|---|---|
| ``order_records`` (orders.py) | orders, order_events |
| ``resting_records`` (resting.py) | orders' resting columns, order_cl_ord_ids (ClOrdIDs amends retired) |
| ``tx_records`` (transactions.py) | transactions, receipts, wallet_nonces |
| ``fill_records`` (fills.py) | fills, approvals |
| ``fix_records`` (fix_messages.py) | fix_messages |
| ``security_records`` (security.py) | trading_halts, logon_attempts, security_events |
| ``lease_records`` (leases.py) | leases |
| ``ops_records`` (operations.py) | reconciliation_runs |
| ``chains`` (chains.py) | chain_identities |
| ``movements`` (movements.py) | movements (deposits, withdrawals) |

The engine, the FIX edge and the tools call the flat names below (``journal.insert_order``), each
bound to its store's method once, here, so a call costs no more than before the split.

Nothing ORM leaks out: reads return the frozen dataclasses of rows.py. Numbers are exact
(``Decimal`` quantities, ``int`` base units), timestamps are aware UTC datetimes.
"""
from __future__ import annotations

from .chains import ChainRecords
from .core import (
    MIGRATIONS_DIR,
    JournalCore,
    alembic_config,
    create_journal_engine,
    upgrade_to_head,
)
from .fills import FillRecords
from .fix_messages import FixMessageRecords
from .leases import LeaseRecords
from .movements import MovementRecords
from .operations import OperationsRecords
from .orders import OrderRecords
from .resting import Replacement, RestingRecords
from .rows import (
    ApprovalRow,
    DuplicateClOrdID,
    EventRow,
    FillRow,
    FixMessageRow,
    JournalError,
    OrderRow,
    ReceiptRow,
    TxRow,
    UnknownOrder,
    UnknownTransaction,
)
from .security import SecurityRecords
from .transactions import TransactionRecords

__all__ = [
    "Journal",
    "JournalError",
    "DuplicateClOrdID",
    "UnknownOrder",
    "UnknownTransaction",
    "OrderRow",
    "EventRow",
    "TxRow",
    "FillRow",
    "FixMessageRow",
    "ReceiptRow",
    "ApprovalRow",
    "Replacement",
    "MIGRATIONS_DIR",
    "alembic_config",
    "create_journal_engine",
    "upgrade_to_head",
]


class Journal(JournalCore):
    """The write-ahead journal: the core's group commit and sessions, and the record stores."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.resting_records = resting = RestingRecords(self)
        self.order_records = orders = OrderRecords(self, resting)
        self.tx_records = txs = TransactionRecords(self)
        self.fill_records = fills = FillRecords(self)
        self.fix_records = fix = FixMessageRecords(self)
        self.security_records = security = SecurityRecords(self)
        self.lease_records = leases = LeaseRecords(self)
        self.ops_records = ops = OperationsRecords(self)
        self.chains = ChainRecords(self)
        self.movements = MovementRecords(self)

        # orders and their events
        self.insert_order = orders.insert_order
        self.transition = orders.transition
        self.add_event = orders.add_event
        self.get_order = orders.get_order
        self.get_orders = orders.get_orders
        self.find_order = orders.find_order
        self.open_orders = orders.open_orders
        self.unreported_acks = orders.unreported_acks
        self.unreported_terminal_orders = orders.unreported_terminal_orders
        self.events = orders.events
        # resting orders and their amends
        self.resting_orders = resting.resting_orders
        self.set_resting = resting.set_resting
        self.replace_order = resting.replace
        # transactions, receipts, nonces
        self.record_signed_tx = txs.record_signed_tx
        self.set_tx_status = txs.set_tx_status
        self.set_tx_status_many = txs.set_tx_status_many
        self.record_receipt = txs.record_receipt
        self.receipt = txs.receipt
        self.get_transaction = txs.get_transaction
        self.transactions_for = txs.transactions_for
        self.pending_transactions = txs.pending_transactions
        self.transactions_at = txs.transactions_at
        self.next_nonce = txs.next_nonce
        # fills and approvals
        self.record_fill = fills.record_fill
        self.fills_for = fills.fills_for
        self.bust_fills = fills.bust_fills
        self.record_approval = fills.record_approval
        self.approvals_for = fills.approvals_for
        # FIX messages
        self.record_fix_message = fix.record_fix_message
        self.last_inbound_seq_num = fix.last_inbound_seq_num
        self.fix_messages = fix.fix_messages
        # halts, logons, security events, risk's reads
        self.halt = security.halt
        self.resume = security.resume
        self.active_halts = security.active_halts
        self.halt_history = security.halt_history
        self.record_logon_attempt = security.record_logon_attempt
        self.logon_failures_since_success = security.logon_failures_since_success
        self.logon_attempts = security.logon_attempts
        self.record_security_event = security.record_security_event
        self.last_security_event = security.last_security_event
        self.security_events = security.security_events
        self.session_notional_since = security.session_notional_since
        self.open_orders_ahead = security.open_orders_ahead
        # leases among instances
        self.claim = leases.claim
        self.release = leases.release
        self.leases = leases.leases
        # operations
        self.record_reconciliation_run = ops.record_reconciliation_run
        self.reconciliation_runs = ops.reconciliation_runs
