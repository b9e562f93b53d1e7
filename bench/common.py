"""What every benchmark needs: a private Redis, a temporary ledger, the simulator,
real workers, the pipeline's settings on a compressed clock, and the output files.

Everything here is a context manager that stops or drops what it started when the
``with`` block ends, however it ends (an error, Ctrl-C, SIGTERM turned into
``KeyboardInterrupt`` by :func:`bench.__main__.main`).

Example::

    with ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir("burst"))
        redis_url = stack.enter_context(private_redis(workdir)).url
        database_url = stack.enter_context(temporary_ledger("sqlite", workdir))
        env = pipeline_env(database_url=database_url, redis_url=redis_url, overrides={})
        stack.enter_context(delivery_env(env))          # this process enqueues with it
        stack.enter_context(celery_worker(env, workdir / "worker.log"))
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import psycopg

from delivery import runtime
from delivery.devstack import LocalRedis, ManagedProcess, celery_argv
from delivery.ledger.db import engine_for, upgrade_head
from delivery.runtime import Runtime
from delivery.settings import ENV_PREFIX, Settings, from_env, load_settings
from delivery.simulator import PlatformSimulator, SimulatorConfig
from delivery.worker.queues import SEND_QUEUE

__all__ = [
    "BENCH_DIR",
    "OUT_DIR",
    "PG_ADMIN_DSN",
    "Backend",
    "celery_worker",
    "compressed_settings",
    "delivery_env",
    "environment",
    "peak_rss_kib",
    "pipeline_env",
    "private_redis",
    "running_simulator",
    "scratch_dir",
    "temporary_ledger",
    "write_result",
]

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
WORKER_READY_SECONDS = 60.0
# How long a publish may wait for the broker is about this machine's sockets, not
# about the platform's clock: it is not compressed.
_NOT_COMPRESSED = frozenset({"publish_timeout_seconds"})

Backend = Literal["sqlite", "postgresql"]


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
def private_redis(workdir: Path) -> Iterator[LocalRedis]:
    """A redis-server of our own on a free port; nobody else's Redis is touched."""
    server = LocalRedis(directory=workdir / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def temporary_ledger(backend: Backend, workdir: Path) -> Iterator[str]:
    """A ledger at the migration head; yields its URL. A PostgreSQL one is dropped after."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'ledger-{uuid.uuid4().hex[:6]}.sqlite3'}"
        upgrade_head(url)
        try:
            yield url
        finally:
            engine_for(url).dispose()
        return
    name = f"delivery_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    try:
        upgrade_head(url)
        yield url
    finally:
        engine_for(url).dispose()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_simulator(config: SimulatorConfig) -> Iterator[PlatformSimulator]:
    """The platform simulator, serving from a thread of this process."""
    with PlatformSimulator(config=config) as simulator:
        yield simulator


def compressed_settings(factor: float) -> dict[str, str]:
    """The pipeline's default time knobs multiplied by ``factor`` (e.g. 1/20), as env vars.

    Every ``*_seconds`` setting is scaled (gaps, cooldowns, backoffs, rechecks,
    lock TTL, visibility timeout, HTTP timeout...) and the send rate divided, so
    the pipeline runs its own production defaults on the compressed clock.
    """
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        if name.endswith("_seconds") and name not in _NOT_COMPRESSED:
            default = field.default
            if isinstance(default, int | float) and not isinstance(default, bool):
                env[f"{ENV_PREFIX}{name.upper()}"] = f"{default * factor:.6g}"
    rate = Settings.model_fields["send_rate_per_minute"].default
    env[f"{ENV_PREFIX}SEND_RATE_PER_MINUTE"] = f"{rate / factor:.6g}"
    return env


def pipeline_env(
    *, database_url: str, redis_url: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a worker (and of this process while it enqueues)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(overrides)
    env[f"{ENV_PREFIX}DATABASE_URL"] = database_url
    env[f"{ENV_PREFIX}BROKER_URL"] = redis_url
    env[f"{ENV_PREFIX}REDIS_URL"] = redis_url
    return env


@contextmanager
def delivery_env(env: Mapping[str, str]) -> Iterator[Runtime]:
    """This process runs on ``env``'s ``DELIVERY_*`` settings and broker (a runtime of
    its own), then on the one it had."""
    own = Runtime(load_settings(**from_env(env)))
    try:
        with runtime.use(own):
            yield own
    finally:
        own.close()


@contextmanager
def celery_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    queues: str = SEND_QUEUE,
    beat: bool = False,
    pool: str | None = None,
    wrapper: list[str] | None = None,
) -> Iterator[ManagedProcess]:
    """A real ``celery -A delivery worker`` (prefork, concurrency 1, prefetch 1).

    ``beat`` embeds beat (the reconciler); ``pool="solo"`` runs tasks in the main
    process; ``wrapper`` replaces ``python -m celery`` by another module that runs
    Celery (the profiler's).
    """
    node = f"bench-{uuid.uuid4().hex[:8]}"
    schedule = log_path.parent / f"{node}-beat-schedule" if beat else None
    extra = ["--pool", pool] if pool else []
    argv = celery_argv(
        "worker", queues=queues, name=node, beat_schedule=schedule, loglevel="WARNING", extra=extra
    )
    if wrapper is not None:
        argv = [argv[0], *wrapper, *argv[3:]]  # drop "-m celery"
    worker = ManagedProcess(argv, env=env, log_path=log_path)
    try:
        _wait_ready(worker, f"{node}@{socket.gethostname()}")
        yield worker
    finally:
        worker.stop()


def _wait_ready(worker: ManagedProcess, node: str) -> None:
    """Wait until the worker answers a ping (at WARNING it logs nothing when ready).

    Needs this process's runtime on the worker's broker (:func:`delivery_env`).
    """
    app = runtime.current().app
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if not worker.running():
            raise RuntimeError(f"worker exited:\n{worker.log_text()[-3000:]}")
        if app.control.ping(destination=[node], timeout=0.5):
            return
    raise RuntimeError(f"worker {node} not ready after {WORKER_READY_SECONDS:g}s")


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
