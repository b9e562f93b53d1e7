"""The inbound relay: what getupdates handed out, its cursor, and the hand-over to the agent.

``inbound_messages`` holds every item a poll handed out (a reader's message, a
copy re-sent under a new id, a malformed item with its reason), unique per
account and platform message id; ``inbound_cursors`` the getupdates cursor of
each account that owns its inbound side; ``inbound_handovers`` one row per
message and channel (task, webhook, callback) until the agent has it;
``inbound_attempts`` every attempt, as ``attempts`` does for sends.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_cursors",
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("advanced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_inbound_cursors_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_inbound_cursors")),
    )
    op.create_table(
        "inbound_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("platform_message_id", sa.String(length=128), nullable=True),
        sa.Column("peer_id", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("item_types", sa.String(length=64), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw_excerpt", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_inbound_messages_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "account_id",
            "platform_message_id",
            name=op.f("uq_inbound_messages_account_id_platform_message_id"),
        ),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_messages_fingerprint",
            ["account_id", "fingerprint", "written_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_inbound_messages_peer", ["account_id", "peer_id", "id"], unique=False
        )

    op.create_table(
        "inbound_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "inbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("worker_host", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_inbound_attempts_inbound_id_inbound_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_attempts")),
        sa.UniqueConstraint(
            "inbound_id",
            "channel",
            "attempt_no",
            name=op.f("uq_inbound_attempts_inbound_id_channel_attempt_no"),
        ),
    )
    op.create_table(
        "inbound_handovers",
        sa.Column(
            "inbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("broker_run_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_inbound_handovers_inbound_id_inbound_messages"),
        ),
        sa.PrimaryKeyConstraint("inbound_id", "channel", name=op.f("pk_inbound_handovers")),
    )
    with op.batch_alter_table("inbound_handovers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_handovers_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_handovers_handed_over_at"), ["handed_over_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_handovers_handed_over_at"))
        batch_op.drop_index("ix_inbound_handovers_due")

    op.drop_table("inbound_handovers")
    op.drop_table("inbound_attempts")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_peer")
        batch_op.drop_index("ix_inbound_messages_fingerprint")

    op.drop_table("inbound_messages")
    op.drop_table("inbound_cursors")
