"""The Celery tasks: thin wrappers that load by id and call the pipeline.

Arguments are ids only: no token and no message text ever travels through the
broker or shows in Flower.
"""

from __future__ import annotations

from delivery.ledger.db import engine_for
from delivery.pipeline.reconcile import reconcile as reconcile_outbox
from delivery.settings import get_settings
from delivery.worker.app import app

__all__ = ["reconcile"]


@app.task(name="delivery.reconcile", acks_late=True)
def reconcile() -> str:
    """Re-publish heads whose task was lost (a Redis flush, a dead worker)."""
    settings = get_settings()
    count = reconcile_outbox(
        engine_for(settings.database_url), grace_seconds=settings.reconcile_grace_seconds
    )
    return f"re-published {count} chunk(s)"
