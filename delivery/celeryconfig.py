"""Celery configuration of ``delivery``, read by ``delivery.worker.app`` by its module path.

The app loads ``delivery.celeryconfig``, never a bare ``celeryconfig``: Celery's
command line puts the working directory first on ``sys.path``, so a stray
``celeryconfig.py`` there would otherwise be run and its broker URL taken. The
top-level ``celeryconfig.py`` only re-exports this module.

Values come from the settings object (``DELIVERY_*`` environment variables); this
file only says how Celery should use them. Sends go to their own queue, which a
worker consumes with concurrency 1 and prefetch 1; everything else goes to the
default queue.
"""

from __future__ import annotations

from delivery.settings import get_settings
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE, beat_schedule_for

_settings = get_settings()

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
broker_connection_timeout = _settings.publish_timeout_seconds
broker_transport_options = {
    # A task held past this (unacked, or waiting on its countdown) is redelivered;
    # every countdown the pipeline sets is capped at half of it.
    "visibility_timeout": _settings.visibility_timeout_seconds,
    "socket_connect_timeout": _settings.publish_timeout_seconds,
    "socket_timeout": max(_settings.publish_timeout_seconds, 5.0),
    "retry_on_timeout": True,
}

task_default_queue = DEFAULT_QUEUE
task_routes = {
    "delivery.send_chunk": {"queue": SEND_QUEUE},
    "delivery.*": {"queue": DEFAULT_QUEUE},
}
task_serializer = "json"
accept_content = ["json"]
# Nothing reads task results: the ledger is the record. Flower reads events.
task_ignore_result = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Flower watches the workers' task events (received, started, succeeded, retried,
# failed). The publisher's own "sent" event would cost every send task one more Redis
# publish; Flower shows a task from the moment a worker receives it.
worker_send_task_events = True
task_send_sent_event = False
worker_hijack_root_logger = False
timezone = "UTC"
enable_utc = True

beat_schedule = beat_schedule_for(_settings)
# Only the beat holding a Redis lock publishes; a second beat stands by.
beat_scheduler = "delivery.worker.beat:LeaderScheduler"
beat_max_loop_interval = min(5.0, _settings.beat_lock_ttl_seconds / 3)
