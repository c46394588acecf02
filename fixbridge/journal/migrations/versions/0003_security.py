"""Security: kill-switch halts, Logon attempts, security events (throttle, lockout).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

- ``trading_halts``: `fixbridge halt/resume`; a row is an active halt while resumed_at is NULL.
  scope is a counterparty CompID or '*' (every session). Who and why are kept for both steps.
- ``logon_attempts``: every Logon the acceptor judged (accepted, bad/missing password, locked
  out); the lockout counts failures from here, so it survives a restart. Never the password.
- ``security_events``: a session throttled, a CompID locked out.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False)


def _ts() -> sa.types.TypeEngine:
    return sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "trading_halts",
        _id(),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("halted_by", sa.String(), nullable=False),
        sa.Column("halted_at", _ts(), nullable=False),
        sa.Column("resumed_by", sa.String(), nullable=True),
        sa.Column("resumed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trading_halts"),
    )
    op.create_index("ix_trading_halts_scope_resumed_at", "trading_halts", ["scope", "resumed_at"])

    op.create_table(
        "logon_attempts",
        _id(),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("comp_id", sa.String(), nullable=False),
        sa.Column("username", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'bad_password', 'no_password', 'bad_username', 'locked_out', 'error')",
            name="ck_logon_attempts_outcome",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_logon_attempts"),
    )
    op.create_index("ix_logon_attempts_comp_id_id", "logon_attempts", ["comp_id", "id"])
    op.create_index("ix_logon_attempts_ts", "logon_attempts", ["ts"])

    op.create_table(
        "security_events",
        _id(),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('throttle', 'lockout')", name="ck_security_events_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
    )
    op.create_index("ix_security_events_session_id_ts", "security_events", ["session_id", "ts"])


def downgrade() -> None:
    for table in ("security_events", "logon_attempts", "trading_halts"):
        op.drop_table(table)
