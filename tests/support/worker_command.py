"""``delivery worker`` run by a test: the command, its log, its Celery workers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.process_tree import children, command_line, descendants, gone
from tests.support.waiting import wait_until


@dataclass
class WorkerCommand:
    """A running ``delivery worker`` and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ready_count(self) -> int:
        return self.text().count(" ready.")

    def child(self, role: str) -> int:
        """The pid of the Celery worker started as ``role`` (send or default)."""
        for pid in children(self.process.pid):
            if f"-n {role}@" in command_line(pid):
                return pid
        raise AssertionError(f"no {role} worker among {children(self.process.pid)}")

    def wait_restarted(self, role: str, pid: int, *, how: str) -> None:
        """Wait until the ``role`` worker that ran as ``pid`` is ready again.

        Checks the command's line about it: who died, ``how`` (a regex), when it restarts.
        """
        wait_until(
            lambda: self.ready_count() >= 3,
            timeout=90,
            message=lambda: f"the {role} worker ready again; log:\n{self.text()[-3000:]}",
        )
        assert re.search(
            rf"worker: {role} \(pid {pid}\) died after \d+s, {how}; "
            r"restarting it in 1s \(at \d\d:\d\d:\d\d\)",
            self.text(),
        ), self.text()[-3000:]
        assert self.child(role) != pid


def launch_worker_command(env: dict[str, str], log: Path, *args: str) -> WorkerCommand:
    """``delivery worker ARGS`` in its own session, its output in ``log``; not waited for."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "delivery", "worker", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerCommand(process, log)


def start_worker_command(env: dict[str, str], log: Path) -> WorkerCommand:
    command = launch_worker_command(env, log)
    wait_until(lambda: command.ready_count() >= 2, timeout=90, message="both workers ready")
    return command


@contextlib.contextmanager
def running_worker_command(env: dict[str, str], log: Path) -> Iterator[WorkerCommand]:
    """``delivery worker`` with both workers ready; whatever it started is killed after."""
    command = start_worker_command(env, log)
    family = [command.process.pid, *descendants(command.process.pid)]
    try:
        yield command
    finally:
        family += descendants(command.process.pid)
        for pid in family:
            if not gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        command.process.wait(timeout=30)
