"""Child processes in their own process group, logging to a file, stopped for sure.

Stopped also when their parent is killed outright: on Linux each child gets
SIGTERM when its parent dies (:mod:`delivery.devstack.lifeline`).

Example::

    worker = ManagedProcess(celery_argv("worker", queues=SEND_QUEUE), env=env,
                            log_path=Path("worker.log"))
    worker.wait_for_log("ready.", timeout_seconds=60)
    ...
    worker.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from delivery.devstack.lifeline import die_with_parent

__all__ = ["ManagedProcess", "celery_argv"]

_POLL_SECONDS = 0.1


def celery_argv(
    command: str,
    *,
    queues: str | None = None,
    concurrency: int = 1,
    name: str | None = None,
    beat_schedule: Path | None = None,
    loglevel: str = "INFO",
    extra: list[str] | None = None,
) -> list[str]:
    """The argv of ``celery -A delivery worker|beat`` as the project runs it.

    A worker is prefork with prefetch 1 and events on (for Flower);
    ``beat_schedule`` embeds beat in it (tests and the demo only).
    """
    argv = [sys.executable, "-m", "celery", "-A", "delivery", command, "-l", loglevel]
    if command == "worker":
        argv += ["-c", str(concurrency), "--prefetch-multiplier", "1", "-E"]
        argv += ["--without-gossip", "--without-mingle"]
        if queues:
            argv += ["-Q", queues]
        if name:
            argv += ["-n", f"{name}@%h"]
        if beat_schedule is not None:
            argv += ["-B", "-s", str(beat_schedule)]
    elif command == "beat" and beat_schedule is not None:
        argv += ["-s", str(beat_schedule)]
    return argv + (extra or [])


class ManagedProcess:
    """A command in its own process group with its output in ``log_path``."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # gone with us, even after our kill -9
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, needle: str, *, timeout_seconds: float) -> None:
        """Wait until ``needle`` appears in the log.

        Raises:
            RuntimeError: the process exited first, or the deadline passed.
        """
        deadline = time.monotonic() + timeout_seconds
        while needle not in self.log_text():
            if not self.running():
                raise RuntimeError(
                    f"{' '.join(self.argv[:5])} exited with {self.process.returncode}:\n"
                    f"{self.log_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {needle!r} in {self.log_path} after {timeout_seconds:g}s")
            time.sleep(_POLL_SECONDS)

    def stop(self, *, timeout_seconds: float = 20.0) -> None:
        """SIGTERM the group (a warm shutdown), SIGKILL it if it does not go."""
        if self.running():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self.kill9()
            except ProcessLookupError:
                pass
        self._log.close()

    def kill9(self) -> None:
        """``kill -9`` of the whole group: no shutdown, no acknowledgement."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)
