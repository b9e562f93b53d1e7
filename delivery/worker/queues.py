"""Queue names and the beat schedule: what Celery routes where, and how often."""

from __future__ import annotations

from typing import Any

from delivery.settings import Settings

__all__ = ["DEFAULT_QUEUE", "SEND_QUEUE", "beat_schedule_for"]

SEND_QUEUE = "delivery.send"  # consumed with concurrency 1, prefetch 1
DEFAULT_QUEUE = "delivery.default"  # reconciler, session checks, briefings, retention


def beat_schedule_for(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic tasks beat publishes, with intervals from ``settings`` (seconds)."""
    return {
        "delivery.reconcile": {
            "task": "delivery.reconcile",
            "schedule": settings.reconcile_interval_seconds,
        },
        "delivery.check_sessions": {
            "task": "delivery.check_sessions",
            "schedule": settings.session_check_interval_seconds,
        },
        "delivery.schedule_briefings": {
            "task": "delivery.schedule_briefings",
            "schedule": settings.briefing_tick_seconds,
        },
        "delivery.prune": {
            "task": "delivery.prune",
            "schedule": settings.retention_interval_seconds,
        },
    }
