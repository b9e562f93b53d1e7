"""Memory over a run: the workers' resident memory and Redis's, sampled by a thread.

Every :data:`SAMPLE_SECONDS` the sampler reads the ``VmRSS`` of each worker
process and of all its descendants (a prefork worker is a main process and its
pool child) from ``/proc``, Redis's ``used_memory`` (``INFO memory``), the length
of the send queue and of kombu's ``unacked`` hash (tasks a worker holds, those
waiting for their countdown included), and how many messages the ledger still
has open.

Example::

    with MemorySampler(pids=lambda: [w.pid for w in workers], client=client,
                       open_messages=probe_open, t0=time.monotonic()) as sampler:
        ...
    sampler.summary()     # {"worker_rss_kib": {"start": ..., "peak": ..., "end": ...}, ...}
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from bench.common import tree_status_kib
from delivery.worker.queues import SEND_QUEUE

__all__ = ["MemorySampler", "Sample", "tree_cpu_seconds", "tree_rss_kib"]

SAMPLE_SECONDS = 1.0
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged


def tree_rss_kib(root_pid: int) -> int:
    """Current resident memory (``VmRSS``, KiB) of ``root_pid`` and its descendants."""
    return sum(tree_status_kib(root_pid, "VmRSS").values())


@dataclass(frozen=True)
class Sample:
    """One look, ``at`` seconds after ``t0``."""

    at: float
    worker_rss_kib: int
    redis_used_memory: int
    send_queue: int
    unacked: int
    open_messages: int


class MemorySampler:
    """A thread sampling memory and queues; see the module docstring."""

    def __init__(
        self,
        *,
        pids: Callable[[], list[int]],
        client: redis.Redis,
        open_messages: Callable[[], int],
        t0: float,
    ) -> None:
        self._pids = pids
        self._client = client
        self._open_messages = open_messages
        self._t0 = t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory sampler", daemon=True)
        self.samples: list[Sample] = []

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        pipe = self._client.pipeline()
        pipe.info("memory")
        pipe.llen(SEND_QUEUE)
        pipe.hlen(UNACKED_KEY)
        memory, queued, unacked = pipe.execute()
        self.samples.append(
            Sample(
                at=time.monotonic() - self._t0,
                worker_rss_kib=sum(tree_rss_kib(pid) for pid in self._pids()),
                redis_used_memory=int(memory["used_memory"]),
                send_queue=int(queued),
                unacked=int(unacked),
                open_messages=self._open_messages(),
            )
        )

    def summary(self) -> dict[str, Any]:
        """Start, peak and end of each figure, and the samples themselves."""

        def span(name: str) -> dict[str, float]:
            values = [getattr(s, name) for s in self.samples]
            return {"start": values[0], "peak": max(values), "end": values[-1]}

        return {
            "worker_rss_kib": span("worker_rss_kib"),
            "redis_used_memory": span("redis_used_memory"),
            "send_queue": span("send_queue"),
            "unacked": span("unacked"),
            "open_messages": span("open_messages"),
            "samples": [asdict(s) for s in self.samples],
        }


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by ``root_pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if pid in stats:  # utime and stime: fields 14 and 15 of /proc/<pid>/stat
            total += (int(stats[pid][11]) + int(stats[pid][12])) / tick
    return total
