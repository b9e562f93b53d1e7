"""The supervisor inside ``delivery worker``: keeps its Celery workers running.

Each child is started with :func:`~delivery.devstack.lifeline.die_with_parent`,
so a ``kill -9`` of the supervisor takes its children with it. A child that
ends by itself — killed, crashed, or ended by its watchdog (exit code 75, it had
stopped consuming) — is started again on its own, the others running on
meanwhile: after 1 s, doubling with each quick death in a row (one that lived
under a minute) up to a minute (:func:`delivery.policy.liveness_rules.restart_delay_seconds`).
Each death is one line on stderr: which child, its pid, how it ended, when it
starts again. SIGTERM or SIGINT stops every child with SIGTERM (a warm
shutdown: sends in flight finish) and the supervisor exits 0 once all have stopped.

Example::

    Supervisor({"send": send_argv, "default": default_argv}).run()   # 0 after SIGTERM
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from delivery.devstack.lifeline import die_with_parent
from delivery.policy.liveness_rules import restart_delay_seconds
from delivery.worker.watchdog import WATCHDOG_EXIT_CODE

__all__ = ["Supervisor", "describe_exit"]

# The first restart comes after this; quick deaths in a row double it, up to the max.
RESTART_BASE_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
# A child that ran this long before it died was healthy: its backoff starts afresh.
STABLE_AFTER_SECONDS = 60.0
_POLL_SECONDS = 0.2


def describe_exit(returncode: int) -> str:
    """How a child ended, for the log line.

    Example::

        describe_exit(-9)    # 'killed by SIGKILL'
        describe_exit(75)    # 'exit code 75 (its watchdog: it had stopped consuming)'
    """
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if returncode == WATCHDOG_EXIT_CODE:
        return f"exit code {returncode} (its watchdog: it had stopped consuming)"
    return f"exit code {returncode}"


@dataclass
class _Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs named commands until asked to stop, restarting any that end."""

    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._children = [_Child(name, argv) for name, argv in commands.items()]
        self._say = say
        self._clock = clock
        self._stop_signal: int | None = None
        self._wake = threading.Event()

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; 0 once every child has stopped."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for child in self._children:
            self._start(child)
        while self._stop_signal is None:
            for child in self._children:
                self._tend(child)
            self._wake.wait(_POLL_SECONDS)
        return self._stop_all()

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum
        self._wake.set()

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(child.argv, preexec_fn=die_with_parent())
        child.started_at = self._clock()
        child.restart_at = None

    def _tend(self, child: _Child) -> None:
        now = self._clock()
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start(child)
                assert child.process is not None
                self._say(f"worker: {child.name} started again (pid {child.process.pid})")
            return
        assert child.process is not None
        returncode = child.process.poll()
        if returncode is None:
            return
        lived = now - child.started_at
        child.quick_deaths = child.quick_deaths + 1 if lived < STABLE_AFTER_SECONDS else 1
        delay = restart_delay_seconds(
            quick_deaths=child.quick_deaths,
            base_seconds=RESTART_BASE_SECONDS,
            max_seconds=RESTART_MAX_SECONDS,
        )
        child.restart_at = now + delay
        at = (dt.datetime.now() + dt.timedelta(seconds=delay)).strftime("%H:%M:%S")
        others = "; the other workers run on" if len(self._children) > 1 else ""
        self._say(
            f"worker: {child.name} (pid {child.process.pid}) died after {lived:.0f}s, "
            f"{describe_exit(returncode)}; restarting it in {delay:g}s (at {at}){others}"
        )

    def _stop_all(self) -> int:
        # SIGTERM whichever signal came: a Celery worker takes a second SIGINT (Ctrl-C
        # reaches the children from the terminal too) as a cold shutdown.
        running = [c.process for c in self._children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            process.wait()
        return 0
