"""What a process runs on, built from its settings: :class:`Runtime`.

A runtime builds, on first use and once, the ledger's engine, the Redis client
of the account gate, the HTTP clients, the gate, the publishers, the send
pipeline and the session checker, and makes an inbound relay when asked. Built
lazily, so a prefork pool that forks after the runtime was made shares no
socket between processes.

Everything under it (``pipeline/``, ``inbound/``, ``ledger/``, ``sessions/``) is
handed what it needs; only entry points (the public API functions, the command
line, the Celery tasks, beat, the worker's boot) ask for the process's runtime
with :func:`current`. It is made from the environment on first use; a test, a
benchmark or the demo builds one from explicit settings and :func:`use`\\ s it
(or :func:`install`\\ s it), publishing through a Celery app of its own: nothing
of the process's Celery app or environment changes.

Example::

    from delivery import runtime
    runtime.current().pipeline(2.0, 600.0, True).process(chunk_id, generation)

    mine = runtime.Runtime(load_settings(database_url="sqlite:///other.sqlite3"))
    with runtime.use(mine):
        delivery.enqueue("bot-1", "o9cq8@im.wechat", "hello")   # into other.sqlite3
    mine.close()
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import requests
from celery import Celery
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
from delivery.settings import Settings, load_settings
from delivery.worker.configuration import publishing_app
from delivery.worker.publisher import CeleryPublisher

__all__ = ["Runtime", "current", "install", "use", "use_process_app"]

_T = TypeVar("_T")


class Runtime:
    """The engine, clients, gate, publishers and pipeline of one set of settings.

    ``app`` is the Celery app to publish through; by default one of its own,
    built from ``settings`` (:func:`~delivery.worker.configuration.publishing_app`) and
    closed by :meth:`close`. Safe to share between threads: each piece is built
    once.

    Raises (on first use of a piece):
        ConfigError: the database URL, or an inbound hand-over setting, is unusable.
    """

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self._settings = settings
        self._given_app = app
        self._lock = threading.RLock()
        self._built: dict[object, Any] = {}

    def __repr__(self) -> str:
        return f"<Runtime {id(self):#x}>"  # the settings hold secrets

    @property
    def settings(self) -> Settings:
        """The settings everything here was built from."""
        return self._settings

    def _once(self, key: object, build: Callable[[], _T]) -> _T:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            built: _T = self._built[key]
            return built

    @property
    def app(self) -> Celery:
        """The Celery app this runtime publishes through."""
        return self._once("app", lambda: self._given_app or publishing_app(self._settings))

    @property
    def engine(self) -> Engine:
        """The ledger's engine."""
        return self._once("engine", lambda: engine_for(self._settings.database_url))

    @property
    def limiter_redis(self) -> redis.Redis:
        """The Redis of the account gate and the answer stash."""
        return self._once(
            "limiter_redis",
            lambda: redis.Redis.from_url(
                self._settings.limiter_redis_url,
                socket_connect_timeout=self._settings.publish_timeout_seconds,
                socket_timeout=self._settings.publish_timeout_seconds,
            ),
        )

    @property
    def clients(self) -> ClientPool:
        """The HTTP client of each account."""
        return self._once(
            "clients",
            lambda: ClientPool(
                timeout_seconds=self._settings.http_timeout_seconds,
                client_version=self._settings.ilink_client_version,
            ),
        )

    @property
    def gate(self) -> AccountGate:
        """The account gate on ``DELIVERY_REDIS_URL``."""
        current = self._settings
        return self._once(
            "gate",
            lambda: AccountGate(
                self.limiter_redis,
                rate=Rate(per_minute=current.send_rate_per_minute, burst=current.send_burst),
                lock_ttl_seconds=current.send_lock_ttl_seconds,
                prefix=current.redis_key_prefix,
                strikes_ttl_seconds=2 * current.cooldown_max_seconds,
            ),
        )

    @property
    def tasks(self) -> TaskPublisher:
        """Publishes send tasks through :attr:`app`, countdowns capped by the settings."""
        return self._once(
            "tasks",
            lambda: CeleryPublisher(
                self.app, max_countdown_seconds=self._settings.max_countdown_seconds
            ),
        )

    @property
    def publisher(self) -> LineDispatcher:
        """Offers armed chunks to their accounts' lines and publishes the tasks of the
        slots reserved (:class:`~delivery.pipeline.dispatch.LineDispatcher`)."""
        return self._once("publisher", lambda: LineDispatcher(self.gate, self.tasks))

    @property
    def trials(self) -> TrialPasses:
        """Trial passes of accounts marked expired (see ``delivery.sessions.trials``)."""
        return self._once(
            "trials",
            lambda: TrialPasses(
                self.limiter_redis,
                prefix=self._settings.redis_key_prefix,
                ttl_seconds=2 * self._settings.session_check_interval_seconds,
            ),
        )

    def pipeline(
        self, retry_backoff: float, retry_backoff_max: float, retry_jitter: bool
    ) -> SendPipeline:
        """The send pipeline, with the send task's retry_backoff options."""
        key = ("pipeline", retry_backoff, retry_backoff_max, retry_jitter)
        return self._once(
            key, lambda: self._build_pipeline(retry_backoff, retry_backoff_max, retry_jitter)
        )

    def _build_pipeline(
        self, retry_backoff: float, retry_backoff_max: float, retry_jitter: bool
    ) -> SendPipeline:
        current = self._settings
        return SendPipeline(
            PipelineContext(
                engine=self.engine,
                gate=self.gate,
                clients=self.clients,
                publisher=self.publisher,
                tasks=self.tasks,
                stash=AnswerStash(self.limiter_redis, prefix=current.redis_key_prefix),
                trials=self.trials,
                probe=RefusalProbe(
                    self.limiter_redis,
                    prefix=current.redis_key_prefix,
                    memory_seconds=current.reader_recheck_seconds,
                ),
                settings=current,
                backoff=_backoff(
                    current,
                    base_seconds=retry_backoff,
                    max_seconds=retry_backoff_max,
                    jitter=retry_jitter,
                ),
                host=socket.gethostname(),
                reader_alert=_reader_alert(current),
            )
        )

    @property
    def session_checker(self) -> SessionChecker:
        """Validates and heals sessions (beat's task), waking what a heal unblocks."""
        return self._once("session_checker", self._build_session_checker)

    def _build_session_checker(self) -> SessionChecker:
        current = self._settings
        store = FileAccountStore(current.account_store_dir) if current.account_store_dir else None
        return SessionChecker(
            engine=self.engine,
            clients=self.clients,
            gate=self.gate,
            store=store,
            alerter=Alerter(webhook_url=current.alert_webhook_url, callback=current.alert_callback),
            publisher=self.publisher,
            trials=self.trials,
        )

    def inbound_relay(self) -> InboundRelay:
        """A new inbound relay (``delivery relay``): pollers, and the channels to the agent.

        A process runs one; each call makes another, on this runtime's engine,
        clients and publisher (a test runs two, to see one stand by).

        Raises:
            ConfigError: ``DELIVERY_INBOUND_CALLBACK`` cannot be imported.
        """
        current = self._settings
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
                self.app,
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
            engine=self.engine,
            clients=self.clients,
            publisher=self.publisher,
            settings=current,
            backoff=backoff,
            channels=tuple(channels),
            claim_seconds=claim_seconds,
            host=socket.gethostname(),
        )
        runner = HandoverRunner(
            engine=self.engine,
            channels=channels,
            backoff=backoff,
            claim_seconds=claim_seconds,
            host=socket.gethostname(),
        )
        return InboundRelay(
            context=context, runner=runner, redis_client=self.limiter_redis, broker=broker
        )

    def close(self) -> None:
        """Release what was built: HTTP sessions, Redis connections, the database
        pool, and the Celery app if it is this runtime's own. Used again, the
        runtime builds afresh."""
        with self._lock:
            built, self._built = self._built, {}
        if "clients" in built:
            built["clients"].close()
        if "limiter_redis" in built:
            built["limiter_redis"].close()
        if "engine" in built:
            built["engine"].dispose()
        if "app" in built and self._given_app is None:
            built["app"].close()


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


_installed: Runtime | None = None
_installing = threading.Lock()
_process_app: Celery | None = None  # see use_process_app


def use_process_app(app: Celery) -> None:
    """The process's own Celery app (``delivery.worker.app``, configured from the
    environment): a runtime :func:`current` makes from the environment publishes
    through it. Called once, where that app is made."""
    global _process_app
    _process_app = app


def current() -> Runtime:
    """The process's runtime: the one installed, or one made from the environment
    (publishing through the process's Celery app, configured from that environment).

    Raises:
        ConfigError: the environment holds an invalid setting (named).
    """
    global _installed
    with _installing:
        if _installed is None:
            # The process's Celery app, when there is one, is configured from the same
            # environment (delivery/celeryconfig.py): publish through it, not through a
            # second app with connections of its own (a worker would hold two).
            _installed = Runtime(load_settings(), app=_process_app)
        return _installed


def install(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's runtime; return the one it replaces. ``None``
    makes the next :func:`current` read the environment again. Nothing is closed."""
    global _installed
    with _installing:
        previous, _installed = _installed, runtime
        return previous


@contextmanager
def use(runtime: Runtime) -> Iterator[Runtime]:
    """The process's runtime is ``runtime`` inside the block, then the previous one
    again (the caller closes ``runtime``)."""
    previous = install(runtime)
    try:
        yield runtime
    finally:
        install(previous)
