"""The Prometheus collector: every scrape reads the ledger and Redis afresh.

Nothing is counted in this process (the ledger keeps its own running totals).
The numbers are what the ledger and Redis hold at scrape time, so they are right
whatever the number of workers and hosts, and the same in every exporter replica.
The metric names and their meaning are listed in :mod:`delivery.monitoring`.

Example::

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(ledger=SqlLedgerSource(engine), redis=redis_source))
    generate_latest(registry)
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from delivery.errors import LedgerError
from delivery.ledger.states import FINAL_MESSAGE_STATES, AttemptOutcome, SessionState
from delivery.ledger.types import utcnow
from delivery.monitoring.ledger_stats import LedgerSource, LedgerStats
from delivery.monitoring.redis_stats import RedisStats, RedisStatsSource

__all__ = ["DeliveryCollector", "ledger_metrics", "redis_metrics"]

log = logging.getLogger(__name__)


class DeliveryCollector(Collector):
    """Reads ``ledger`` and ``redis`` on each scrape and turns them into metric families.

    Neither source being down fails a scrape: the ledger's metrics are left out
    and ``delivery_exporter_up`` is 0, or Redis's are and
    ``delivery_exporter_redis_up`` is 0. ``redis=None`` leaves Redis out entirely.
    ``clock`` gives the current time (timezone-aware UTC) for ages.
    """

    def __init__(
        self,
        *,
        ledger: LedgerSource,
        redis: RedisStatsSource | None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._ledger = ledger
        self._redis = redis
        self._clock = clock
        # Last scrape's health, so an outage is logged once, not on every scrape.
        self._was_up: dict[str, bool] = {}

    def describe(self) -> list[Metric]:
        # Nothing up front: registering must not query the ledger.
        return []

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = self._clock()
        stats: LedgerStats | None = None
        try:
            stats = self._ledger.read()
        except LedgerError as exc:
            self._health("ledger", up=False, why=str(exc))
        else:
            self._health("ledger", up=True)
            yield from ledger_metrics(stats, now=now)
        if self._redis is not None:
            accounts = [a.account_id for a in stats.accounts] if stats else []
            found = self._redis.read(accounts)
            self._health("redis", up=found.up, why=found.error or "")
            yield from redis_metrics(found)
            yield _gauge(
                "delivery_exporter_redis_up",
                "1 if every Redis read of this scrape (queues, cooldowns) succeeded.",
                1 if found.up else 0,
            )
        yield _gauge(
            "delivery_exporter_up",
            "1 if the SQL ledger could be read.",
            0 if stats is None else 1,
        )
        yield _gauge(
            "delivery_exporter_scrape_seconds",
            "How long this scrape took to read the ledger and Redis.",
            time.perf_counter() - started,
        )

    def _health(self, part: str, *, up: bool, why: str = "") -> None:
        before = self._was_up.get(part)
        self._was_up[part] = up
        if before is not False and not up:
            log.warning("metrics: %s unreadable, its metrics are left out: %s", part, why)
        elif before is False and up:
            log.info("metrics: %s readable again", part)


def ledger_metrics(stats: LedgerStats, *, now: dt.datetime) -> Iterator[Metric]:
    """The metric families of one ledger reading; ages are counted up to ``now``."""
    final = CounterMetricFamily(
        "delivery_messages",
        "Messages that reached a final state: delivered, dead with a reason, or superseded "
        "(totals of all time: pruning old rows does not lower them).",
        labels=["status"],
    )
    open_ = GaugeMetricFamily(
        "delivery_messages_open",
        "Messages not yet final: queued (nothing sent yet) or sending (some chunks sent).",
        labels=["status"],
    )
    for status, count in stats.messages.items():
        (final if status in FINAL_MESSAGE_STATES else open_).add_metric([status], count)
    yield final
    yield open_

    attempts = CounterMetricFamily(
        "delivery_attempts",
        "Platform calls by outcome (rate_limited: the platform's rate limit answered; a bare "
        "refusal counts as refused, and again as what a probe decides it was).",
        labels=["outcome"],
    )
    for outcome, count in stats.attempts.items():
        if outcome != AttemptOutcome.IN_FLIGHT:
            attempts.add_metric([outcome], count)
    yield attempts
    yield _gauge(
        "delivery_attempts_in_flight",
        "Platform calls started and not yet answered.",
        stats.attempts.get(AttemptOutcome.IN_FLIGHT, 0),
    )

    states = GaugeMetricFamily(
        "delivery_session_state",
        "1 for the account's current session state, 0 for the others.",
        labels=["account", "state"],
    )
    expired = GaugeMetricFamily(
        "delivery_session_expired_seconds",
        "How long the account's session has been expired (0 while it is not).",
        labels=["account"],
    )
    known = [str(s) for s in SessionState]
    for account in stats.accounts:
        for state in known if account.state in known else [*known, account.state]:
            states.add_metric([account.account_id, state], 1 if state == account.state else 0)
        since = account.expired_at if account.state == SessionState.EXPIRED else None
        expired.add_metric([account.account_id], _age(since, now))
    yield states
    yield expired
    learned = GaugeMetricFamily(
        "delivery_account_learned_rate_per_minute",
        "The send rate an account learned from the platform's refusal (its ceiling below "
        "DELIVERY_SEND_RATE_PER_MINUTE); only accounts with one in force.",
        labels=["account"],
    )
    for account in stats.accounts:
        if account.learned_per_minute is not None:
            learned.add_metric([account.account_id], account.learned_per_minute)
    yield learned

    yield _gauge(
        "delivery_chunks_waiting",
        "Chunks not yet sent (pending) in the ledger, whether queued, waiting or retrying.",
        stats.chunks_waiting,
    )
    yield _gauge(
        "delivery_oldest_waiting_chunk_seconds",
        "Age of the oldest message with a chunk still waiting (0 when none waits).",
        _age(stats.oldest_waiting_since, now),
    )

    readers = GaugeMetricFamily(
        "delivery_readers",
        "Readers by state: open, window_closed, budget_spent, unknown (never wrote).",
        labels=["state"],
    )
    for state, count in stats.readers.items():
        readers.add_metric([state], count)
    yield readers
    yield _gauge(
        "delivery_messages_awaiting_reader",
        "Open messages whose chat waits for its reader to write (window closed, budget spent).",
        stats.awaiting_reader,
    )
    yield _gauge(
        "delivery_oldest_awaiting_reader_seconds",
        "Age of the oldest message waiting for its reader (0 when none waits).",
        _age(stats.oldest_awaiting_reader_since, now),
    )

    latency = stats.latency
    yield HistogramMetricFamily(
        "delivery_delivery_latency_seconds",
        "Time from enqueue (created_at) to the last chunk accepted (delivered_at).",
        buckets=[(_le(b), n) for b, n in latency.buckets] + [("+Inf", latency.count)],
        sum_value=latency.sum_seconds,
    )


def redis_metrics(stats: RedisStats) -> Iterator[Metric]:
    """The metric families of one Redis reading; a part that could not be read is left out."""
    if stats.cooldown_seconds is not None:
        cooldown = GaugeMetricFamily(
            "delivery_account_cooldown_seconds",
            "Seconds left of the account's cooldown after a rate-limit answer (0: none).",
            labels=["account"],
        )
        for account_id, seconds in stats.cooldown_seconds.items():
            cooldown.add_metric([account_id], seconds)
        yield cooldown
    if stats.line_waiting is not None:
        line = GaugeMetricFamily(
            "delivery_account_line_waiting",
            "Parts waiting in the account's line for a send slot (the one holding the next "
            "slot included); they have no task until their slot comes.",
            labels=["account"],
        )
        for account_id, waiting in stats.line_waiting.items():
            line.add_metric([account_id], waiting)
        yield line
    if stats.queue_depths is not None:
        depth = GaugeMetricFamily(
            "delivery_queue_depth",
            "Tasks ready in a Celery queue (tasks held for a countdown are not counted).",
            labels=["queue"],
        )
        for queue, count in stats.queue_depths.items():
            depth.add_metric([queue], count)
        yield depth


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(since: dt.datetime | None, now: dt.datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def _le(seconds: float) -> str:
    """A bucket bound as prometheus-client writes its own (``1.0``, ``86400.0``)."""
    return repr(float(seconds))
