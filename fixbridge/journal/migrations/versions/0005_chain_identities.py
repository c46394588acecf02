"""Chain identities: the chain id, genesis hash and contract addresses a journal was written
against, checked at every start.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "chain_identities",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("contracts", sa.Text(), nullable=False),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_chain_identities"),
    )


def downgrade() -> None:
    op.drop_table("chain_identities")
