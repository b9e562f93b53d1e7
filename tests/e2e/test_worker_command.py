"""``delivery worker`` runs the send worker (concurrency 1) and the default-queue worker,
restarts one that dies, and takes both with it when it is killed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ledger, RedisInfo
from tests.support.configure import child_env
from tests.support.process_tree import command_line, descendants, gone
from tests.support.waiting import wait_until
from tests.support.worker_command import (
    WorkerCommand,
    launch_worker_command,
    running_worker_command,
)


@pytest.fixture
def worker_env(sqlite_ledger: Ledger, redis_db: RedisInfo) -> dict[str, str]:
    return child_env()


@pytest.fixture
def worker_command(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerCommand]:
    """A running ``delivery worker`` with both of its workers ready."""
    with running_worker_command(worker_env, tmp_path / "worker.log") as command:
        yield command


def test_worker_runs_both_nodes_and_stops_them_together(worker_command: WorkerCommand) -> None:
    text = worker_command.text()
    assert "send@" in text and "default@" in text
    assert ".> delivery.send" in text and ".> delivery.default" in text
    assert "concurrency: 1 (prefork)" in text
    # ... and, with the default --role all, the inbound relay
    wait_until(
        lambda: "relay: hands inbound messages over by" in worker_command.text(),
        timeout=60,
        message="the relay running",
    )
    family = descendants(worker_command.process.pid)

    worker_command.process.send_signal(signal.SIGTERM)

    assert worker_command.process.wait(timeout=60) == 0
    wait_until(lambda: all(gone(pid) for pid in family), timeout=30, message="every child gone")


def test_a_worker_killed_with_kill_9_is_restarted_while_the_other_runs_on(
    worker_command: WorkerCommand,
) -> None:
    # Given both workers running
    send = worker_command.child("send")
    default = worker_command.child("default")

    # When the send worker is killed with kill -9
    killed_at = time.monotonic()
    os.kill(send, signal.SIGKILL)

    # Then the command says what died, how and when it restarts, and starts it again
    worker_command.wait_restarted("send", send, how="killed by SIGKILL")
    print(f"kill -9 -> send worker ready again: {time.monotonic() - killed_at:.1f}s")
    # And the other worker was never touched, and the command still runs
    assert worker_command.child("default") == default
    assert worker_command.process.poll() is None


def test_kill_9_of_the_command_takes_its_workers_with_it(worker_command: WorkerCommand) -> None:
    # Given the command, its two Celery workers and their pool processes
    family = descendants(worker_command.process.pid)
    assert len(family) >= 4

    # When the command itself is killed with kill -9 (no cleanup can run)
    os.kill(worker_command.process.pid, signal.SIGKILL)
    worker_command.process.wait(timeout=10)

    # Then every process it started is gone soon after (a warm shutdown each)
    started = time.monotonic()
    wait_until(
        lambda: all(gone(pid) for pid in family),
        timeout=60,
        message=lambda: (
            "every child gone; left: " + ", ".join(command_line(p) for p in family if not gone(p))
        ),
    )
    print(
        f"kill -9 of delivery worker -> all {len(family)} children gone in "
        f"{time.monotonic() - started:.1f}s"
    )


def test_the_inbound_role_runs_the_relay_and_stops_it(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    # Given `delivery worker --role inbound`
    command = launch_worker_command(worker_env, tmp_path / "inbound.log", "--role", "inbound")
    try:
        # Then it runs the inbound relay (and no Celery worker)
        wait_until(
            lambda: "relay: hands inbound messages over by" in command.text(),
            timeout=90,
            message="the relay running",
        )
        assert "send@" not in command.text()

        # And SIGTERM stops it cleanly
        command.process.send_signal(signal.SIGTERM)
        assert command.process.wait(timeout=60) == 0
    finally:
        if command.process.poll() is None:
            os.killpg(command.process.pid, signal.SIGKILL)
