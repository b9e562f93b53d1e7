"""The Celery application. ``celery -A delivery worker`` finds it as ``delivery.app``."""

from __future__ import annotations

from celery import Celery

__all__ = ["app"]

app = Celery("delivery", include=["delivery.worker.tasks"])
app.config_from_object("celeryconfig")
