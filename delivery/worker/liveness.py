"""The watchdog inside a Celery worker: a worker bootstep, and the probe it uses.

Every worker of the app carries :class:`WatchdogStep` (``delivery worker``,
``celery -A delivery worker``, the demo's and the tests'). It starts the
:class:`~delivery.worker.watchdog.Watchdog` when the consumer is first ready and
stops it as soon as a shutdown begins (a warm shutdown may wait on a long task;
that is not a stuck worker). ``DELIVERY_WORKER_WATCHDOG_SECONDS=0`` turns it off.

The probe asks the worker's own consumer, through the broker, which queues it
consumes: Celery's ``active_queues`` remote-control command, sent to this node
only. The consumer answers it from its event loop, by the same broker poll that
fetches tasks, so an answer listing a queue shows that the loop runs, that it
polls the broker, and that it still consumes; a task received counts as well.
The pool's processes never answer (they run tasks), so a long task does not
make the worker look stuck.

Example::

    app.steps["worker"].add(WatchdogStep)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, bootsteps, signals
from kombu.exceptions import OperationalError

from delivery import runtime
from delivery.worker.watchdog import Probe, Watchdog, exit_for_supervisor

__all__ = ["WatchdogStep", "consumer_probe"]

log = logging.getLogger(__name__)

# A probe's reply is waited for at most this long (or the probe interval, if shorter).
_PROBE_REPLY_MAX_SECONDS = 5.0


def consumer_probe(app: Celery, node: str, *, timeout_seconds: float) -> Callable[[], Probe]:
    """A probe of the consumer of worker ``node`` through the broker.

    The probe connects afresh each time (the worker's own connections may be the
    broken ones), then sends ``active_queues`` to ``node`` and waits up to
    ``timeout_seconds`` for its answer. A broker that cannot be reached gives
    ``Probe(broker_answers=False)``; an unanswered probe, or an answer listing no
    queue, gives ``Probe(broker_answers=True)`` with no queue.
    """

    def probe() -> Probe:
        connection = app.connection_for_write()
        broker_errors = (
            OperationalError,
            OSError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        try:
            with connection:
                connection.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=timeout_seconds
                )
                asked = app.control.inspect([node], timeout=timeout_seconds, connection=connection)
                replies = asked.active_queues() or {}
        except broker_errors as exc:
            log.debug("watchdog probe: the broker did not answer: %r", exc)
            return Probe(broker_answers=False, detail=f"broker unreachable: {exc}")
        if node not in replies:
            return Probe(broker_answers=True, detail=f"no answer within {timeout_seconds:g}s")
        names = tuple(str(queue.get("name", "?")) for queue in replies[node] or [])
        return Probe(broker_answers=True, queues=names)

    return probe


class WatchdogStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Runs the liveness watchdog in the worker's main process."""

    label = "Watchdog"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timeout_seconds = runtime.current().settings.worker_watchdog_seconds
        self.watchdog: Watchdog | None = None
        self._worker: Any = None

    def include_if(self, parent: Any) -> bool:
        if self.timeout_seconds <= 0:
            log.info("watchdog: off (DELIVERY_WORKER_WATCHDOG_SECONDS=0)")
            return False
        if not parent.app.conf.worker_enable_remote_control:
            log.warning("watchdog: off, it needs remote control (worker_enable_remote_control)")
            return False
        return True

    def start(self, parent: Any) -> None:
        self._worker = parent
        signals.worker_ready.connect(self._on_ready, weak=False)
        signals.task_received.connect(self._on_task_received, weak=False)
        signals.worker_shutting_down.connect(self._on_shutting_down, weak=False)

    def stop(self, parent: Any) -> None:
        self._on_shutting_down()
        signals.worker_ready.disconnect(self._on_ready)
        signals.task_received.disconnect(self._on_task_received)
        signals.worker_shutting_down.disconnect(self._on_shutting_down)

    def _on_ready(self, **_: Any) -> None:
        if self.watchdog is not None:
            return  # ready again after a reconnect: the same watchdog goes on
        worker = self._worker
        reply_seconds = min(_PROBE_REPLY_MAX_SECONDS, self.timeout_seconds / 5)
        self.watchdog = Watchdog(
            probe=consumer_probe(worker.app, worker.hostname, timeout_seconds=reply_seconds),
            timeout_seconds=self.timeout_seconds,
            on_stuck=exit_for_supervisor,
            name=worker.hostname,
        )
        self.watchdog.start()

    def _on_task_received(self, **_: Any) -> None:
        if self.watchdog is not None:
            self.watchdog.alive()

    def _on_shutting_down(self, **_: Any) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
