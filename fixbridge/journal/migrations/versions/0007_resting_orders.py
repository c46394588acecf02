"""Resting orders: an order that waits in the bridge for the market (Day, GTC, GTD, stops) and the
ClOrdIDs an amend retired.

- orders.resting: the order waits in the bridge (no transaction of it is in flight);
  orders.expire_at: when its life ends (Day: the session's close; GTD: 126/432), NULL for GTC;
  orders.stop_px: a stop's trigger price; orders.triggered: a stop that has triggered.
- order_cl_ord_ids: every ClOrdID an order was known by before an amend (G) gave it a new one;
  a NewOrderSingle reusing one is a duplicate, as for the current ClOrdID.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def _decimal() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.NUMERIC(), "postgresql")


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN (not a batch copy of the table): SQLite's views over orders (migration 0002)
    # stay valid, and a constant default fills the rows already there.
    op.add_column("orders", sa.Column("stop_px", _decimal(), nullable=True))
    op.add_column("orders", sa.Column("expire_at", _ts(), nullable=True))
    op.add_column("orders", sa.Column("resting", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("orders", sa.Column("triggered", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_orders_resting", "orders", ["resting"])
    op.create_table(
        "order_cl_ord_ids",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("cl_ord_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("retired_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_order_cl_ord_ids_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_cl_ord_ids"),
        sa.UniqueConstraint("session_id", "cl_ord_id", name="uq_order_cl_ord_ids_session_id_cl_ord_id"),
    )
    op.create_index("ix_order_cl_ord_ids_order_id", "order_cl_ord_ids", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_order_cl_ord_ids_order_id", table_name="order_cl_ord_ids")
    op.drop_table("order_cl_ord_ids")
    op.drop_index("ix_orders_resting", table_name="orders")
    for col in ("triggered", "resting", "expire_at", "stop_px"):
        op.drop_column("orders", col)
