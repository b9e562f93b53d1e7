"""Where a pipeline chunk's time goes: sorting a worker's stack samples into categories.

:mod:`bench.profiled_worker` samples the worker's main thread (``--pool solo``, so
tasks run there) about every millisecond and weighs each sample by the wall-clock
and CPU time since the previous one; :func:`category` names what the stack was
doing and :func:`split_samples` adds the weights up over the window from the first
to the last sample taken inside a task. Wall time is what a chunk waits for
(sockets, other processes on the two cores); CPU time is what the worker itself
spends.

Categories, the first that matches the stack (innermost frame last):

=========================  ==========================================================
``HTTP``                   ``delivery.ilink`` client, requests, urllib3, http.client
``SQL``                    SQLAlchemy (ORM and Core), psycopg, sqlite3
``Redis: account gate``    ``delivery.ratelimit`` (the Lua scripts and their calls)
``Redis: publish next``    ``delivery.pipeline.dispatch`` (kombu publishing to Redis)
``pipeline code``          other frames of ``delivery`` inside the task
``Celery/kombu``           receiving, acking, retrying, task events, the worker loop
``idle``                   the worker loop waiting on its sockets (not counted as cost)
=========================  ==========================================================

Example::

    category([("/x/celery/app/trace.py", "trace_task"),
              ("/x/delivery/worker/tasks.py", "send_chunk"),
              ("/x/sqlalchemy/orm/session.py", "execute")])      # "SQL"
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CATEGORIES",
    "IDLE",
    "Sample",
    "Split",
    "category",
    "in_task",
    "label",
    "site",
    "split_profile",
    "split_samples",
]

IDLE = "idle"
CATEGORIES = (
    "HTTP",
    "SQL",
    "Redis: account gate",
    "Redis: publish next",
    "pipeline code",
    "Celery/kombu",
)
_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP", ("/delivery/ilink/", "/requests/", "/urllib3/", "/http/client.py")),
    ("SQL", ("/sqlalchemy/", "/psycopg/", "/sqlite3/")),
    ("Redis: account gate", ("/delivery/ratelimit/",)),
    ("Redis: publish next", ("/delivery/pipeline/dispatch.py", "/delivery/worker/publisher.py")),
)
_TASK_FILE = "/delivery/worker/tasks.py"
_CONTROL = ("BEGIN", "SET LOCAL", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_LIBRARIES = ("/celery/", "/kombu/", "/redis/", "/billiard/", "/vine/")
_WAITS = frozenset({"poll", "select", "epoll", "wait", "_wait", "sleep"})

Frame = tuple[str, str]  # (file name, function name)


def category(stack: Sequence[Frame]) -> str:
    """The category of one stack, outermost frame first."""
    files = [name for name, _ in stack]
    for label, markers in _MARKERS:
        if any(marker in name for name in files for marker in markers):
            return label
    if any(_TASK_FILE in name for name in files):
        for name in reversed(files):
            if "/delivery/" in name:
                return "pipeline code"
            if any(lib in name for lib in _LIBRARIES):
                return "Celery/kombu"
        return "pipeline code"
    if stack and stack[-1][1] in _WAITS:
        return IDLE
    return "Celery/kombu"


def in_task(stack: Sequence[Frame]) -> bool:
    """Whether the stack is inside a task body."""
    return any(_TASK_FILE in name for name, _ in stack)


def label(frame: Frame) -> str:
    """``module.py:function`` (with its package directory) for a frame."""
    return f"{'/'.join(frame[0].rsplit('/', 2)[-2:])}:{frame[1]}"


def site(stack: Sequence[Frame]) -> str:
    """The innermost frame of the ``delivery`` package (where a library was called from)."""
    for frame in reversed(stack):
        if "/delivery/" in frame[0]:
            return label(frame)
    return ""


class Sample(NamedTuple):
    """One stack sample, weighed by the time since the previous one (seconds)."""

    at: float  # time.monotonic() of the sample
    wall: float
    cpu: float  # the sampled thread's CPU time
    category: str
    in_task: bool
    leaf: str  # "dir/file.py:function" of the innermost frame
    site: str  # "dir/file.py:function" of the innermost frame of ``delivery``, or ""


def _per_chunk(seconds: dict[str, float], chunks: int, keys: Sequence[str]) -> dict[str, float]:
    return {key: seconds.get(key, 0.0) * 1000 / chunks for key in keys}


def _top(seconds: dict[str, float], chunks: int, count: int) -> list[tuple[str, float]]:
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:count]
    return [(name, value * 1000 / chunks) for name, value in ranked]


@dataclass(frozen=True)
class Split:
    """Milliseconds per chunk (wall and CPU), by category, over the sampled window."""

    chunks: int
    window_seconds: float
    samples: int
    wall_ms_per_chunk: dict[str, float]  # CATEGORIES and "idle"
    cpu_ms_per_chunk: dict[str, float]
    top_leaves: list[tuple[str, float]]  # innermost functions, wall ms per chunk
    top_sql_sites: list[tuple[str, float]]  # delivery functions issuing SQL, wall ms per chunk
    statements_per_chunk: float  # SQL statements of work (BEGIN and the like not counted)
    commits_per_chunk: float
    top_statements: list[tuple[str, float]]  # statement (first words), executions per chunk
    transaction_control_per_chunk: float = 0.0  # BEGIN (IMMEDIATE), SET LOCAL ...
    task_runs_per_chunk: float = 0.0  # runs of the send task (a retry is one more)

    @property
    def busy_wall_ms(self) -> float:
        return sum(self.wall_ms_per_chunk[name] for name in CATEGORIES)

    @property
    def busy_cpu_ms(self) -> float:
        return sum(self.cpu_ms_per_chunk[name] for name in CATEGORIES)


def split_samples(
    samples: Sequence[Sample],
    *,
    chunks: int,
    since: float = 0.0,
    statements: Sequence[tuple[float, str]] = (),
    commits: Sequence[float] = (),
    task_runs: Sequence[float] = (),
) -> Split:
    """Add the samples up from the first to the last taken inside a task after ``since``.

    ``since`` (``time.monotonic()``) leaves out a warm-up; ``chunks`` is how many
    chunks were sent in the window; ``statements``, ``commits`` and ``task_runs``
    (their times) are counted over the same window. Transaction control (``BEGIN``,
    ``SET LOCAL``) is counted apart from the statements that do the work.

    Raises:
        ValueError: no sample inside a task after ``since``.
    """
    task_times = [s.at for s in samples if s.in_task and s.at >= since]
    if not task_times:
        raise ValueError("no sample was taken inside a task")
    first, last = min(task_times), max(task_times)
    window = [s for s in samples if first <= s.at <= last]
    wall: defaultdict[str, float] = defaultdict(float)
    cpu: defaultdict[str, float] = defaultdict(float)
    leaves: defaultdict[str, float] = defaultdict(float)
    sql_sites: defaultdict[str, float] = defaultdict(float)
    for sample in window:
        wall[sample.category] += sample.wall
        cpu[sample.category] += sample.cpu
        if sample.category != IDLE:
            leaves[sample.leaf] += sample.wall
        if sample.category == "SQL":
            sql_sites[sample.site] += sample.wall
    keys = (*CATEGORIES, IDLE)
    every = Counter(text for at, text in statements if first <= at <= last)
    control = sum(n for text, n in every.items() if text.upper().startswith(_CONTROL))
    executed = Counter({t: n for t, n in every.items() if not t.upper().startswith(_CONTROL)})
    runs = sum(1 for at in task_runs if first - 0.05 <= at <= last)
    return Split(
        chunks=chunks,
        window_seconds=last - first,
        samples=len(window),
        wall_ms_per_chunk=_per_chunk(wall, chunks, keys),
        cpu_ms_per_chunk=_per_chunk(cpu, chunks, keys),
        top_leaves=_top(leaves, chunks, 12),
        top_sql_sites=_top(sql_sites, chunks, 12),
        statements_per_chunk=executed.total() / chunks,
        commits_per_chunk=sum(1 for at in commits if first <= at <= last) / chunks,
        top_statements=[(text, n / chunks) for text, n in executed.most_common(20)],
        transaction_control_per_chunk=control / chunks,
        task_runs_per_chunk=runs / chunks,
    )


def split_profile(path: Path, *, chunks: int, since: float = 0.0) -> Split:
    """Read the samples :mod:`bench.profiled_worker` wrote to ``path`` and split them."""
    recorded = json.loads(path.read_text())
    return split_samples(
        [Sample(*row) for row in recorded["samples"]],
        chunks=chunks,
        since=since,
        statements=[(float(at), str(text)) for at, text in recorded.get("statements", [])],
        commits=[float(at) for at in recorded.get("commits", [])],
        task_runs=[float(at) for at in recorded.get("task_runs", [])],
    )
