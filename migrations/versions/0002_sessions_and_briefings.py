"""Sessions that heal themselves and scheduled briefings.

Accounts learn the user they were logged in with and when an expiry was
alerted; briefings and their runs (one per slot) are new.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('briefings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.String(length=128), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('producer', sa.String(length=256), nullable=False),
    sa.Column('schedule', sa.String(length=128), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_briefings_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_briefings')),
    sa.UniqueConstraint('name', name=op.f('uq_briefings_name'))
    )
    op.create_table('briefing_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('briefing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('slot_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['briefing_id'], ['briefings.id'], name=op.f('fk_briefing_runs_briefing_id_briefings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_briefing_runs')),
    sa.UniqueConstraint('briefing_id', 'slot_at', name=op.f('uq_briefing_runs_briefing_id_slot_at'))
    )
    with op.batch_alter_table('briefing_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_briefing_runs_status'), ['status'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ilink_user_id', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('session_alerted_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('session_alerted_at')
        batch_op.drop_column('ilink_user_id')

    with op.batch_alter_table('briefing_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_briefing_runs_status'))

    op.drop_table('briefing_runs')
    op.drop_table('briefings')
