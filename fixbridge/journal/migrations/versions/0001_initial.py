"""Initial journal schema.

Tables: fix_messages, orders, order_events, transactions, receipts, fills, approvals, wallet_nonces.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Column types are spelled out here (not imported from fixbridge.journal.schema) so this revision
keeps meaning the same thing if the Python types change later:

- decimals:      NUMERIC on PostgreSQL, TEXT on SQLite (plain positional text, no exponent)
- big integers:  NUMERIC(78,0) on PostgreSQL, TEXT on SQLite (base-10 digits)
- timestamps:    TIMESTAMP WITH TIME ZONE on PostgreSQL, TEXT on SQLite
                 ('YYYY-MM-DD HH:MM:SS.ffffff+00:00', always UTC, fixed width)
- JSON:          TEXT on both
- surrogate ids: BIGINT identity (BIGSERIAL) on PostgreSQL, INTEGER (rowid) on SQLite
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False)


def _decimal() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.NUMERIC(), "postgresql")


def _units() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.NUMERIC(78, 0), "postgresql")


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def _json() -> sa.types.TypeEngine:
    return sa.Text()


def upgrade() -> None:
    op.create_table(
        "fix_messages",
        _id(),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("msg_type", sa.String(), nullable=False),
        sa.Column("seq_num", sa.BigInteger(), nullable=True),
        sa.Column("cl_ord_id", sa.String(), nullable=True),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("exec_id", sa.String(), nullable=True),
        sa.Column("exec_type", sa.String(), nullable=True),
        sa.Column("ord_status", sa.String(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_fix_messages_direction"),
        sa.PrimaryKeyConstraint("id", name="pk_fix_messages"),
    )
    op.create_index("ix_fix_messages_ts", "fix_messages", ["ts"])
    op.create_index("ix_fix_messages_session_id_ts", "fix_messages", ["session_id", "ts"])
    op.create_index("ix_fix_messages_cl_ord_id", "fix_messages", ["cl_ord_id"])
    op.create_index("ix_fix_messages_order_id", "fix_messages", ["order_id"])

    op.create_table(
        "orders",
        _id(),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("cl_ord_id", sa.String(), nullable=False),
        sa.Column("account", sa.String(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("ord_type", sa.String(), nullable=False),
        sa.Column("time_in_force", sa.String(), nullable=False),
        sa.Column("order_qty", _decimal(), nullable=True),
        sa.Column("cash_order_qty", _decimal(), nullable=True),
        sa.Column("price", _decimal(), nullable=True),
        sa.Column("expire_time", _ts(), nullable=True),
        sa.Column("ex_destination", sa.String(), nullable=True),
        sa.Column("wallet", sa.String(), nullable=True),
        sa.Column("venue", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("cum_qty", _decimal(), nullable=False),
        sa.Column("leaves_qty", _decimal(), nullable=False),
        sa.Column("avg_px", _decimal(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("rej_reason", sa.Integer(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("order_id", name="uq_orders_order_id"),
        sa.UniqueConstraint("session_id", "cl_ord_id", name="uq_orders_session_id_cl_ord_id"),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])

    op.create_table(
        "order_events",
        _id(),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(), nullable=True),
        sa.Column("to_status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", _json(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('transition', 'quote', 'risk', 'approval', 'tx', 'note', 'reorg')", name="ck_order_events_kind"
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_order_events_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
    )
    op.create_index("ix_order_events_order_id_id", "order_events", ["order_id", "id"])
    op.create_index("ix_order_events_ts", "order_events", ["ts"])

    op.create_table(
        "transactions",
        _id(),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.Text(), nullable=False),
        sa.Column("gas_limit", _units(), nullable=False),
        sa.Column("max_fee_per_gas", _units(), nullable=False),
        sa.Column("max_priority_fee_per_gas", _units(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint("purpose IN ('swap', 'approve', 'cancel', 'gap_fill', 'redeem', 'release')", name="ck_transactions_purpose"),
        sa.CheckConstraint(
            "status IN ('signed', 'broadcast', 'mined', 'reverted', 'dropped', 'failed', 'replaced')",
            name="ck_transactions_status",
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_transactions_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_transactions"),
        sa.UniqueConstraint("tx_hash", name="uq_transactions_tx_hash"),
    )
    op.create_index("ix_transactions_chain_id_wallet_nonce", "transactions", ["chain_id", "wallet", "nonce"])
    op.create_index("ix_transactions_order_id", "transactions", ["order_id"])
    op.create_index("ix_transactions_status", "transactions", ["status"])

    op.create_table(
        "receipts",
        _id(),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=False),
        sa.Column("effective_gas_price", _units(), nullable=False),
        sa.Column("revert_reason", sa.Text(), nullable=True),
        sa.Column("logs", _json(), nullable=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.CheckConstraint("status IN (0, 1)", name="ck_receipts_status"),
        sa.ForeignKeyConstraint(["tx_hash"], ["transactions.tx_hash"], name="fk_receipts_tx_hash_transactions"),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.UniqueConstraint("tx_hash", name="uq_receipts_tx_hash"),
    )
    op.create_index("ix_receipts_block_number", "receipts", ["block_number"])

    op.create_table(
        "fills",
        _id(),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("exec_id", sa.String(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("last_qty", _decimal(), nullable=False),
        sa.Column("last_px", _decimal(), nullable=False),
        sa.Column("base_units", _units(), nullable=False),
        sa.Column("quote_units", _units(), nullable=False),
        sa.Column("fee_eth", _decimal(), nullable=True),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("busted_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_fills_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("exec_id", name="uq_fills_exec_id"),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_index("ix_fills_tx_hash", "fills", ["tx_hash"])
    op.create_index("ix_fills_ts", "fills", ["ts"])

    op.create_table(
        "approvals",
        _id(),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("spender", sa.String(length=42), nullable=False),
        sa.Column("amount_units", _units(), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.CheckConstraint("policy IN ('exact', 'standing')", name="ck_approvals_policy"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_approvals_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_index("ix_approvals_order_id", "approvals", ["order_id"])
    op.create_index(
        "ix_approvals_chain_id_wallet_token_spender", "approvals", ["chain_id", "wallet", "token", "spender"]
    )

    op.create_table(
        "wallet_nonces",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "wallet", name="pk_wallet_nonces"),
    )


def downgrade() -> None:
    # Children first; dropping a table drops its indexes.
    for table in (
        "wallet_nonces",
        "approvals",
        "fills",
        "receipts",
        "transactions",
        "order_events",
        "orders",
        "fix_messages",
    ):
        op.drop_table(table)
