"""``delivery db upgrade|current``: the ledger's schema, by the migrations."""

from __future__ import annotations

import logging

import click

from delivery import runtime
from delivery.ledger.db import redact_url, upgrade_head

__all__ = ["db"]


@click.group()
def db() -> None:
    """The SQL ledger's schema."""


@db.command("upgrade")
def upgrade() -> None:
    """Bring the ledger to the newest migration (alembic upgrade head)."""
    url = runtime.current().settings.database_url
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    upgrade_head(url)
    click.echo(f"ledger at {redact_url(url)} is at the migration head")
