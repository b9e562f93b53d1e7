"""``delivery worker`` runs the send worker (concurrency 1) and the default-queue worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ledger, RedisInfo
from tests.support.waiting import wait_until


def start(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``delivery worker ARGS`` in its own session, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "delivery", "worker", *args],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def worker_command(
    sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A running ``delivery worker`` with both of its workers ready, and its log."""
    log = tmp_path / "worker.log"
    worker = start(log)
    try:
        wait_until(
            lambda: log.read_text(errors="replace").count("ready.") >= 2,
            timeout=90,
            message="both workers ready",
        )
        yield worker, log
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)


def test_worker_runs_both_nodes_and_stops_them_together(
    worker_command: tuple[subprocess.Popen[bytes], Path],
) -> None:
    worker, log = worker_command
    text = log.read_text(errors="replace")
    assert "send@" in text and "default@" in text
    assert ".> delivery.send" in text and ".> delivery.default" in text
    assert "concurrency: 1 (prefork)" in text

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=60) == 0


def test_when_one_worker_dies_the_other_is_stopped_and_the_command_fails(
    worker_command: tuple[subprocess.Popen[bytes], Path],
) -> None:
    worker, log = worker_command
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()

    os.kill(int(children[0]), signal.SIGKILL)

    assert worker.wait(timeout=60) != 0
    assert "exited (-9); stopping the rest" in log.read_text(errors="replace")


def test_the_inbound_role_runs_the_relay_and_stops_it(
    sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path
) -> None:
    # Given `delivery worker --role inbound`
    log = tmp_path / "inbound.log"
    worker = start(log, "--role", "inbound")
    try:
        # Then it runs the inbound relay (and no Celery worker)
        wait_until(
            lambda: "relay: hands inbound messages over by" in log.read_text(errors="replace"),
            timeout=90,
            message="the relay running",
        )
        assert "send@" not in log.read_text(errors="replace")

        # And SIGTERM stops it cleanly
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
