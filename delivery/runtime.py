"""The one place that builds what a process uses: engine, account gate, HTTP
clients, publisher, send pipeline, session checker.

Everything below it is handed what it needs (keyword arguments); nothing under
the pipeline reaches for the settings or the Celery app itself. Built on first
use, after a prefork pool has forked, so no socket is shared between processes;
cached per settings object, so a process whose settings are reloaded (the tests)
gets fresh ones.

Example::

    from delivery import runtime
    runtime.pipeline(2.0, 600.0, True).process(chunk_id, generation)
"""

from __future__ import annotations

import functools
import socket

import redis
from sqlalchemy import Engine

from delivery.ilink.pool import ClientPool
from delivery.ledger.db import engine_for
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.dispatch import Publisher
from delivery.pipeline.send import SendPipeline
from delivery.pipeline.stash import AnswerStash
from delivery.policy.timing import transient_backoff_seconds
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.alerts import Alerter
from delivery.sessions.check import SessionChecker
from delivery.sessions.store import FileAccountStore
from delivery.sessions.trials import TrialPasses
from delivery.settings import Settings, get_settings

__all__ = [
    "clients",
    "engine",
    "gate",
    "limiter_redis",
    "pipeline",
    "publisher",
    "session_checker",
    "settings",
    "trials",
]


def settings() -> Settings:
    """The process's settings (loaded and validated once)."""
    return get_settings()


def engine() -> Engine:
    """The ledger's engine (one per database URL and process)."""
    return engine_for(get_settings().database_url)


def publisher() -> Publisher:
    """Publishes send tasks through the Celery app, countdowns capped by the settings."""
    from delivery.worker.app import app
    from delivery.worker.publisher import CeleryPublisher

    return CeleryPublisher(app, max_countdown_seconds=get_settings().max_countdown_seconds)


def limiter_redis() -> redis.Redis:
    """The Redis of the account gate and the answer stash."""
    return _limiter_redis(get_settings())


@functools.cache
def _limiter_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.limiter_redis_url,
        socket_connect_timeout=settings.publish_timeout_seconds,
        socket_timeout=settings.publish_timeout_seconds,
    )


def clients() -> ClientPool:
    """The HTTP client of each account, for this process."""
    return _clients(get_settings())


@functools.cache
def _clients(settings: Settings) -> ClientPool:
    return ClientPool(
        timeout_seconds=settings.http_timeout_seconds,
        client_version=settings.ilink_client_version,
    )


def gate() -> AccountGate:
    """The account gate on ``DELIVERY_REDIS_URL``."""
    return _gate(get_settings())


@functools.cache
def _gate(settings: Settings) -> AccountGate:
    return AccountGate(
        _limiter_redis(settings),
        rate=Rate(per_minute=settings.send_rate_per_minute, burst=settings.send_burst),
        lock_ttl_seconds=settings.send_lock_ttl_seconds,
        prefix=settings.redis_key_prefix,
        strikes_ttl_seconds=2 * settings.cooldown_max_seconds,
        pace_memory_seconds=settings.pace_memory_seconds,
    )


@functools.cache
def pipeline(retry_backoff: float, retry_backoff_max: float, retry_jitter: bool) -> SendPipeline:
    """The send pipeline, with the send task's retry_backoff options."""
    current = get_settings()

    def backoff(failures: int) -> float:
        return transient_backoff_seconds(
            failures=failures,
            base_seconds=retry_backoff,
            max_seconds=retry_backoff_max,
            jitter=retry_jitter,
            floor_seconds=current.backoff_floor_seconds,
        )

    return SendPipeline(
        PipelineContext(
            engine=engine(),
            gate=gate(),
            clients=clients(),
            publisher=publisher(),
            stash=AnswerStash(limiter_redis(), prefix=current.redis_key_prefix),
            trials=trials(),
            probe=RefusalProbe(
                limiter_redis(),
                prefix=current.redis_key_prefix,
                memory_seconds=current.reader_recheck_seconds,
            ),
            settings=current,
            backoff=backoff,
            host=socket.gethostname(),
        )
    )


@functools.cache
def session_checker() -> SessionChecker:
    """Validates and heals sessions (beat's task), waking what a heal unblocks."""
    current = get_settings()
    store = FileAccountStore(current.account_store_dir) if current.account_store_dir else None
    return SessionChecker(
        engine=engine(),
        clients=clients(),
        gate=gate(),
        store=store,
        alerter=Alerter(webhook_url=current.alert_webhook_url, callback=current.alert_callback),
        publisher=publisher(),
        trials=trials(),
    )


def trials() -> TrialPasses:
    """Trial passes of accounts marked expired (see ``delivery.sessions.trials``)."""
    current = get_settings()
    return TrialPasses(
        limiter_redis(),
        prefix=current.redis_key_prefix,
        ttl_seconds=2 * current.session_check_interval_seconds,
    )
