"""The worker's liveness watchdog: a thread that ends a worker which stopped consuming.

A Celery worker can outlive its consumer: after a broker restart some
Celery/kombu versions leave the event loop running without polling the queues
(celery #8030, #8091, #10205), or the consumer dies while the process lingers.
Nothing then consumes, and nothing says so. The watchdog probes the consumer
every ``probe_interval_seconds`` (a fifth of the timeout); a probe returns
whether the broker answered and which queues the consumer is consuming. When the
consumer has shown no sign of life for ``timeout_seconds`` while the broker
answers (see :mod:`delivery.policy.liveness_rules`), ``on_stuck`` is called — in the
worker, :func:`exit_for_supervisor`, which exits with
:data:`WATCHDOG_EXIT_CODE` so the supervisor (``delivery worker``, systemd,
Kubernetes) starts a fresh one.

A sign of life is a probe answered while consuming at least one queue, or a task
received (:meth:`Watchdog.alive`). An idle worker, or one holding tasks on their
countdowns, answers its probes: it is healthy. While the broker does not answer
the worker is not blamed; after an outage it gets the whole timeout again.

Example::

    watchdog = Watchdog(probe=probe, timeout_seconds=120, on_stuck=exit_for_supervisor)
    watchdog.start()
    ...
    watchdog.stop()
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from delivery.policy.liveness_rules import probe_interval_seconds, stalled_seconds

__all__ = ["WATCHDOG_EXIT_CODE", "Probe", "Watchdog", "exit_for_supervisor"]

log = logging.getLogger(__name__)

# EX_TEMPFAIL: a temporary failure, worth a restart.
WATCHDOG_EXIT_CODE = 75
# How long the worker's own children get to stop after SIGTERM before SIGKILL.
_CHILDREN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Probe:
    """What one probe saw: did the broker answer, and what is the consumer consuming."""

    broker_answers: bool
    queues: tuple[str, ...] = ()
    detail: str = ""

    @property
    def consuming(self) -> bool:
        return self.broker_answers and bool(self.queues)


class Watchdog:
    """Calls ``on_stuck(reason)`` once when the consumer stops showing signs of life."""

    def __init__(
        self,
        *,
        probe: Callable[[], Probe],
        timeout_seconds: float,
        on_stuck: Callable[[str], None],
        name: str = "worker",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._timeout_seconds = timeout_seconds
        self._on_stuck = on_stuck
        self._name = name
        self._clock = clock
        self._interval_seconds = probe_interval_seconds(timeout_seconds=timeout_seconds)
        self._last_alive_at = clock()
        self._broker_answering_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delivery-watchdog", daemon=True)

    def start(self) -> None:
        log.info(
            "watchdog: %s exits with %d if it consumes nothing for %gs while the broker "
            "answers (probe every %gs)",
            self._name,
            WATCHDOG_EXIT_CODE,
            self._timeout_seconds,
            self._interval_seconds,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (a shutdown was asked for); returns at once."""
        self._stop.set()

    def alive(self) -> None:
        """A sign of life seen elsewhere (a task received)."""
        self._last_alive_at = self._clock()

    def check_once(self) -> bool:
        """Probe once and judge; True when ``on_stuck`` was called."""
        probe = self._probe()
        now = self._clock()
        if not probe.broker_answers:
            self._broker_answering_since = None
        elif self._broker_answering_since is None:
            self._broker_answering_since = now
        if probe.consuming:
            self._last_alive_at = now
        stalled = stalled_seconds(
            now=now,
            last_alive_at=self._last_alive_at,
            broker_answering_since=self._broker_answering_since,
        )
        if stalled is None or stalled < self._timeout_seconds:
            return False
        seen = f"consuming {', '.join(probe.queues)}" if probe.queues else "consuming no queue"
        if not probe.consuming and probe.detail:
            seen = probe.detail
        self._on_stuck(
            f"{self._name} showed no sign of consuming for {stalled:.1f}s while the broker "
            f"answered (last probe: {seen})"
        )
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval_seconds):
            if self.check_once():
                return


def exit_for_supervisor(reason: str) -> None:
    """Log why, stop this process's children, and exit with :data:`WATCHDOG_EXIT_CODE`.

    Called from the watchdog thread while the consumer is stuck, so nothing here
    waits on Celery: the pool processes (and an embedded beat) are sent SIGTERM,
    then SIGKILL after a grace period, and the process leaves with ``os._exit``.
    Nothing they held is lost: the reconciler re-publishes overdue chunks from
    the ledger, and Redis redelivers unacknowledged tasks after the visibility timeout.
    """
    log.critical(
        "watchdog: %s; exiting with %d so the supervisor starts a fresh worker",
        reason,
        WATCHDOG_EXIT_CODE,
    )
    _stop_children()
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(WATCHDOG_EXIT_CODE)


def _stop_children() -> None:
    """SIGTERM the pool processes (and an embedded beat), SIGKILL what is left after a grace."""
    from billiard.process import active_children

    children = active_children()
    for child in children:
        with contextlib.suppress(OSError):
            child.terminate()
    deadline = time.monotonic() + _CHILDREN_GRACE_SECONDS
    while any(child.is_alive() for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for child in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
