"""What every benchmark needs around :func:`delivery.devstack.stack.local_stack`: a
scratch directory, the pipeline's workers, a ledger probe, and the output files.

What is started is stopped, and what is created dropped, when the ``with`` block
ends, however it ends (an error, Ctrl-C, SIGTERM turned into ``KeyboardInterrupt``
by :func:`bench.__main__.main`).

Example::

    with bench_stack("burst", settings=clock.bench(1 / 25)) as stack:
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        start_workers(stack)
        delivery.enqueue_many(messages)                 # this process on the stack's settings
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.observe import LedgerProbe
from delivery.devstack import ManagedProcess
from delivery.devstack.stack import PG_ADMIN_DSN, Backend, LocalStack, local_stack
from delivery.simulator import SimulatorConfig
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = [
    "BENCH_DIR",
    "OUT_DIR",
    "QUIET",
    "Backend",
    "bench_stack",
    "environment",
    "ledger_probe",
    "peak_rss_kib",
    "scratch_dir",
    "start_workers",
    "write_result",
]

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
# Workers log warnings only: a line per task would be part of what is measured.
QUIET = "WARNING"


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A fresh temporary directory for logs and SQLite files.

    Removed afterwards, unless the block failed with an error: then its worker
    logs are kept for reading, and the path is printed.
    """
    path = Path(tempfile.mkdtemp(prefix=f"delivery-bench-{name}-"))
    try:
        yield path
    except Exception:
        print(f"bench: kept {path} (worker logs) for inspection")
        raise
    except BaseException:  # Ctrl-C: leave nothing behind
        shutil.rmtree(path, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def bench_stack(
    name: str,
    *,
    settings: Mapping[str, str] | None = None,
    ledger: Backend = "sqlite",
    simulator: SimulatorConfig | None = None,
) -> Iterator[LocalStack]:
    """A stack of its own in a scratch directory: a private redis-server, a temporary
    ledger, the simulator, and this process on the stack's ``settings``."""
    with (
        scratch_dir(name) as workdir,
        local_stack(workdir, settings=settings, ledger=ledger, simulator=simulator) as stack,
    ):
        yield stack


def start_workers(stack: LocalStack, *, send_workers: int = 1) -> list[ManagedProcess]:
    """``send_workers`` send workers (``send-<n>.log``), then the default-queue worker
    with beat, the reconciler (``default.log``); each ready when this returns."""
    workers = [
        stack.start_worker(queues=SEND_QUEUE, log_name=f"send-{n}", loglevel=QUIET)
        for n in range(send_workers)
    ]
    default = stack.start_worker(
        queues=DEFAULT_QUEUE, beat=True, log_name="default", loglevel=QUIET
    )
    return [*workers, default]


def ledger_probe(stack: LocalStack) -> LedgerProbe:
    """A probe of the stack's ledger, closed with the stack."""
    probe = LedgerProbe(stack.database_url)
    stack.cleanup.callback(probe.close)
    return probe


def tree_status_kib(root_pid: int, field: str) -> dict[int, int]:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``, ``VmHWM``) of ``root_pid`` and
    its descendants, by pid."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    values: dict[int, int] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                values[pid] = int(line.split()[1])
    return values


def peak_rss_kib(root_pid: int) -> dict[int, int]:
    """Peak resident memory (``VmHWM``, KiB) of ``root_pid`` and its descendants, by pid."""
    return tree_status_kib(root_pid, "VmHWM")


def environment() -> dict[str, str]:
    """The machine and the versions the figures were measured with."""
    import platform
    import sqlite3

    import celery
    import sqlalchemy

    from delivery.devstack import redis_server_binary

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    redis = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as connection:
            postgres = str(connection.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        postgres = "unreachable"
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": next((w.split("=", 1)[1] for w in redis if w.startswith("v=")), "?"),
        "postgresql": postgres.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "celery": celery.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """Write ``bench/out/<name>.json`` and return its path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")
    return path
