"""The Celery tasks: thin wrappers that load by id, call the pipeline, map the outcome.

Arguments are ids only: no token and no message text ever travels through the
broker or shows in Flower.
"""

from __future__ import annotations

import functools
import socket
from typing import Any

import redis
from celery import Task

from delivery.ledger.db import engine_for
from delivery.pipeline.clients import ClientPool
from delivery.pipeline.dispatch import SEND_TASK
from delivery.pipeline.reconcile import reconcile as reconcile_outbox
from delivery.pipeline.send import SendPipeline
from delivery.policy.timing import transient_backoff_seconds
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.settings import get_settings
from delivery.worker.app import app

__all__ = ["reconcile", "send_chunk"]

_settings = get_settings()


@functools.cache
def _pipeline(retry_backoff: float, retry_backoff_max: float, retry_jitter: bool) -> SendPipeline:
    """The process's pipeline, built on first use (after the worker forked)."""
    settings = get_settings()

    def backoff(failures: int) -> float:
        return transient_backoff_seconds(
            failures=failures,
            base_seconds=retry_backoff,
            max_seconds=retry_backoff_max,
            jitter=retry_jitter,
            floor_seconds=settings.backoff_floor_seconds,
        )

    gate = AccountGate(
        redis.Redis.from_url(
            settings.limiter_redis_url,
            socket_connect_timeout=settings.publish_timeout_seconds,
            socket_timeout=settings.publish_timeout_seconds,
        ),
        rate=Rate(per_minute=settings.send_rate_per_minute, burst=settings.send_burst),
        lock_ttl_seconds=settings.send_lock_ttl_seconds,
        prefix=settings.redis_key_prefix,
        strikes_ttl_seconds=2 * settings.cooldown_max_seconds,
    )
    return SendPipeline(
        engine=engine_for(settings.database_url),
        gate=gate,
        clients=ClientPool(timeout_seconds=settings.http_timeout_seconds),
        settings=settings,
        backoff=backoff,
        host=socket.gethostname(),
    )


@app.task(
    bind=True,
    name=SEND_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    # Transient failures back off by Celery's retry_backoff rule with these
    # numbers, plus a floor (see delivery.policy.timing.transient_backoff_seconds).
    retry_backoff=_settings.backoff_base_seconds,
    retry_backoff_max=_settings.backoff_max_seconds,
    retry_jitter=_settings.retry_jitter,
)
def send_chunk(self: Task[Any, Any], chunk_id: int) -> str:
    """Send one chunk, or wait and retry; see ``delivery.pipeline.send``."""
    pipeline = _pipeline(self.retry_backoff, self.retry_backoff_max, self.retry_jitter)
    result = pipeline.process(int(chunk_id))
    if result.retry_in_seconds is not None:
        raise self.retry(countdown=result.retry_in_seconds, max_retries=None)
    return result.summary


@app.task(name="delivery.reconcile", acks_late=True)
def reconcile() -> str:
    """Re-publish heads whose task was lost (a Redis flush, a dead worker)."""
    settings = get_settings()
    count = reconcile_outbox(
        engine_for(settings.database_url), grace_seconds=settings.reconcile_grace_seconds
    )
    return f"re-published {count} chunk(s)"
