"""The one place that builds what a process uses: engine, account gate, HTTP
clients, publisher, send pipeline, session checker, inbound relay.

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
from collections.abc import Callable

import redis
import requests
from sqlalchemy import Engine

from delivery.ilink.pool import ClientPool
from delivery.inbound.channels import CallbackChannel, Channel, TaskChannel, WebhookChannel
from delivery.inbound.handover import HandoverRunner
from delivery.inbound.poller import PollerContext
from delivery.inbound.relay import BrokerWatch, InboundRelay
from delivery.ledger.db import engine_for
from delivery.ledger.states import HandoverChannel
from delivery.ledger.types import utcnow
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.dispatch import LineDispatcher, TaskPublisher
from delivery.pipeline.send import SendPipeline
from delivery.pipeline.stash import AnswerStash
from delivery.policy.timing import transient_backoff_seconds
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.alerts import Alerter, reader_dropping_event
from delivery.sessions.check import SessionChecker
from delivery.sessions.store import FileAccountStore
from delivery.sessions.trials import TrialPasses
from delivery.settings import Settings, get_settings

__all__ = [
    "clients",
    "engine",
    "gate",
    "inbound_relay",
    "limiter_redis",
    "pipeline",
    "publisher",
    "session_checker",
    "settings",
    "tasks",
    "trials",
]


def settings() -> Settings:
    """The process's settings (loaded and validated once)."""
    return get_settings()


def engine() -> Engine:
    """The ledger's engine (one per database URL and process)."""
    return engine_for(get_settings().database_url)


def tasks() -> TaskPublisher:
    """Publishes send tasks through the Celery app, countdowns capped by the settings."""
    from delivery.worker.app import app
    from delivery.worker.publisher import CeleryPublisher

    return CeleryPublisher(app, max_countdown_seconds=get_settings().max_countdown_seconds)


def publisher() -> LineDispatcher:
    """Offers armed chunks to their accounts' lines and publishes the tasks of the
    slots reserved (:class:`~delivery.pipeline.dispatch.LineDispatcher`)."""
    return LineDispatcher(gate(), tasks())


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
    )


def _backoff(
    current: Settings, *, base_seconds: float, max_seconds: float, jitter: bool
) -> Callable[[int], float]:
    def backoff(failures: int) -> float:
        return transient_backoff_seconds(
            failures=failures,
            base_seconds=base_seconds,
            max_seconds=max_seconds,
            jitter=jitter,
            floor_seconds=current.backoff_floor_seconds,
        )

    return backoff


@functools.cache
def pipeline(retry_backoff: float, retry_backoff_max: float, retry_jitter: bool) -> SendPipeline:
    """The send pipeline, with the send task's retry_backoff options."""
    current = get_settings()
    backoff = _backoff(
        current, base_seconds=retry_backoff, max_seconds=retry_backoff_max, jitter=retry_jitter
    )

    return SendPipeline(
        PipelineContext(
            engine=engine(),
            gate=gate(),
            clients=clients(),
            publisher=publisher(),
            tasks=tasks(),
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
            reader_alert=_reader_alert(current),
        )
    )


def _reader_alert(current: Settings) -> Callable[[str, str], None]:
    alerter = Alerter(webhook_url=current.alert_webhook_url, callback=current.alert_callback)

    def alert(account_id: str, peer_id: str) -> None:
        if alerter.configured:
            alerter.send(
                reader_dropping_event(
                    account_id,
                    peer_id,
                    since=utcnow(),
                    sends=current.reader_drops_before_hold,
                )
            )

    return alert


def session_checker() -> SessionChecker:
    """Validates and heals sessions (beat's task), waking what a heal unblocks."""
    return _session_checker(get_settings())


@functools.cache
def _session_checker(current: Settings) -> SessionChecker:
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


def inbound_relay() -> InboundRelay:
    """The inbound relay of ``delivery relay``: pollers, and the channels to the agent.

    Raises:
        ConfigError: ``DELIVERY_INBOUND_CALLBACK`` cannot be imported.
    """
    from delivery.worker.app import app

    current = get_settings()
    backoff = _backoff(
        current,
        base_seconds=current.backoff_base_seconds,
        max_seconds=current.backoff_max_seconds,
        jitter=current.retry_jitter,
    )
    broker = BrokerWatch(
        redis.Redis.from_url(current.broker_url, socket_timeout=current.publish_timeout_seconds)
    )
    channels: dict[str, Channel] = {}
    if current.inbound_task:
        channels[HandoverChannel.TASK] = TaskChannel(
            app,
            task_name=current.inbound_task,
            queue=current.inbound_task_queue,
            broker_run_id=broker.current,
        )
    if current.inbound_webhook_url and current.inbound_webhook_secret:
        channels[HandoverChannel.WEBHOOK] = WebhookChannel(
            url=current.inbound_webhook_url,
            secret=current.inbound_webhook_secret.get_secret_value(),
            timeout_seconds=current.inbound_webhook_timeout_seconds,
            http=requests.Session(),
        )
    if current.inbound_callback:
        channels[HandoverChannel.CALLBACK] = CallbackChannel(current.inbound_callback)
    # A hand-over not recorded by then is taken for lost with its relay.
    claim_seconds = 2 * current.inbound_webhook_timeout_seconds
    context = PollerContext(
        engine=engine(),
        clients=clients(),
        publisher=publisher(),
        settings=current,
        backoff=backoff,
        channels=tuple(channels),
        claim_seconds=claim_seconds,
        host=socket.gethostname(),
    )
    runner = HandoverRunner(
        engine=engine(),
        channels=channels,
        backoff=backoff,
        claim_seconds=claim_seconds,
        host=socket.gethostname(),
    )
    return InboundRelay(context=context, runner=runner, redis_client=limiter_redis(), broker=broker)
