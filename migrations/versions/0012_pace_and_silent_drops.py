"""Refusals read right and replies first: the account's pace notes and kept cooldown,
silent drops per reader, a message's priority.

- ``accounts``: ``pace_note`` (why a rate was or was not learned), ``pace_proven_per_minute``
  (a rate proven by a long run, the floor of a later lesson), ``cooldown_until`` and
  ``cooldown_strikes`` (a cooldown that survives Redis), ``confirms_sends`` (accepted
  answers carry a ``message_id``).
- ``messages``: ``priority`` (1 a reply, 2 a push) and ``reply_to`` (what it answers).
- ``readers``: ``unconfirmed_in_row`` and ``dropping_since`` (silent drops).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pace_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("pace_proven_per_minute", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("cooldown_strikes", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("confirms_sends", sa.Boolean(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(sa.Column("reply_to", sa.String(length=128), nullable=True))
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unconfirmed_in_row", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("dropping_since", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.drop_column("dropping_since")
        batch_op.drop_column("unconfirmed_in_row")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reply_to")
        batch_op.drop_column("priority")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("confirms_sends")
        batch_op.drop_column("cooldown_strikes")
        batch_op.drop_column("cooldown_until")
        batch_op.drop_column("pace_proven_per_minute")
        batch_op.drop_column("pace_note")
