"""Queue names and the beat schedule: what Celery routes where, and how often."""

from __future__ import annotations

from typing import Any

from delivery.settings import Settings

__all__ = ["BACKGROUND_PRIORITY", "DEFAULT_QUEUE", "SEND_QUEUE", "beat_schedule_for"]

SEND_QUEUE = "delivery.send"  # consumed with concurrency 1, prefetch 1
DEFAULT_QUEUE = "delivery.default"  # reconciler, session checks, briefings, retention
# Kombu's Redis transport serves priority 0 first: the reconciler publishes with none
# (0), the slower periodic work with this, so it never queues behind them.
BACKGROUND_PRIORITY = 6


def beat_schedule_for(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic tasks beat publishes, with intervals from ``settings`` (seconds).

    A run not started within its interval expires (the next one is already on its
    way), so runs of slow work never pile up; the reconciler goes first.
    """
    return {
        "delivery.reconcile": {
            "task": "delivery.reconcile",
            "schedule": settings.reconcile_interval_seconds,
            "options": {"expires": settings.reconcile_interval_seconds},
        },
        "delivery.check_sessions": {
            "task": "delivery.check_sessions",
            "schedule": settings.session_check_interval_seconds,
            "options": {
                "expires": settings.session_check_interval_seconds,
                "priority": BACKGROUND_PRIORITY,
            },
        },
        "delivery.schedule_briefings": {
            "task": "delivery.schedule_briefings",
            "schedule": settings.briefing_tick_seconds,
            "options": {
                "expires": settings.briefing_tick_seconds,
                "priority": BACKGROUND_PRIORITY,
            },
        },
        "delivery.prune": {
            "task": "delivery.prune",
            "schedule": settings.retention_interval_seconds,
            "options": {
                "expires": settings.retention_interval_seconds,
                "priority": BACKGROUND_PRIORITY,
            },
        },
    }
