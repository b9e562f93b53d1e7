"""Readers: reply windows, send budgets and context tokens per (account, peer).

``readers`` replaces ``context_tokens`` (its rows move over: the latest token per
peer and its stale mark); messages get a ``collapse_key``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "readers",
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("peer_id", sa.String(length=256), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sends_since_inbound", sa.Integer(), nullable=False),
        sa.Column("closed_reason", sa.String(length=16), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("context_token", sa.Text(), nullable=True),
        sa.Column("context_token_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("context_token_stale_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_readers_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "peer_id", name=op.f("pk_readers")),
    )
    op.execute(
        "INSERT INTO readers (account_id, peer_id, sends_since_inbound, context_token, "
        "context_token_at, context_token_stale_at, updated_at) "
        "SELECT account_id, peer_id, 0, token, updated_at, stale_at, updated_at "
        "FROM context_tokens"
    )
    op.drop_table("context_tokens")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("collapse_key", sa.String(length=256), nullable=True))
        batch_op.create_index(
            "ix_messages_collapse", ["account_id", "to_user_id", "collapse_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_collapse")
        batch_op.drop_column("collapse_key")
    op.create_table(
        "context_tokens",
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("peer_id", sa.String(length=256), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stale_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_context_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "peer_id", name=op.f("pk_context_tokens")),
    )
    op.execute(
        "INSERT INTO context_tokens (account_id, peer_id, token, updated_at, stale_at) "
        "SELECT account_id, peer_id, context_token, context_token_at, context_token_stale_at "
        "FROM readers WHERE context_token IS NOT NULL"
    )
    op.drop_table("readers")
