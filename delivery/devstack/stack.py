"""One local stack for the tests, the benchmarks and the demo.

A stack is a Redis (a private redis-server, or one handed in), a ledger at the
migration head (a temporary SQLite or PostgreSQL one, or one handed in), the
platform simulator, the ``DELIVERY_*`` settings of its processes (a clock from
:mod:`delivery.devstack.clock` and the stack's URLs), accounts, and real Celery
workers, beat and the inbound relay. Everything it started is stopped, and
everything it created dropped, when the ``with`` block ends, however it ends.

Whose settings this process follows (``in_process``):

- ``True`` (the benchmarks, the demo): the stack's. This process enqueues, adds
  accounts and publishes with the same settings as the workers, until the block
  ends; children get the stack's ``DELIVERY_*`` variables and none of ours.
- ``False`` (the tests): the caller's (its fixtures install this process's runtime);
  children get that runtime's settings as variables, with the stack's on top.

Example::

    with local_stack(workdir, settings=clock.bench(1 / 25)) as stack:
        stack.add_account("bot-1", token="tok")
        stack.start_worker(queues=SEND_QUEUE)
        stack.start_worker(queues=DEFAULT_QUEUE, beat=True)
        delivery.enqueue("bot-1", "reader@im.wechat", "hello")
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg

import delivery
from delivery import runtime
from delivery.devstack import clock
from delivery.devstack.handover_side import start_relay_process
from delivery.devstack.processes import ManagedProcess, celery_argv
from delivery.devstack.redis_server import LocalRedis
from delivery.ledger.db import engine_for, upgrade_head
from delivery.runtime import Runtime
from delivery.settings import ENV_PREFIX, Settings, as_env, from_env, load_settings
from delivery.simulator import PlatformSimulator, SimulatorConfig
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["PG_ADMIN_DSN", "Backend", "LocalStack", "local_stack", "temporary_ledger"]

Backend = Literal["sqlite", "postgresql"]
# The server a temporary PostgreSQL ledger is created on, and dropped from.
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
READY_SECONDS = 90.0  # a worker's start on a busy two-core machine
_PING_SECONDS = 0.5


@dataclass
class LocalStack:
    """A running stack; see :func:`local_stack`."""

    workdir: Path
    log_dir: Path
    database_url: str
    redis_url: str
    simulator: PlatformSimulator
    settings: dict[str, str]  # the stack's DELIVERY_* variables
    in_process: bool
    redis: LocalRedis | None = None  # the private redis-server, when the stack started one
    processes: list[ManagedProcess] = field(default_factory=list)
    cleanup: ExitStack = field(default_factory=ExitStack)
    _runtimes: list[Runtime] = field(default_factory=list)  # installed by the stack
    _previous: Runtime | None = None  # this process's runtime before them

    def env(self) -> dict[str, str]:
        """The environment of a child process started now: ours without settings, the
        settings this process runs on unless it follows the stack's, the stack's."""
        env = {k: v for k, v in os.environ.items() if not _setting_variable(k)}
        if not self.in_process:
            env.update(as_env(runtime.current().settings))
        return env | self.settings

    def configure(
        self, mapping: Mapping[str, str] | None = None, **values: float | int | str
    ) -> None:
        """Change settings for processes started from now on, and for this process when
        it follows the stack's: ``DELIVERY_*`` variables in ``mapping``, or by name
        (``configure(send_rate_per_minute=300)``)."""
        self.settings.update(mapping or {})
        self.settings.update(clock.values(**values))
        if self.in_process:
            self._apply_in_process(self.settings)

    def add_account(self, account_id: str, *, token: str, owns_inbound: bool = False) -> str:
        """The account on the simulator and in the ledger, pointed at the simulator."""
        self.simulator.model.register_account(account_id, token=token)
        delivery.add_account(
            account_id, token=token, base_url=self.simulator.base_url, owns_inbound=owns_inbound
        )
        return account_id

    def start_worker(
        self,
        *,
        queues: str = f"{SEND_QUEUE},{DEFAULT_QUEUE}",
        beat: bool = False,
        name: str | None = None,
        log_name: str | None = None,
        concurrency: int = 1,
        loglevel: str = "INFO",
        pool: str | None = None,
        wrapper: list[str] | None = None,
    ) -> ManagedProcess:
        """A real worker (prefork, prefetch 1, as ``delivery worker`` runs it), once ready.

        ``beat`` embeds beat (the reconciler); ``pool="solo"`` runs tasks in the main
        process; ``wrapper`` replaces ``-m celery`` by another module that runs Celery
        (a profiler). Its log is ``log_dir/<log_name or node>.log``. Ready means it
        logged "ready." (at INFO) or answers a ping (quieter levels log nothing then).

        Raises:
            RuntimeError: it exited, or was not ready in time.
        """
        node = name or f"worker-{uuid.uuid4().hex[:8]}"
        schedule = self.log_dir / f"{node}-beat-schedule" if beat else None
        argv = celery_argv(
            "worker",
            queues=queues,
            name=node,
            beat_schedule=schedule,
            concurrency=concurrency,
            loglevel=loglevel,
            extra=["--pool", pool] if pool else None,
        )
        if wrapper is not None:
            argv = [argv[0], *wrapper, *argv[3:]]  # in place of "-m celery"
        worker = self._start(argv, log_name or node)
        if loglevel in ("INFO", "DEBUG") or not self.in_process:
            worker.wait_for_log("ready.", timeout_seconds=READY_SECONDS)
        else:
            _wait_ping(worker, f"{node}@{socket.gethostname()}")
        return worker

    def start_beat(self, name: str = "beat") -> ManagedProcess:
        """A real ``celery beat`` with the project's leader scheduler, once started."""
        argv = celery_argv("beat", beat_schedule=self.log_dir / f"{name}-schedule")
        beat = self._start(argv, name)
        beat.wait_for_log("beat: Starting", timeout_seconds=READY_SECONDS)
        return beat

    def start_relay(self, name: str = "relay") -> ManagedProcess:
        """A real ``delivery relay`` process, once it runs."""
        relay = start_relay_process(self.env(), self.log_dir / f"{name}.log")
        self.processes.append(relay)
        return relay

    def stop_processes(self) -> None:
        """Stop every process started, the last first."""
        while self.processes:
            self.processes.pop().stop()

    def logs(self) -> str:
        """Every running process's log, one after the other."""
        return "\n".join(p.log_text() for p in self.processes)

    def _apply_in_process(self, values: Mapping[str, str] | None) -> None:
        """This process runs on ``values`` (the stack's ``DELIVERY_*`` variables) from
        now on, or, given ``None``, on the runtime it had before the stack again: the
        one place a stack configures the process it runs in."""
        if values is None:
            runtime.install(self._previous)
            while self._runtimes:
                self._runtimes.pop().close()
            return
        ours = {k: v for k, v in values.items() if _setting_variable(k)}
        made = Runtime(load_settings(**from_env(ours)))
        previous = runtime.install(made)
        if not self._runtimes:
            self._previous = previous
        self._runtimes.append(made)

    def _start(self, argv: list[str], log_name: str) -> ManagedProcess:
        process = ManagedProcess(argv, env=self.env(), log_path=self.log_dir / f"{log_name}.log")
        self.processes.append(process)
        return process


@contextmanager
def local_stack(
    workdir: Path,
    *,
    settings: Mapping[str, str] | None = None,
    database_url: str | None = None,
    ledger: Backend = "sqlite",
    redis_url: str | None = None,
    simulator: SimulatorConfig | None = None,
    log_dir: Path | None = None,
    in_process: bool = True,
    kind: type[LocalStack] = LocalStack,
) -> Iterator[LocalStack]:
    """Start a stack in ``workdir``; stop and drop it all when the block ends.

    ``settings`` are ``DELIVERY_*`` variables (a clock, and whatever else); the
    stack adds its URLs. ``database_url`` is a ledger already at the head, else a
    temporary one of kind ``ledger`` is made; ``redis_url`` a Redis to share, else a
    private redis-server is started; ``simulator`` the platform's configuration.
    Logs go to ``log_dir`` (``workdir`` by default). ``kind`` is the class of the
    stack yielded: a :class:`LocalStack` with more of its own (the tests').
    """
    with ExitStack() as resources:
        redis = None
        if redis_url is None:
            redis = LocalRedis(directory=workdir / "redis")
            resources.callback(redis.stop)
            redis.start()
            redis_url = redis.url
        if database_url is None:
            database_url = resources.enter_context(temporary_ledger(ledger, workdir))
        platform = resources.enter_context(PlatformSimulator(config=simulator))
        values = dict(settings or {})
        values[f"{ENV_PREFIX}DATABASE_URL"] = database_url
        if redis is not None or in_process:
            values[f"{ENV_PREFIX}BROKER_URL"] = redis_url
            values[f"{ENV_PREFIX}REDIS_URL"] = redis_url
        stack = kind(
            workdir=workdir,
            log_dir=log_dir or workdir,
            database_url=database_url,
            redis_url=redis_url,
            simulator=platform,
            settings=values,
            in_process=in_process,
            redis=redis,
        )
        if in_process:
            resources.callback(stack._apply_in_process, None)
            stack._apply_in_process(values)
        resources.callback(stack.stop_processes)
        resources.enter_context(stack.cleanup)
        yield stack


def _setting_variable(name: str) -> bool:
    """Whether ``name`` is the environment variable of a setting."""
    return name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() in Settings.model_fields


def _wait_ping(worker: ManagedProcess, node: str) -> None:
    """Wait until ``node`` answers a ping (through this process's broker: the stack's)."""
    app = runtime.current().app

    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not worker.running():
            raise RuntimeError(f"worker exited:\n{worker.log_text()[-3000:]}")
        if app.control.ping(destination=[node], timeout=_PING_SECONDS):
            return
    raise RuntimeError(f"worker {node} not ready after {READY_SECONDS:g}s")


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
