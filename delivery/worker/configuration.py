"""How Celery is configured from the settings, and the app a :class:`~delivery.runtime.Runtime`
publishes through.

Sends go to their own queue, which a worker consumes with concurrency 1 and
prefetch 1; everything else goes to the default queue. The worker's own app
(:mod:`delivery.worker.app`) reads the same configuration through
:mod:`delivery.celeryconfig`.

Example::

    app = publishing_app(load_settings(broker_url="redis://127.0.0.1:6380/0"))
    app.send_task("delivery.reconcile")   # published on that broker
    app.close()
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from delivery.settings import Settings
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE, beat_schedule_for

__all__ = ["celery_config", "publishing_app"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration (lower-case setting names) for ``settings``."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.publish_timeout_seconds,
        "broker_transport_options": {
            # A task held past this (unacked, or waiting on its countdown) is redelivered;
            # every countdown the pipeline sets is capped at half of it.
            "visibility_timeout": settings.visibility_timeout_seconds,
            "socket_connect_timeout": settings.publish_timeout_seconds,
            "socket_timeout": max(settings.publish_timeout_seconds, 5.0),
            "retry_on_timeout": True,
        },
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {
            "delivery.send_chunk": {"queue": SEND_QUEUE},
            "delivery.*": {"queue": DEFAULT_QUEUE},
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        # Nothing reads task results: the ledger is the record. Flower reads events.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Flower watches the workers' task events (received, started, succeeded,
        # retried, failed). The publisher's own "sent" event would cost every send
        # task one more Redis publish; Flower shows a task from the moment a worker
        # receives it.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule_for(settings),
        # Only the beat holding a Redis lock publishes; a second beat stands by.
        "beat_scheduler": "delivery.worker.beat:LeaderScheduler",
        "beat_max_loop_interval": min(5.0, settings.beat_lock_ttl_seconds / 3),
    }


def publishing_app(settings: Settings) -> Celery:
    """A Celery app that publishes on the broker of ``settings`` (it runs no worker).

    Not the process's current app: building one changes nothing for the others.
    ``close()`` it to release its connections.
    """
    app = Celery("delivery", set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app
