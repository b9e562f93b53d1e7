"""The Prometheus exporter: numbers read from the ledger and Redis, on both ledgers.

Messages go in through the public API; what workers would have done since is
done through the ledger's own verbs (attempts started and answered, chunks
accepted, messages killed), at chosen times, so every number has a known answer.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

import delivery
from delivery.devstack import ManagedProcess, free_port
from delivery.ledger import attempts as ledger_attempts
from delivery.ledger import outbox
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account, Chunk, Message
from delivery.ledger.states import AttemptOutcome, SessionState
from delivery.ledger.types import utcnow
from delivery.monitoring import DeliveryCollector, RedisSource, SqlLedgerSource
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE
from tests.conftest import Ledger, RedisInfo
from tests.support.broker import published
from tests.support.configure import child_env
from tests.support.ledger_ops import accept_chunk
from tests.support.own_redis import OwnRedis
from tests.support.waiting import wait_until

NOW = utcnow().replace(microsecond=0)
BASE_URL = "http://127.0.0.1:9"  # never called: no worker runs in these tests
TWO_CHUNKS = ("a" * 1500) + "\n\n" + ("b" * 1500)


class Scrape:
    """The samples of one scrape, by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)


def scrape(collector: DeliveryCollector) -> Scrape:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return Scrape(generate_latest(registry).decode())


def gate_on(url: str) -> AccountGate:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return AccountGate(client, rate=Rate(per_minute=15), lock_ttl_seconds=60)


def redis_source(url: str) -> RedisSource:
    broker = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return RedisSource(broker=broker, gate=gate_on(url), queues=(SEND_QUEUE, DEFAULT_QUEUE))


def collector_for(engine: Engine, redis_url: str) -> DeliveryCollector:
    return DeliveryCollector(
        ledger=SqlLedgerSource(engine), redis=redis_source(redis_url), clock=lambda: NOW
    )


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def settle(
    engine: Engine,
    message_id: str,
    *,
    created_seconds_ago: float,
    ended_seconds_ago: float | None = None,
    attempts: list[tuple[int, AttemptOutcome]],
) -> None:
    """Do what the workers would have, attempt by attempt (chunk seq, outcome): an
    accepted chunk is accepted (the last one at ``ended_seconds_ago``), a permanent
    failure kills the message, a lost attempt is closed as lost, one in flight stays."""
    with session_scope(engine) as db:
        message = db.get_one(Message, int(message_id))
        message.created_at = ago(created_seconds_ago)
        chunks = {c.seq: c for c in db.scalars(select(Chunk).where(Chunk.message_id == message.id))}
        for number, (seq, outcome) in enumerate(attempts, start=1):
            chunk = chunks[seq]
            attempt_id = ledger_attempts.start(
                db, chunk_id=chunk.id, attempt_no=number, context_token=None, host="t", now=NOW
            )
            if outcome == AttemptOutcome.LOST:
                ledger_attempts.close_lost(db, chunk.id)
                continue
            if outcome != AttemptOutcome.IN_FLIGHT:
                result = ledger_attempts.AttemptResult(outcome, "test", None, duration_ms=5)
                ledger_attempts.record(db, attempt_id, result)
            last = seq == len(chunks)
            if outcome == AttemptOutcome.ACCEPTED:
                accept_chunk(
                    db, chunk.id, now=ago(ended_seconds_ago) if last and ended_seconds_ago else NOW
                )
            elif outcome == AttemptOutcome.PERMANENT:
                outbox.kill(
                    db, message.id, reason="permanent: test", now=NOW, failed_chunk_id=chunk.id
                )


def expire_session(engine: Engine, account_id: str, *, seconds_ago: float) -> None:
    with session_scope(engine) as session:
        account = session.get_one(Account, account_id)
        account.session_state = SessionState.EXPIRED
        account.session_expired_at = ago(seconds_ago)


@pytest.fixture
def busy_ledger(ledger: Ledger, redis_db: RedisInfo) -> Ledger:
    """Two accounts and five messages in every state, with their attempts.

    bot-1 is healthy; bot-2's session expired two minutes ago.
    """
    delivery.add_account("bot-1", token="tok-metrics-0001-secret", base_url=BASE_URL)
    delivery.add_account("bot-2", token="tok-metrics-0002-secret", base_url=BASE_URL)
    engine = ledger.engine
    with session_scope(engine) as session:
        session.get_one(Account, "bot-1").session_state = SessionState.OK
    expire_session(engine, "bot-2", seconds_ago=120)

    quick = delivery.enqueue("bot-1", "u1@im.wechat", "quick")
    settle(
        engine,
        quick,
        created_seconds_ago=100,
        ended_seconds_ago=90,
        attempts=[(1, AttemptOutcome.RATE_LIMITED), (1, AttemptOutcome.ACCEPTED)],
    )
    slow = delivery.enqueue("bot-1", "u2@im.wechat", "slow")
    settle(
        engine,
        slow,
        created_seconds_ago=5000,
        ended_seconds_ago=1000,
        attempts=[(1, AttemptOutcome.TRANSIENT), (1, AttemptOutcome.ACCEPTED)],
    )
    dead = delivery.enqueue("bot-1", "u3@im.wechat", "refused")
    settle(
        engine,
        dead,
        created_seconds_ago=50,
        attempts=[(1, AttemptOutcome.PERMANENT)],
    )
    half = delivery.enqueue("bot-1", "u4@im.wechat", TWO_CHUNKS)
    settle(
        engine,
        half,
        created_seconds_ago=300,
        attempts=[(1, AttemptOutcome.ACCEPTED), (2, AttemptOutcome.IN_FLIGHT)],
    )
    parked = delivery.enqueue("bot-2", "u5@im.wechat", "waits for a new token")
    settle(
        engine,
        parked,
        created_seconds_ago=60,
        attempts=[(1, AttemptOutcome.LOST), (1, AttemptOutcome.SESSION_EXPIRED)],
    )
    return ledger


def test_messages_attempts_and_backlog_are_counted_from_the_ledger(
    busy_ledger: Ledger, redis_db: RedisInfo
) -> None:
    # Given five messages: two delivered, one dead, one half sent, one queued
    # When Prometheus scrapes
    got = scrape(collector_for(busy_ledger.engine, redis_db.url))

    # Then the final states read as totals, the open ones as levels
    assert got.value("delivery_messages_total", status="delivered") == 2
    assert got.value("delivery_messages_total", status="dead") == 1
    assert got.value("delivery_messages_open", status="sending") == 1
    assert got.value("delivery_messages_open", status="queued") == 1
    # and every attempt is counted by outcome, the unanswered one apart
    want = {
        "accepted": 3,
        "rate_limited": 1,
        "transient": 1,
        "permanent": 1,
        "session_expired": 1,
        "lost": 1,
        "stale_context": 0,
    }
    for outcome, count in want.items():
        assert got.value("delivery_attempts_total", outcome=outcome) == count, outcome
    assert got.value("delivery_attempts_in_flight") == 1
    # and the backlog: the half-sent message's second chunk and the queued one
    assert got.value("delivery_chunks_waiting") == 2
    assert got.value("delivery_oldest_waiting_chunk_seconds") == 300
    assert got.value("delivery_exporter_up") == 1


def test_sessions_are_one_hot_with_the_age_of_an_expiry(
    busy_ledger: Ledger, redis_db: RedisInfo
) -> None:
    got = scrape(collector_for(busy_ledger.engine, redis_db.url))

    assert got.value("delivery_session_state", account="bot-1", state="ok") == 1
    assert got.value("delivery_session_state", account="bot-1", state="expired") == 0
    assert got.value("delivery_session_state", account="bot-1", state="unknown") == 0
    assert got.value("delivery_session_state", account="bot-2", state="expired") == 1
    assert got.value("delivery_session_state", account="bot-2", state="ok") == 0
    assert got.value("delivery_session_expired_seconds", account="bot-2") == 120
    assert got.value("delivery_session_expired_seconds", account="bot-1") == 0


def test_delivery_latency_is_a_histogram_of_created_to_delivered(
    busy_ledger: Ledger, redis_db: RedisInfo
) -> None:
    # Given deliveries that took 10 s and 4000 s
    got = scrape(collector_for(busy_ledger.engine, redis_db.url))

    name = "delivery_delivery_latency_seconds"
    assert got.value(f"{name}_count") == 2
    assert got.value(f"{name}_sum") == pytest.approx(4010, abs=0.01)
    cumulative = {"1.0": 0, "5.0": 0, "15.0": 1, "3600.0": 1, "21600.0": 2, "+Inf": 2}
    for le, count in cumulative.items():
        assert got.value(f"{name}_bucket", le=le) == count, le


def test_queue_depth_and_cooldowns_come_from_redis(
    busy_ledger: Ledger, redis_db: RedisInfo
) -> None:
    # Given the four heads enqueue offered to bot-1's line (one task: its next slot; bot-2's
    # message waits parked for its expired session), and bot-1 cooling down after a rate limit
    gate_on(redis_db.url).cool_down("bot-1", 30)

    got = scrape(collector_for(busy_ledger.engine, redis_db.url))

    assert got.value("delivery_queue_depth", queue=SEND_QUEUE) == 1
    assert len(published(redis_db.url, SEND_QUEUE)) == 1
    assert got.value("delivery_account_line_waiting", account="bot-1") == 4
    assert got.value("delivery_account_line_waiting", account="bot-2") == 0
    assert got.value("delivery_queue_depth", queue=DEFAULT_QUEUE) == 0
    assert 29 < got.value("delivery_account_cooldown_seconds", account="bot-1") <= 30
    assert got.value("delivery_account_cooldown_seconds", account="bot-2") == 0
    assert got.value("delivery_exporter_redis_up") == 1


def test_redis_going_down_leaves_its_metrics_out_and_the_ledger_in(
    sqlite_ledger: Ledger, redis_db: RedisInfo, own_redis: OwnRedis
) -> None:
    # Given an exporter whose broker and gate are a Redis we can stop
    delivery.add_account("bot-1", token="tok-metrics-0001-secret", base_url=BASE_URL)
    delivery.enqueue("bot-1", "u1@im.wechat", "hello")
    collector = collector_for(sqlite_ledger.engine, own_redis.url)
    assert scrape(collector).value("delivery_exporter_redis_up") == 1

    # When that Redis stops
    own_redis.stop()
    got = scrape(collector)

    # Then the scrape still answers, says so, and keeps the ledger's numbers
    assert got.value("delivery_exporter_redis_up") == 0
    assert not got.has("delivery_queue_depth")
    assert not got.has("delivery_account_cooldown_seconds")
    assert got.value("delivery_exporter_up") == 1
    assert got.value("delivery_messages_open", status="queued") == 1


def test_an_unreadable_ledger_is_reported_not_raised(redis_db: RedisInfo, tmp_path: Path) -> None:
    # Given a database that was never migrated
    engine = engine_for(f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    got = scrape(collector_for(engine, redis_db.url))

    assert got.value("delivery_exporter_up") == 0
    assert not got.has("delivery_messages_total")
    assert got.value("delivery_exporter_redis_up") == 1
    assert got.value("delivery_queue_depth", queue=SEND_QUEUE) == 0
    engine.dispose()


def start_exporter(tmp_path: Path, *, env: dict[str, str], name: str) -> tuple[str, ManagedProcess]:
    port = free_port()
    argv = [sys.executable, "-m", "delivery", "metrics", "--port", str(port)]
    process = ManagedProcess(argv, env=env, log_path=tmp_path / f"{name}.log")
    return f"http://127.0.0.1:{port}/metrics", process


def http_scrape(url: str, process: ManagedProcess) -> Scrape:
    def answer() -> Scrape | None:
        assert process.running(), process.log_text()
        try:
            response = requests.get(url, timeout=5)
        except requests.ConnectionError:
            return None
        assert response.status_code == 200
        return Scrape(response.text)

    return wait_until(answer, timeout=30, interval=0.1, message=lambda: process.log_text())


def test_delivery_metrics_serves_over_http_with_redis_up_and_down(
    sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path
) -> None:
    # Given a queued message
    delivery.add_account("bot-1", token="tok-metrics-0001-secret", base_url=BASE_URL)
    delivery.enqueue("bot-1", "u1@im.wechat", "hello")
    env = child_env()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    healthy_url, healthy = start_exporter(tmp_path, env=env, name="exporter")
    blind_url, blind = start_exporter(
        tmp_path, env={**env, "DELIVERY_BROKER_URL": dead, "DELIVERY_REDIS_URL": dead}, name="blind"
    )
    try:
        # When Prometheus scrapes `delivery metrics` over HTTP
        got = http_scrape(healthy_url, healthy)
        # Then it reads the ledger and Redis
        assert got.value("delivery_messages_open", status="queued") == 1
        assert got.value("delivery_queue_depth", queue=SEND_QUEUE) == 1
        assert got.value("delivery_exporter_redis_up") == 1
        assert "tok-metrics" not in got.text

        # And one whose Redis cannot be reached still answers, and says so
        blind_got = http_scrape(blind_url, blind)
        assert blind_got.value("delivery_exporter_redis_up") == 0
        assert blind_got.value("delivery_messages_open", status="queued") == 1
    finally:
        healthy.stop()
        blind.stop()
