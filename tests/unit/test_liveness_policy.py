"""When a worker counts as stuck, and how soon a dead child starts again: pure decisions."""

from __future__ import annotations

import pytest

from delivery.cli.supervisor import describe_exit
from delivery.policy.liveness_rules import (
    probe_interval_seconds,
    restart_delay_seconds,
    stalled_seconds,
)
from delivery.worker.watchdog import Probe, Watchdog


@pytest.mark.parametrize(
    ("last_alive_at", "broker_answering_since", "expected"),
    [
        (95.0, 0.0, 5.0),  # alive 5 s ago
        (10.0, 40.0, 60.0),  # the broker came back at 40: counted from then
        (10.0, None, None),  # the broker does not answer: never the worker's fault
        (100.0, 100.0, 0.0),
    ],
)
def test_stalled_counts_only_while_the_broker_answers(
    last_alive_at: float, broker_answering_since: float | None, expected: float | None
) -> None:
    assert (
        stalled_seconds(
            now=100.0, last_alive_at=last_alive_at, broker_answering_since=broker_answering_since
        )
        == expected
    )


def test_probe_interval_is_a_fifth_of_the_timeout_within_bounds() -> None:
    assert [probe_interval_seconds(timeout_seconds=t) for t in (1, 4, 20, 120, 600)] == [
        0.5,
        0.8,
        4.0,
        15.0,
        15.0,
    ]


def test_restarts_back_off_doubling_up_to_the_max() -> None:
    delays = [
        restart_delay_seconds(quick_deaths=n, base_seconds=1, max_seconds=60) for n in range(1, 9)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    with pytest.raises(ValueError, match="quick_deaths"):
        restart_delay_seconds(quick_deaths=0, base_seconds=1, max_seconds=60)


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (-9, "killed by SIGKILL"),
        (75, "exit code 75 (its watchdog: it had stopped consuming)"),
        (1, "exit code 1"),
    ],
)
def test_a_dead_child_is_described(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watch(probes: list[Probe], clock: Clock, stuck: list[str]) -> Watchdog:
    """A watchdog whose probes answer from ``probes``, one per second of ``clock``."""

    def probe() -> Probe:
        clock.now += 1.0
        return probes.pop(0)

    return Watchdog(probe=probe, timeout_seconds=3, on_stuck=stuck.append, clock=clock)


def test_a_consumer_gone_quiet_while_the_broker_answers_is_stuck_once_the_timeout_passes() -> None:
    clock, stuck = Clock(), []
    quiet = Probe(broker_answers=True, detail="no answer within 1s")
    watchdog = watch([Probe(True, ("delivery.send",)), quiet, quiet, quiet, quiet], clock, stuck)

    verdicts = [watchdog.check_once() for _ in range(4)]

    assert verdicts == [False, False, False, True]
    assert stuck == [
        "worker showed no sign of consuming for 3.0s while the broker answered "
        "(last probe: no answer within 1s)"
    ]


def test_a_broker_outage_never_blames_the_worker_and_resets_the_count() -> None:
    clock, stuck = Clock(), []
    down = Probe(broker_answers=False, detail="broker unreachable")
    quiet = Probe(broker_answers=True)
    watchdog = watch([down] * 10 + [quiet, quiet, quiet, quiet], clock, stuck)

    verdicts = [watchdog.check_once() for _ in range(14)]

    # the broker is back at second 11: the worker has 3 s from then, not from its last sign
    assert verdicts == [False] * 13 + [True]


def test_a_task_received_is_a_sign_of_life() -> None:
    clock, stuck = Clock(), []
    quiet = Probe(broker_answers=True)
    watchdog = watch([quiet] * 6, clock, stuck)

    verdicts = []
    for _ in range(6):
        watchdog.alive()  # a task arrives before every probe
        verdicts.append(watchdog.check_once())

    assert verdicts == [False] * 6
    assert stuck == []
