"""The account's learned rate limit, kept in the ledger.

A refusal by the platform's rate limit teaches the account a ceiling
(``delivery.ratelimit.learning``). Kept here, not only in Redis, it survives a
Redis flush or restart and is in force before the next send.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("learned_rate_per_minute", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("learned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("learned_from", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("learned_from")
        batch_op.drop_column("learned_at")
        batch_op.drop_column("learned_rate_per_minute")
