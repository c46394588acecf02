"""Compliance and operations: lookup index, reconciliation runs, views for the common questions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

- ``ix_orders_cl_ord_id``: find an order by ClOrdID alone (``fixbridge journal trail <ClOrdID>``);
  the unique (session_id, cl_ord_id) key cannot serve a lookup that does not name the session.
- ``reconciliation_runs``: one row per ``fixbridge reconcile`` run, with its breaks as JSON.
- views (read-only, same columns on SQLite and PostgreSQL; see docs/journal.md):
  ``v_order_trail``, ``v_fills_daily``, ``v_open_orders``, ``v_pending_transactions``,
  ``v_fill_breaks``.

Views are plain SQL, written per backend where the spelling differs (dates, exact sums).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('Filled', 'Canceled', 'Expired', 'Rejected')"


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


# One row per journaled step of an order: FIX messages (linked by OrderID, or by the order's
# session + ClOrdID when the message carries no OrderID, e.g. the NewOrderSingle itself), events
# (transitions, quote, risk, approval, tx), the transactions, receipts, fills and approvals.
# Query: SELECT * FROM v_order_trail WHERE order_id = ? ORDER BY ts, source_rank, ref_id
V_ORDER_TRAIL = """
CREATE VIEW v_order_trail AS
SELECT o.order_id, o.session_id, o.cl_ord_id, m.ts AS ts, 1 AS source_rank, m.id AS ref_id,
       'fix ' || m.direction AS source,
       m.msg_type || COALESCE(' 150=' || m.exec_type, '') || COALESCE(' 39=' || m.ord_status, '') AS what,
       m.raw AS detail
  FROM fix_messages m JOIN orders o ON m.order_id = o.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, m.ts, 1, m.id,
       'fix ' || m.direction,
       m.msg_type || COALESCE(' 150=' || m.exec_type, '') || COALESCE(' 39=' || m.ord_status, ''),
       m.raw
  FROM fix_messages m JOIN orders o ON m.session_id = o.session_id AND m.cl_ord_id = o.cl_ord_id
 WHERE m.order_id IS NULL OR m.order_id <> o.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, e.ts, 2, e.id,
       'event ' || e.kind,
       COALESCE(e.from_status, '-') || ' -> ' || e.to_status,
       e.reason || COALESCE(' ' || e.detail, '')
  FROM order_events e JOIN orders o ON o.order_id = e.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, t.created_at, 3, t.id,
       'tx ' || t.purpose,
       'nonce ' || t.nonce || ', now ' || t.status || COALESCE(' in block ' || t.block_number, ''),
       t.tx_hash
  FROM transactions t JOIN orders o ON o.order_id = t.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, r.ts, 4, r.id,
       'receipt',
       CASE r.status WHEN 1 THEN 'success' ELSE 'reverted' END || ' in block ' || r.block_number,
       r.tx_hash || COALESCE(' ' || r.revert_reason, '') || ' gas ' || r.gas_used
  FROM receipts r JOIN transactions t ON t.tx_hash = r.tx_hash JOIN orders o ON o.order_id = t.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, f.ts, 5, f.id,
       'fill',
       f.last_qty || ' @ ' || f.last_px,
       f.exec_id || ' block ' || f.block_number || COALESCE(' fee ' || f.fee_eth || ' ETH', '')
  FROM fills f JOIN orders o ON o.order_id = f.order_id
UNION ALL
SELECT o.order_id, o.session_id, o.cl_ord_id, a.ts, 6, a.id,
       'approval',
       a.policy || ' ' || a.amount_units || ' of ' || a.token || ' to ' || a.spender,
       a.tx_hash
  FROM approvals a JOIN orders o ON o.order_id = a.order_id
"""

V_OPEN_ORDERS = f"""
CREATE VIEW v_open_orders AS
SELECT o.order_id, o.session_id, o.cl_ord_id, o.symbol, o.side, o.ord_type, o.time_in_force, o.status,
       o.order_qty, o.cash_order_qty, o.price, o.cum_qty, o.leaves_qty, o.venue, o.wallet,
       o.created_at, o.updated_at,
       (SELECT t.tx_hash FROM transactions t WHERE t.order_id = o.order_id ORDER BY t.id DESC LIMIT 1) AS last_tx_hash,
       (SELECT t.status FROM transactions t WHERE t.order_id = o.order_id ORDER BY t.id DESC LIMIT 1) AS last_tx_status
  FROM orders o
 WHERE o.status NOT IN {TERMINAL}
"""

V_PENDING_TRANSACTIONS = """
CREATE VIEW v_pending_transactions AS
SELECT t.chain_id, t.wallet, t.nonce, t.status, t.tx_hash, t.order_id, t.purpose, t.created_at, t.updated_at
  FROM transactions t
  LEFT JOIN receipts r ON r.tx_hash = t.tx_hash
 WHERE t.status IN ('signed', 'broadcast') AND r.id IS NULL
"""

# Fills (not busted by a reorg) whose transaction has no successful receipt in the journal at the
# fill's block (should be empty).
V_FILL_BREAKS = """
CREATE VIEW v_fill_breaks AS
SELECT f.exec_id, f.order_id, f.tx_hash, f.block_number AS fill_block, t.status AS tx_status,
       r.status AS receipt_status, r.block_number AS receipt_block
  FROM fills f
  LEFT JOIN transactions t ON t.tx_hash = f.tx_hash
  LEFT JOIN receipts r ON r.tx_hash = f.tx_hash
 WHERE f.busted_at IS NULL
   AND (r.status IS NULL OR r.status <> 1 OR r.block_number <> f.block_number)
"""

# Fills (not busted by a reorg) per session, UTC day, instrument and side. PostgreSQL sums exactly (NUMERIC); SQLite
# stores decimals as text and has no exact decimal sum, so there qty/notional/fees_eth are NULL
# (use `fixbridge journal fills --daily`, which sums with Decimal on both backends).
V_FILLS_DAILY = {
    "postgresql": """
CREATE VIEW v_fills_daily AS
SELECT o.session_id, (f.ts AT TIME ZONE 'UTC')::date AS day, o.symbol, o.side,
       count(*) AS fills, count(DISTINCT f.order_id) AS orders,
       sum(f.last_qty) AS qty, sum(f.last_qty * f.last_px) AS notional, sum(f.fee_eth) AS fees_eth,
       min(f.ts) AS first_fill, max(f.ts) AS last_fill
  FROM fills f JOIN orders o ON o.order_id = f.order_id
 WHERE f.busted_at IS NULL
 GROUP BY o.session_id, (f.ts AT TIME ZONE 'UTC')::date, o.symbol, o.side
""",
    "sqlite": """
CREATE VIEW v_fills_daily AS
SELECT o.session_id, date(f.ts) AS day, o.symbol, o.side,
       count(*) AS fills, count(DISTINCT f.order_id) AS orders,
       NULL AS qty, NULL AS notional, NULL AS fees_eth,
       min(f.ts) AS first_fill, max(f.ts) AS last_fill
  FROM fills f JOIN orders o ON o.order_id = f.order_id
 WHERE f.busted_at IS NULL
 GROUP BY o.session_id, date(f.ts), o.symbol, o.side
""",
}

VIEWS = ("v_order_trail", "v_open_orders", "v_pending_transactions", "v_fill_breaks", "v_fills_daily")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index("ix_orders_cl_ord_id", "orders", ["cl_ord_id"])

    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("from_block", sa.BigInteger(), nullable=False),
        sa.Column("to_block", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("breaks", sa.Integer(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('clean', 'breaks', 'error')", name="ck_reconciliation_runs_status"),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_runs"),
    )
    op.create_index("ix_reconciliation_runs_started_at", "reconciliation_runs", ["started_at"])

    for ddl in (V_ORDER_TRAIL, V_OPEN_ORDERS, V_PENDING_TRANSACTIONS, V_FILL_BREAKS, V_FILLS_DAILY[dialect]):
        op.execute(ddl)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_orders_cl_ord_id", table_name="orders")
