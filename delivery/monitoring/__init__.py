"""Delivery metrics for Prometheus, computed on every scrape from the ledger and Redis.

Why an exporter of our own: Flower's ``/metrics`` **has no authentication**, even
when Flower itself runs with basic auth, and it knows only Celery tasks
(received, succeeded, retried, runtime), nothing of delivery outcomes. A send
task that succeeds may have met a rate limit, an expired session or a dead
message; only the SQL ledger knows. So ``delivery metrics`` reads the ledger (the
truth, whatever the number of workers and hosts) and Redis, on each scrape. The
outcomes (the counters and the latency histogram) are running totals the ledger
keeps as it writes them (:mod:`delivery.ledger.counters`), and what is open is
counted through indexes, so a scrape costs the same with a million messages in
the ledger as with none.

This exporter **has no authentication either**: it binds 127.0.0.1 by default;
to scrape it from elsewhere, put it behind the same authenticating proxy as
Flower. Its output names accounts and queues, never a token or a text.

Metrics (SQL ledger; left out, with ``delivery_exporter_up 0``, if it cannot be read)::

    delivery_messages_total{status}        counter  delivered | dead | superseded: messages
                                                    that ended so (a replayed dead letter
                                                    counts again when it ends again)
    delivery_messages_open{status}         gauge    queued | sending: messages not yet final
    delivery_attempts_total{outcome}       counter  platform calls by final outcome: accepted,
                                                    rate_limited, session_expired, transient,
                                                    permanent, stale_context, lost; refused
                                                    (a bare refusal), counted again as
                                                    rate_limited or reader_refused once decided
    delivery_attempts_in_flight            gauge    calls started, answer not yet recorded
    delivery_session_state{account,state}  gauge    1 for the current state (unknown|ok|expired)
    delivery_session_expired_seconds{account}  gauge  how long expired (0 when not)
    delivery_chunks_waiting                gauge    chunks not yet sent (pending)
    delivery_oldest_waiting_chunk_seconds  gauge    age of the oldest open message (0: none)
    delivery_readers{state}                gauge    readers: open | window_closed | budget_spent
                                                    | unknown (never wrote)
    delivery_messages_awaiting_reader      gauge    open messages waiting for their reader
    delivery_oldest_awaiting_reader_seconds  gauge  age of the oldest of them (0: none)
    delivery_delivery_latency_seconds      histogram  created_at -> delivered_at, delivered
                                                    messages (counted as each is delivered)

Rate limits are counted as ``delivery_attempts_total{outcome="rate_limited"}``;
there is no separate ``delivery_rate_limited_total``. Counters are totals of all
time: retention deleting old rows leaves them as they are, and they never go
down (a ledger upgraded to them starts from the rows it then held).

Metrics (Redis; left out, with ``delivery_exporter_redis_up 0``, if it cannot be read)::

    delivery_account_cooldown_seconds{account}  gauge  cooldown left after a rate limit
    delivery_queue_depth{queue}            gauge    tasks ready in delivery.send / delivery.default

The exporter's own health::

    delivery_exporter_up                   gauge    1 if the ledger could be read
    delivery_exporter_redis_up             gauge    1 if every Redis read succeeded
    delivery_exporter_scrape_seconds       gauge    how long the scrape took

Example::

    $ delivery metrics --port 9464
    $ curl -s 127.0.0.1:9464/metrics | grep delivery_messages_total
"""

from delivery.monitoring.collector import DeliveryCollector, ledger_metrics, redis_metrics
from delivery.monitoring.exporter import build_collector, build_registry, serve
from delivery.monitoring.ledger_stats import (
    LATENCY_BUCKETS_SECONDS,
    AccountSession,
    LatencyHistogram,
    LedgerSource,
    LedgerStats,
    SqlLedgerSource,
)
from delivery.monitoring.redis_stats import RedisSource, RedisStats, RedisStatsSource

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "AccountSession",
    "DeliveryCollector",
    "LatencyHistogram",
    "LedgerSource",
    "LedgerStats",
    "RedisSource",
    "RedisStats",
    "RedisStatsSource",
    "SqlLedgerSource",
    "build_collector",
    "build_registry",
    "ledger_metrics",
    "redis_metrics",
    "serve",
]
