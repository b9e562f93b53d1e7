"""Which cron job and run a Weixin send belongs to, for its idempotency key.

Hermes's cron delivers a run's result with ``cron.scheduler._deliver_result(job,
content, ...)``: through the live adapter on the gateway's event loop (``send``
gets ``metadata={"job_id": ...}``), or else through ``_send_to_platform`` in a new
event loop of the same thread. :func:`wrap_deliver_result` wraps that function so
that, while it runs, both paths can name the run: by job id (the live path runs
on another thread) and in a context variable (the fallback runs in this one).

A run is the job's ``execution_id`` when Hermes set one, else its ``next_run_at``
as the scheduler saw it when the run was due (the slot being delivered).

Example::

    scheduler._deliver_result = wrap_deliver_result(scheduler._deliver_result)
    run_of_job("a1b2")   # CronRun(job_id='a1b2', run='2026-...') while it delivers
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CronRun", "current_run", "run_of_job", "wrap_deliver_result"]

_WRAPPED_MARK = "__delivery_cron_runs__"


@dataclass(frozen=True)
class CronRun:
    """One run of one cron job."""

    job_id: str
    run: str


_current: contextvars.ContextVar[CronRun | None] = contextvars.ContextVar(
    "delivery_hermes_cron_run", default=None
)
_by_job: dict[str, CronRun] = {}
_lock = threading.Lock()


def run_from_job(job: Mapping[str, Any]) -> CronRun | None:
    """The run a Hermes job dict is in; None when it names neither job nor run."""
    job_id = str(job.get("id") or "")
    run = str(job.get("execution_id") or job.get("next_run_at") or job.get("last_run_at") or "")
    if not job_id or not run:
        return None
    return CronRun(job_id=job_id, run=run)


def current_run() -> CronRun | None:
    """The run being delivered in this thread's context (the fallback path)."""
    return _current.get()


def run_of_job(job_id: str | None) -> CronRun | None:
    """The run of ``job_id`` being delivered now (the live path), if any."""
    if not job_id:
        return None
    with _lock:
        return _by_job.get(str(job_id))


def wrap_deliver_result(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (Hermes's ``_deliver_result``), noting the run while it delivers.
    Wrapping twice wraps once."""
    if getattr(original, _WRAPPED_MARK, False):
        return original

    @functools.wraps(original)
    def deliver_result(job: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        run = run_from_job(job) if isinstance(job, Mapping) else None
        if run is None:
            return original(job, *args, **kwargs)
        token = _current.set(run)
        with _lock:
            _by_job[run.job_id] = run
        try:
            return original(job, *args, **kwargs)
        finally:
            with _lock:
                if _by_job.get(run.job_id) == run:
                    del _by_job[run.job_id]
            _current.reset(token)

    setattr(deliver_result, _WRAPPED_MARK, True)
    return deliver_result
