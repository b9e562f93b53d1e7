"""The app's own Celery configuration is loaded by its module path, never a stray file.

Celery's command line (and ``python -m``) puts the working directory first on
``sys.path``; a ``celeryconfig.py`` lying there must not be run, nor its broker
URL taken.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.devstack import celery_argv
from tests.conftest import Ledger, RedisInfo
from tests.support.configure import child_env
from tests.support.waiting import wait_until

STRAY = """
from pathlib import Path

Path(__file__).with_name("stray-was-imported").write_text("yes")
broker_url = "redis://127.0.0.1:1/0"
"""


@pytest.fixture
def stray_directory(tmp_path: Path) -> Path:
    """A working directory holding a stray ``celeryconfig.py`` with a bogus broker."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    (directory / "celeryconfig.py").write_text(STRAY)
    return directory


@pytest.fixture
def run_in(
    sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is killed with its group at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def start(argv: list[str], *, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_the_app_config_ignores_a_stray_celeryconfig(stray_directory: Path) -> None:
    # Given a stray celeryconfig.py in the working directory
    # When a Python started there imports the app and reads its broker URL
    shown = subprocess.run(
        [sys.executable, "-c", "import delivery; print(delivery.app.conf.broker_url)"],
        cwd=stray_directory,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )

    # Then it is the project's broker, and the stray file never ran
    assert shown.stdout.strip() == os.environ["DELIVERY_BROKER_URL"]
    assert not (stray_directory / "stray-was-imported").exists()


@pytest.mark.parametrize(
    ("command", "ready_lines"),
    [
        (celery_argv("worker", name="stray-check"), 1),
        ([sys.executable, "-m", "delivery", "worker"], 2),
    ],
    ids=["celery -A delivery worker", "delivery worker"],
)
def test_a_worker_started_beside_a_stray_celeryconfig_uses_the_project_broker(
    stray_directory: Path,
    run_in: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    command: list[str],
    ready_lines: int,
) -> None:
    # Given a stray celeryconfig.py with a bogus broker in the working directory
    log = tmp_path / "worker.log"

    # When a worker is started there
    worker = start(command, cwd=stray_directory, log=log)
    run_in.append(worker)

    # Then it connects to the project's broker and becomes ready; the stray file never ran
    wait_until(
        lambda: log.read_text(errors="replace").count("ready.") >= ready_lines,
        timeout=90,
        message=lambda: f"the worker ready; log:\n{log.read_text(errors='replace')[-3000:]}",
    )
    text = log.read_text(errors="replace")
    ours = os.environ["DELIVERY_BROKER_URL"].removeprefix("redis://")
    assert re.search(rf"Connected to redis://(:\*\*@)?{re.escape(ours)}\s", text)
    assert "127.0.0.1:1/" not in text
    assert not (stray_directory / "stray-was-imported").exists()
