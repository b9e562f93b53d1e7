"""An index on when an inbound message was received, for retention.

Retention deletes inbound messages received before a cutoff (once none of their
hand-overs is pending), oldest first, a small batch at a time. Each batch then
starts with a range scan of this index instead of a scan of ``inbound_messages``;
``id`` orders the messages received in the same instant.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_messages_received_at", ["received_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_received_at")
