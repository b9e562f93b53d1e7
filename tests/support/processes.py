"""Real Celery processes started by the tests, and stopped (or killed) by them."""

from __future__ import annotations

import uuid
from pathlib import Path

from delivery.devstack import ManagedProcess, celery_argv
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

WORKER_READY_SECONDS = 60.0

CeleryProcess = ManagedProcess


def start_worker(
    *,
    env: dict[str, str],
    log_dir: Path,
    queues: str = f"{SEND_QUEUE},{DEFAULT_QUEUE}",
    beat: bool = False,
    name: str | None = None,
    concurrency: int = 1,
) -> ManagedProcess:
    """A real worker: prefork, prefetch 1, as ``delivery worker`` runs it (concurrency 1
    for the send queue; ``delivery worker`` gives the default queue 2)."""
    node = name or f"test-{uuid.uuid4().hex[:8]}"
    schedule = log_dir / f"{node}-beat-schedule" if beat else None
    argv = celery_argv(
        "worker", queues=queues, name=node, beat_schedule=schedule, concurrency=concurrency
    )
    worker = ManagedProcess(argv, env=env, log_path=log_dir / f"{node}.log")
    worker.wait_for_log("ready.", timeout_seconds=WORKER_READY_SECONDS)
    return worker
