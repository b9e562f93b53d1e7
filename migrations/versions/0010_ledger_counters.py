"""Running totals of outcomes, so a metrics scrape reads a few rows, not the whole ledger.

``ledger_counters`` holds, per metric and label, a count ``n`` (and a sum
``total``) spread over a few ``shard`` rows; see ``delivery.ledger.counters``.
The upgrade fills it from the rows already there (shard 0): messages by final
status, attempts by outcome (``in_flight`` is read live), and the latency
histogram of delivered messages. Rows retention had deleted before this
upgrade are not counted; from here on nothing deleted is subtracted.

The bucket bounds are copied here as they are at this revision, on purpose.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)
_FINAL = "('delivered', 'dead', 'superseded')"


def upgrade() -> None:
    op.create_table(
        "ledger_counters",
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "label", "shard", name=op.f("pk_ledger_counters")),
    )
    if op.get_bind().dialect.name == "sqlite":
        # UTCDateTime is naive UTC text there; julianday() reads it in days.
        seconds = "(julianday(delivered_at) - julianday(created_at)) * 86400.0"
    else:
        seconds = "EXTRACT(EPOCH FROM (delivered_at - created_at))"
    delivered = (
        f"SELECT {seconds} AS seconds FROM messages "
        "WHERE status = 'delivered' AND delivered_at IS NOT NULL"
    )
    bounds = " UNION ALL ".join(
        f"SELECT '{float(b)!r}' AS label, {float(b)!r} AS bound" for b in _BUCKETS_SECONDS
    )
    for statement in (
        "INSERT INTO ledger_counters (metric, label, shard, n, total) "
        "SELECT 'messages', status, 0, COUNT(*), 0.0 FROM messages "
        f"WHERE status IN {_FINAL} GROUP BY status",
        "INSERT INTO ledger_counters (metric, label, shard, n, total) "
        "SELECT 'attempts', outcome, 0, COUNT(*), 0.0 FROM attempts "
        "WHERE outcome <> 'in_flight' GROUP BY outcome",
        "INSERT INTO ledger_counters (metric, label, shard, n, total) "
        "SELECT 'delivery_latency', '+Inf', 0, COUNT(*), COALESCE(SUM(d.seconds), 0.0) "
        f"FROM ({delivered}) d",
        "INSERT INTO ledger_counters (metric, label, shard, n, total) "
        "SELECT 'delivery_latency', b.label, 0, "
        "COALESCE(SUM(CASE WHEN d.seconds <= b.bound THEN 1 ELSE 0 END), 0), 0.0 "
        f"FROM ({bounds}) b CROSS JOIN ({delivered}) d GROUP BY b.label",
    ):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("ledger_counters")
