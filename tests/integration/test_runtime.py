"""The runtime: what a process runs on, built from explicit settings, swapped without
touching the environment or the process's Celery app."""

from __future__ import annotations

import ast
from pathlib import Path

import redis

import delivery
from delivery import runtime
from delivery.ledger.db import session_scope
from delivery.ledger.models import Message
from delivery.runtime import Runtime
from delivery.settings import load_settings
from delivery.worker.app import app
from delivery.worker.queues import SEND_QUEUE
from tests.conftest import Ledger, RedisInfo
from tests.support.own_redis import OwnRedis

PACKAGE = Path(delivery.__file__).parent


def test_a_runtime_used_for_a_block_publishes_on_its_own_broker_then_the_previous_one_returns(
    sqlite_ledger: Ledger, redis_db: RedisInfo, own_redis: OwnRedis
) -> None:
    # Given the session's runtime, and one of explicit settings on a Redis of its own
    before = runtime.current()
    mine = Runtime(
        load_settings(
            database_url=sqlite_ledger.url, broker_url=own_redis.url, redis_url=own_redis.url
        )
    )
    delivery.add_account("bot-1", token="tok-runtime-0000-secret", base_url="http://127.0.0.1:9")

    # When a message is enqueued while that runtime is used
    with runtime.use(mine):
        assert runtime.current() is mine
        message_id = delivery.enqueue("bot-1", "u1@im.wechat", "hello")
    mine.close()

    # Then its send task waits on that Redis, the session's Redis has none, and the
    # process's app and runtime are as they were
    assert own_redis.client().llen(SEND_QUEUE) == 1
    assert redis.Redis.from_url(redis_db.url).llen(SEND_QUEUE) == 0
    assert runtime.current() is before
    assert app.conf.broker_url == redis_db.url
    with session_scope(sqlite_ledger.engine) as db:
        assert db.get(Message, int(message_id)) is not None


def test_what_a_runtime_builds_is_built_once() -> None:
    # Given a runtime of explicit settings
    mine = Runtime(load_settings(database_url="sqlite://"))

    # Then each piece is built on first use, and once
    assert mine.gate is mine.gate and mine.publisher is mine.publisher
    assert mine.pipeline(0.1, 1.0, False) is mine.pipeline(0.1, 1.0, False)
    assert mine.engine is mine.engine
    mine.close()


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_pipeline_inbound_ledger_and_policies_are_handed_what_they_need() -> None:
    # Nothing under them reaches for the process's runtime, its settings or its Celery app.
    reaching = {"delivery.runtime", "delivery.worker.app", "delivery.settings.load_settings"}
    for package in ("pipeline", "inbound", "ledger", "policy", "ratelimit", "chunking"):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            assert not _imported_modules(path) & reaching, path
