"""Real Celery processes started by the tests, and stopped (or killed) by them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.waiting import wait_until

WORKER_READY_SECONDS = 60.0


class CeleryProcess:
    """A ``celery`` (or ``delivery``) command in its own process group, logging to a file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, *, timeout: float = WORKER_READY_SECONDS) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                tail = self.log_text()[-4000:]
                raise AssertionError(f"{self.argv[:4]} exited {self.process.returncode}:\n{tail}")
            return needle in self.log_text()

        wait_until(seen, timeout=timeout, interval=0.1, message=lambda: f"{needle!r} in the log")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL if it does not go."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()

    def kill9(self) -> None:
        """``kill -9`` of the whole process group: no shutdown, no ack."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def start_worker(
    *,
    env: dict[str, str],
    log_dir: Path,
    queues: str = "delivery.send,delivery.default",
    beat: bool = False,
    name: str | None = None,
) -> CeleryProcess:
    """A real worker: prefork, concurrency 1, prefetch 1, as ``delivery worker`` runs it."""
    node = name or f"test-{uuid.uuid4().hex[:8]}"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "delivery",
        "worker",
        "-Q",
        queues,
        "-c",
        "1",
        "--prefetch-multiplier",
        "1",
        "-n",
        f"{node}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "INFO",
    ]
    if beat:
        argv += ["-B", "-s", str(log_dir / f"{node}-beat-schedule")]
    worker = CeleryProcess(argv, env=env, log_path=log_dir / f"{node}.log")
    worker.wait_for_log("ready.")
    return worker
