"""The exporter process: the collector wired to the configured ledger and Redis, over HTTP.

The HTTP server is prometheus-client's: ``GET /metrics`` (any path answers the
same), in a background thread. It has **no authentication** and no TLS: bind it
to 127.0.0.1 (the default), or put it behind the proxy that guards Flower.

Example::

    server, thread = serve(host="127.0.0.1", port=9464, registry=build_registry(load_settings()))
    thread.join()
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, start_http_server

from delivery.ledger.db import engine_for
from delivery.monitoring.collector import DeliveryCollector
from delivery.monitoring.ledger_stats import SqlLedgerSource
from delivery.monitoring.redis_stats import RedisSource
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.settings import Settings
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = [
    "REDIS_TIMEOUT_SECONDS",
    "build_collector",
    "build_registry",
    "gate_for",
    "redis_client",
    "serve",
]

# A scrape must answer within Prometheus's scrape timeout (10 s by default), Redis down or not.
REDIS_TIMEOUT_SECONDS = 2.0


def redis_client(url: str) -> redis.Redis:
    """A Redis client that gives up quickly: a report must answer while Redis is down."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )


def gate_for(settings: Settings) -> AccountGate:
    """The account gate, read-only use (state of accounts), on quick-failing Redis."""
    return AccountGate(
        redis_client(settings.limiter_redis_url),
        rate=Rate(per_minute=settings.send_rate_per_minute, burst=settings.send_burst),
        lock_ttl_seconds=settings.send_lock_ttl_seconds,
        prefix=settings.redis_key_prefix,
    )


def build_collector(settings: Settings) -> DeliveryCollector:
    """A collector reading the ledger, broker and account gate that ``settings`` name.

    Raises:
        ConfigError: the database URL is unusable, or names neither SQLite nor PostgreSQL.
    """
    return DeliveryCollector(
        ledger=SqlLedgerSource(
            engine_for(settings.database_url),
            reader_window_seconds=settings.reader_window_seconds,
            reader_budget=settings.reader_budget,
            pace_memory_seconds=settings.pace_memory_seconds,
        ),
        redis=RedisSource(
            broker=redis_client(settings.broker_url),
            gate=gate_for(settings),
            queues=(SEND_QUEUE, DEFAULT_QUEUE),
        ),
    )


def build_registry(settings: Settings) -> CollectorRegistry:
    """A registry holding only the delivery collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(build_collector(settings))
    return registry


def serve(
    *, host: str, port: int, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``host:port`` from a daemon thread; ``port=0`` picks a free one.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    return start_http_server(port, addr=host, registry=registry)
