"""An index on when a message was delivered, for retention.

Retention deletes final messages that ended before a cutoff, oldest first, a
small batch at a time: delivered ones by ``delivered_at`` (this index), dead and
superseded ones by ``dead_at`` (indexed since 0001). Each batch then starts with
an index range scan instead of a scan of ``messages``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_delivered_at"), ["delivered_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_delivered_at"))
