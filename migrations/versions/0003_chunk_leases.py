"""Chunk leases: one live send task per chunk.

Every publish of a chunk bumps its ``generation``; a task carries the generation
it was published with and exits when a newer one exists. ``lease_until`` says by
when the live task must have run or re-armed (past it, the reconciler publishes
the chunk again), and ``parked_on`` what a head waits for when no task holds it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("parked_on", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_column("parked_on")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("generation")
