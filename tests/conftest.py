"""Shared test set-up: real Redis, real SQLite and PostgreSQL ledgers at the migration head.

Each test session claims a Redis database of its own, so that two sessions on one
machine never read each other's queues.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, text

import delivery
from delivery import runtime
from delivery.ledger.db import engine_for, upgrade_head
from delivery.ledger.models import Base
from delivery.settings import from_env
from delivery.simulator import PlatformSimulator, SimulatorConfig
from tests.support import services
from tests.support.configure import Configure
from tests.support.inbound import CALLED, FAST, InboundReceiver
from tests.support.own_redis import OwnRedis
from tests.support.qr_login import Terminal
from tests.support.stack import Stack, running_stack

# `pytest --hypothesis-profile=long` runs the property tests ten times longer.
hypothesis_settings.register_profile(
    "long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("default", deadline=None)

_REDIS_DB: int | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _REDIS_DB
    try:
        _REDIS_DB = services.claim_redis_db()
    except Exception:  # Redis down: the tests that need it say so themselves
        _REDIS_DB = None
    db = _REDIS_DB if _REDIS_DB is not None else 15
    # The session's settings, for this process and the ones it starts: this
    # session's Redis database for the broker and the limiter.
    url = f"redis://{services.REDIS_HOST}:{services.REDIS_PORT}/{db}"
    os.environ["DELIVERY_BROKER_URL"] = url
    os.environ["DELIVERY_REDIS_URL"] = url
    # A short publish timeout so a test of "broker down" does not wait long.
    os.environ.setdefault("DELIVERY_PUBLISH_TIMEOUT_SECONDS", "2")
    runtime.install(None)  # made from these settings when first used


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REDIS_DB is not None:
        services.release_redis_db(_REDIS_DB)


@pytest.fixture
def configure() -> Iterator[Configure]:
    """``configure(name=value, ...)``: this process runs on the session's settings plus
    the values for this test (a runtime of its own), then on the previous one again."""
    configured = Configure()
    yield configured
    configured.restore()


@dataclass
class RedisInfo:
    url: str
    db: int


@pytest.fixture
def redis_db() -> Iterator[RedisInfo]:
    """This session's Redis database, emptied before the test."""
    services.redis_available()
    assert _REDIS_DB is not None
    services.flush_redis_db(_REDIS_DB)
    yield RedisInfo(url=os.environ["DELIVERY_BROKER_URL"], db=_REDIS_DB)
    services.flush_redis_db(_REDIS_DB)


@dataclass
class Ledger:
    """A migrated ledger database for one test."""

    backend: str
    url: str

    @property
    def engine(self) -> Engine:
        return engine_for(self.url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    upgrade_head(f"sqlite:///{path}")
    engine_for(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    services.postgres_available()
    with services.temporary_pg_database() as url:
        upgrade_head(url)
        yield url
        engine_for(url).dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def make_ledger(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "ledger.sqlite3"
        shutil.copy(template, path)
        return Ledger(backend, f"sqlite:///{path}")
    url: str = request.getfixturevalue("pg_database")
    _truncate_all(engine_for(url))
    return Ledger(backend, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, configure: Configure
) -> Iterator[Ledger]:
    """A ledger at the migration head, on SQLite and on PostgreSQL, used by the API."""
    result = make_ledger(request.param, request, tmp_path)
    configure(database_url=result.url)
    yield result
    if result.backend == "sqlite":
        result.engine.dispose()


@pytest.fixture
def sqlite_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, configure: Configure
) -> Iterator[Ledger]:
    """A SQLite ledger at the migration head, for tests that need only one backend."""
    result = make_ledger("sqlite", request, tmp_path)
    configure(database_url=result.url)
    yield result
    result.engine.dispose()


@pytest.fixture
def terminal() -> Terminal:
    """What a QR login showed and said; queue numbers for it to type in ``typed``."""
    return Terminal()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A ``requests.Session`` for this test, closed afterwards."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI points the root logger at the runner's stream; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def stack(sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path) -> Iterator[Stack]:
    """Simulator, SQLite ledger, this session's Redis; workers from ``stack.start_worker``."""
    yield from running_stack(sqlite_ledger.url, tmp_path)


@pytest.fixture
def any_stack(ledger: Ledger, redis_db: RedisInfo, tmp_path: Path) -> Iterator[Stack]:
    """As ``stack``, once on SQLite and once on PostgreSQL."""
    yield from running_stack(ledger.url, tmp_path)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server this test owns (it may FLUSHALL, stop and restart it)."""
    server = OwnRedis(directory=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_own_redis(own_redis: OwnRedis, configure: Configure) -> OwnRedis:
    """This process's broker and limiter are ``own_redis`` for the test (and those of
    the processes it starts), then this session's Redis again."""
    configure(broker_url=own_redis.url, redis_url=own_redis.url)
    return own_redis


@pytest.fixture
def own_redis_stack(
    sqlite_ledger: Ledger, on_own_redis: OwnRedis, tmp_path: Path
) -> Iterator[Stack]:
    """A stack whose broker and limiter are a Redis this test owns."""
    yield from running_stack(sqlite_ledger.url, tmp_path)


@pytest.fixture
def pg_stack(
    request: pytest.FixtureRequest, tmp_path: Path, configure: Configure, redis_db: RedisInfo
) -> Iterator[Stack]:
    """A stack on the PostgreSQL ledger (a test may cut the workers off from it)."""
    result = make_ledger("postgresql", request, tmp_path)
    configure(database_url=result.url)
    yield from running_stack(result.url, tmp_path)


# -- the inbound relay in this process (tests.support.inbound.relay_in_thread) -----------

INBOUND_ACCOUNT = "bot-1"
INBOUND_TOKEN = "tok-inbound-0000-secret"


@pytest.fixture
def platform() -> Iterator[PlatformSimulator]:
    """The simulator, holding an empty long poll for 0.3 s."""
    with PlatformSimulator(config=SimulatorConfig(longpolling_timeout_ms=300)) as simulator:
        yield simulator


@pytest.fixture
def receiver() -> Iterator[InboundReceiver]:
    """The agent's webhook (:mod:`delivery.devstack.receiver`)."""
    with InboundReceiver() as webhook:
        yield webhook


@pytest.fixture
def owned(
    ledger: Ledger,
    redis_db: RedisInfo,
    platform: PlatformSimulator,
    receiver: InboundReceiver,
    configure: Configure,
    tmp_path: Path,
) -> str:
    """An account whose inbound side this service owns; webhook and callback
    (``tests.support.inbound.remember``) set, on the relay's compressed clock."""
    CALLED.clear()
    configure(
        **from_env({**FAST, **receiver.settings()}),
        inbound_callback="tests.support.inbound:remember",
        account_store_dir=str(tmp_path / "store"),
    )
    delivery.add_account(
        INBOUND_ACCOUNT, token=INBOUND_TOKEN, base_url=platform.base_url, owns_inbound=True
    )
    platform.model.register_account(INBOUND_ACCOUNT, token=INBOUND_TOKEN)
    return INBOUND_ACCOUNT
