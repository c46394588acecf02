"""Movements: deposits into and withdrawals from the bridge's wallets that no order explains
(the devnet's funding, an operator's top-up), so reconciliation can tell them from a break.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def _decimal() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.NUMERIC(), "postgresql")


def _units() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.NUMERIC(78, 0), "postgresql")


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "movements",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("token_symbol", sa.String(), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("amount", _decimal(), nullable=False),
        sa.Column("amount_units", _units(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("who", sa.String(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_movements_direction"),
        sa.PrimaryKeyConstraint("id", name="pk_movements"),
        sa.UniqueConstraint("chain_id", "tx_hash", "wallet", "token_symbol", "direction",
                            name="uq_movements_chain_id_tx_hash_wallet_token_symbol_direction"),
    )
    op.create_index("ix_movements_chain_id_block_number", "movements", ["chain_id", "block_number"])


def downgrade() -> None:
    op.drop_index("ix_movements_chain_id_block_number", table_name="movements")
    op.drop_table("movements")
