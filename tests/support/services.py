"""The real Redis and PostgreSQL the tests use.

Under ``CI`` a missing service fails the test; elsewhere it is skipped with the
command that starts it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

REDIS_HOST = os.environ.get("DELIVERY_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("DELIVERY_TEST_REDIS_PORT", "6379"))
PG_DSN = os.environ.get("DELIVERY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
_LOCK_KEY = "delivery-tests:owner"
_LOCK_TTL_SECONDS = 3600

START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def missing(service: str, how: str, error: Exception) -> None:
    text = f"{service} is not reachable ({error}); start it with: {how}"
    if os.environ.get("CI"):
        pytest.fail(text, pytrace=False)
    pytest.skip(text)


def redis_available() -> None:
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing("Redis", START_REDIS, exc)


def claim_redis_db() -> int:
    """A Redis database number no other test session is using (1-15)."""
    owner = uuid.uuid4().hex
    for db in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if client.set(_LOCK_KEY, owner, nx=True, ex=_LOCK_TTL_SECONDS):
            client.close()
            return db
    raise RuntimeError("every Redis database 1-15 is claimed by another test session")


def release_redis_db(db: int) -> None:
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def flush_redis_db(db: int) -> None:
    """Empty the database but keep this session's claim on it."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    owner = client.get(_LOCK_KEY)
    client.flushdb()
    if owner is not None:
        client.set(_LOCK_KEY, owner, ex=_LOCK_TTL_SECONDS)


def postgres_available() -> None:
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        missing("PostgreSQL", START_PG, exc)


@contextmanager
def temporary_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test session; dropped afterwards."""
    name = f"delivery_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def allow_connections(database: str, allowed: bool) -> None:
    """Let clients connect to PostgreSQL ``database`` again, or cut them all off."""
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
