"""When a worker counts as stuck, and how soon a dead child is started again.

Pure functions with keyword-only arguments, seconds everywhere (monotonic clock).

The worker's watchdog (``delivery.worker.watchdog``) sees two things: the last
sign of life of the consumer (it answered a probe while consuming at least one
queue, or it received a task), and since when the broker has answered without a
break. A worker is only blamed while the broker answers:

=====================  ==========================  ===============================
broker                 consumer                    verdict
=====================  ==========================  ===============================
not answering          anything                    wait (Celery reconnects; not its fault)
answering since *b*    alive at *a*                stuck once ``now - max(a, b) >= timeout``
=====================  ==========================  ===============================

so after an outage the worker gets the whole timeout to reconnect, counted from
the moment the broker came back.

``delivery worker`` restarts a child that died, after
``restart_delay_seconds``: doubling from ``base`` with each quick death in a row
(one that lived less than ``stable_seconds``), capped at ``max``.

Example::

    stalled_seconds(now=100.0, last_alive_at=10.0, broker_answering_since=40.0)  # 60.0
    restart_delay_seconds(quick_deaths=3, base_seconds=1, max_seconds=60)        # 4.0
"""

from __future__ import annotations

__all__ = ["probe_interval_seconds", "restart_delay_seconds", "stalled_seconds"]

_PROBES_PER_TIMEOUT = 5  # a stuck worker misses about five probes before it exits
_PROBE_INTERVAL_MIN_SECONDS = 0.5
_PROBE_INTERVAL_MAX_SECONDS = 15.0


def stalled_seconds(
    *, now: float, last_alive_at: float, broker_answering_since: float | None
) -> float | None:
    """How long the worker has been stuck while the broker answers; None while it does not.

    Example::

        stalled_seconds(now=100.0, last_alive_at=95.0, broker_answering_since=0.0)  # 5.0
        stalled_seconds(now=100.0, last_alive_at=0.0, broker_answering_since=None)  # None
    """
    if broker_answering_since is None:
        return None
    return max(0.0, now - max(last_alive_at, broker_answering_since))


def probe_interval_seconds(*, timeout_seconds: float) -> float:
    """How often the watchdog probes: a fifth of its timeout, within 0.5 s and 15 s.

    Example::

        probe_interval_seconds(timeout_seconds=120)  # 15.0
        probe_interval_seconds(timeout_seconds=5)    # 1.0
    """
    interval = timeout_seconds / _PROBES_PER_TIMEOUT
    return min(_PROBE_INTERVAL_MAX_SECONDS, max(_PROBE_INTERVAL_MIN_SECONDS, interval))


def restart_delay_seconds(*, quick_deaths: int, base_seconds: float, max_seconds: float) -> float:
    """The pause before restarting a child after its ``quick_deaths``-th quick death in a row.

    The first restart waits ``base_seconds``; each further quick death doubles it,
    up to ``max_seconds``.

    Raises:
        ValueError: ``quick_deaths`` is below 1.

    Example::

        [restart_delay_seconds(quick_deaths=n, base_seconds=1, max_seconds=60)
         for n in (1, 2, 3, 7, 8)]                   # [1.0, 2.0, 4.0, 60.0, 60.0]
    """
    if quick_deaths < 1:
        raise ValueError(f"quick_deaths must be at least 1, not {quick_deaths}")
    return float(min(max_seconds, base_seconds * 2.0 ** min(quick_deaths - 1, 62)))
