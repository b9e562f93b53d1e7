"""The Celery tasks: thin wrappers that load by id, call the pipeline, map the outcome.

Arguments are ids only: no token and no message text ever travels through the
broker or shows in Flower.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

import redis
from celery import Task

from delivery import runtime
from delivery.api import pruning
from delivery.briefings.runner import claim_due_slots, run_slot, stale_runs
from delivery.errors import LedgerError, LimiterUnavailable
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import SEND_TASK
from delivery.pipeline.reconcile import reconcile as reconcile_outbox
from delivery.pipeline.results import Wait
from delivery.worker.app import app
from delivery.worker.presence import QueuedTasks
from delivery.worker.queues import SEND_QUEUE

__all__ = [
    "check_sessions",
    "prune",
    "reconcile",
    "run_briefing",
    "schedule_briefings",
    "send_chunk",
]

RUN_BRIEFING_TASK = "delivery.run_briefing"
_settings = runtime.current().settings
log = logging.getLogger(__name__)


def _outage(task: str, exc: Exception) -> str:
    """A periodic task meets an outage: one clear line, no traceback; the next run retries."""
    log.error("%s skipped this run: %s", task, exc)
    return f"skipped: {exc}"


@app.task(
    bind=True,
    name=SEND_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    # Transient failures back off by Celery's retry_backoff rule with these
    # numbers, plus a floor (see delivery.policy.timing.transient_backoff_seconds).
    retry_backoff=_settings.backoff_base_seconds,
    retry_backoff_max=_settings.backoff_max_seconds,
    retry_jitter=_settings.retry_jitter,
)
def send_chunk(
    self: Task[Any, Any],
    chunk_id: int,
    generation: int | None = None,
    account_id: str | None = None,
) -> str:
    """Send one chunk whose slot came, or wait and retry; see ``delivery.pipeline.send``.

    ``generation`` is the chunk's generation when the task was published; a task
    of an older generation exits (tasks published before leases carry none).
    ``account_id`` names the account's line (tasks from before the line carry none).
    """
    pipeline = runtime.current().pipeline(
        self.retry_backoff, self.retry_backoff_max, self.retry_jitter
    )
    result = pipeline.process(
        int(chunk_id),
        None if generation is None else int(generation),
        None if account_id is None else str(account_id),
    )
    if isinstance(result, Wait):
        raise self.retry(countdown=result.seconds, max_retries=None)
    return result.summary


@app.task(name="delivery.reconcile", acks_late=True)
def reconcile() -> str:
    """Re-publish heads whose task was lost (a Redis flush, a dead worker)."""
    process = runtime.current()
    settings = process.settings
    try:
        done = reconcile_outbox(
            process.engine,
            process.publisher,
            grace_seconds=settings.reconcile_grace_seconds,
            reader_window_seconds=settings.reader_window_seconds,
            reader_budget=settings.reader_budget,
            presence=_queued_tasks(settings.broker_url, settings.reconcile_grace_seconds),
            lines=process.publisher,
        )
    except LedgerError as exc:
        return _outage("reconcile", exc)
    return (
        f"published {done.published}, {done.late} late, {done.unparked} unparked, "
        f"{done.closed} closed"
    )


@functools.cache
def _queued_tasks(broker_url: str, recent_seconds: float) -> QueuedTasks:
    client = redis.Redis.from_url(broker_url, socket_timeout=5)
    return QueuedTasks(client, queue=SEND_QUEUE, recent_seconds=recent_seconds)


@app.task(name="delivery.check_sessions", acks_late=True)
def check_sessions() -> str:
    """Validate every account's session; heal, or report, the expired ones."""
    try:
        results = runtime.current().session_checker.check_all()
    except (LedgerError, LimiterUnavailable) as exc:
        return _outage("check_sessions", exc)
    return "; ".join(f"{r.account_id}: {r.action}" for r in results) or "no accounts"


@app.task(name="delivery.schedule_briefings", acks_late=True)
def schedule_briefings() -> str:
    """Claim due briefing slots (once each, in SQL) and publish a run for each."""
    process = runtime.current()
    settings, engine = process.settings, process.engine
    now = utcnow()
    try:
        runs = claim_due_slots(
            engine, now=now, misfire_grace_seconds=settings.briefing_misfire_grace_seconds
        )
        # A run whose task was lost (worker killed) is published again; it is idempotent.
        lost = stale_runs(
            engine,
            pending_before=now - dt.timedelta(seconds=settings.reconcile_grace_seconds),
            running_before=now - dt.timedelta(seconds=settings.briefing_run_lease_seconds),
        )
        runs += [r for r in lost if r not in runs]
    except LedgerError as exc:
        return _outage("schedule_briefings", exc)
    for run_id in runs:
        run_briefing.apply_async((run_id,))
    return f"{len(runs)} run(s) published"


@app.task(name=RUN_BRIEFING_TASK, acks_late=True)
def run_briefing(run_id: int) -> str:
    """Call one briefing slot's producer and enqueue its texts."""
    try:
        process = runtime.current()
        return run_slot(
            process.engine,
            int(run_id),
            lease_seconds=process.settings.briefing_run_lease_seconds,
        )
    except LedgerError as exc:
        # The run stays claimed; schedule_briefings publishes it again once it is stale.
        return _outage("run_briefing", exc)


@app.task(name="delivery.prune", acks_late=True)
def prune() -> str:
    """Delete delivered and superseded messages past retention, with their chunks and
    attempts, and inbound messages the agent has had, with their hand-overs and
    attempts, in small batches for a bounded time (dead letters stay for replay)."""
    process = runtime.current()
    before = pruning.cutoff(now=utcnow(), older_than_days=process.settings.retention_days)
    try:
        pruned = pruning.prune(
            process.engine,
            before=before,
            statuses=pruning.statuses(include_dead=False),
            max_seconds=pruning.RUN_SECONDS,
        )
    except LedgerError as exc:
        return _outage("prune", exc)
    return f"pruned {pruning.describe(pruned, before=before)}"
