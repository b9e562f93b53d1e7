"""What a worker process builds once and reuses: engine, account gate, HTTP clients.

Built on first use, after the prefork pool has forked, so no socket is shared
between processes.
"""

from __future__ import annotations

import functools
import socket

import redis

from delivery.ledger.db import engine_for
from delivery.pipeline.clients import ClientPool
from delivery.pipeline.send import SendPipeline
from delivery.policy.timing import transient_backoff_seconds
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.sessions.alerts import Alerter
from delivery.sessions.check import SessionChecker
from delivery.sessions.store import FileAccountStore
from delivery.settings import get_settings

__all__ = ["gate", "pipeline", "session_checker"]


@functools.cache
def clients() -> ClientPool:
    return ClientPool(timeout_seconds=get_settings().http_timeout_seconds)


@functools.cache
def gate() -> AccountGate:
    """The account gate on ``DELIVERY_REDIS_URL``."""
    settings = get_settings()
    client = redis.Redis.from_url(
        settings.limiter_redis_url,
        socket_connect_timeout=settings.publish_timeout_seconds,
        socket_timeout=settings.publish_timeout_seconds,
    )
    return AccountGate(
        client,
        rate=Rate(per_minute=settings.send_rate_per_minute, burst=settings.send_burst),
        lock_ttl_seconds=settings.send_lock_ttl_seconds,
        prefix=settings.redis_key_prefix,
        strikes_ttl_seconds=2 * settings.cooldown_max_seconds,
        pace_memory_seconds=settings.pace_memory_seconds,
    )


@functools.cache
def pipeline(retry_backoff: float, retry_backoff_max: float, retry_jitter: bool) -> SendPipeline:
    """The send pipeline, with the send task's retry_backoff options."""
    settings = get_settings()

    def backoff(failures: int) -> float:
        return transient_backoff_seconds(
            failures=failures,
            base_seconds=retry_backoff,
            max_seconds=retry_backoff_max,
            jitter=retry_jitter,
            floor_seconds=settings.backoff_floor_seconds,
        )

    return SendPipeline(
        engine=engine_for(settings.database_url),
        gate=gate(),
        clients=clients(),
        settings=settings,
        backoff=backoff,
        host=socket.gethostname(),
    )


@functools.cache
def session_checker() -> SessionChecker:
    settings = get_settings()
    store = FileAccountStore(settings.account_store_dir) if settings.account_store_dir else None
    return SessionChecker(
        engine=engine_for(settings.database_url),
        clients=clients(),
        gate=gate(),
        store=store,
        alerter=Alerter(webhook_url=settings.alert_webhook_url, callback=settings.alert_callback),
    )
