"""The liveness watchdog: a worker that stops consuming while the broker answers exits
non-zero (and ``delivery worker`` starts it again); a healthy idle worker lives on.

A stuck consumer is made the way an operator could: Celery's remote control
``cancel_consumer`` stops the worker consuming its queues while its process,
its event loop and the broker all keep running — what the Redis reconnect bugs
(celery #8030, #8091, #10205) leave behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import delivery
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE
from delivery.worker.watchdog import WATCHDOG_EXIT_CODE
from tests.conftest import Ledger, RedisInfo
from tests.support.configure import child_env
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tests.support.worker_command import WorkerCommand, running_worker_command

WATCHDOG_SECONDS = 4.0


def node_of(log_text: str) -> str:
    """The Celery node name a worker's log says is ready."""
    found = re.search(r"(\S+@\S+) ready\.", log_text)
    assert found, "no 'ready.' line"
    return found.group(1)


def stop_consuming(node: str, *queues: str) -> None:
    """Celery's remote control: the worker stops consuming ``queues``; it keeps running."""
    for queue in queues:
        replies = delivery.app.control.cancel_consumer(
            queue, destination=[node], reply=True, timeout=10
        )
        assert replies and "ok" in replies[0][node], replies


def test_a_worker_that_stops_consuming_exits_non_zero_within_the_watchdog_time(
    stack: Stack,
) -> None:
    # Given a worker with a 4 s watchdog
    stack.overrides["DELIVERY_WORKER_WATCHDOG_SECONDS"] = str(WATCHDOG_SECONDS)
    worker = stack.start_worker()
    worker.wait_for_log("watchdog: ", timeout_seconds=30)
    node = node_of(worker.log_text())

    # When its consumer stops consuming, while the process and the broker run on
    stopped_at = time.monotonic()
    stop_consuming(node, SEND_QUEUE, DEFAULT_QUEUE)

    # Then it exits with the watchdog's code soon after the watchdog time, saying why
    code = wait_until(lambda: worker.process.poll(), timeout=60, message="the stuck worker exiting")
    took = time.monotonic() - stopped_at
    print(f"consumer stopped -> worker exited {code}: {took:.1f}s (watchdog {WATCHDOG_SECONDS}s)")
    assert code == WATCHDOG_EXIT_CODE
    assert WATCHDOG_SECONDS <= took < WATCHDOG_SECONDS + 15  # + probes, + its pool stopping
    assert re.search(
        rf"CRITICAL/MainProcess\] watchdog: {re.escape(node)} showed no sign of consuming "
        rf"for [\d.]+s while the broker answered \(last probe: consuming no queue\); "
        rf"exiting with {WATCHDOG_EXIT_CODE}",
        worker.log_text(),
    )


def test_an_idle_worker_holding_a_countdown_is_not_taken_for_stuck(stack: Stack) -> None:
    # Given a 4 s watchdog, and chunks of a message spaced 10 s apart
    stack.overrides.update(
        DELIVERY_WORKER_WATCHDOG_SECONDS=str(WATCHDOG_SECONDS),
        DELIVERY_CHUNK_GAP_SECONDS="10",
    )
    account = stack.add_account()
    worker = stack.start_worker()

    # When a two-chunk message goes: the worker sends one, then waits on a countdown
    text = "\n\n".join(f"paragraph {n}: " + "word " * 60 for n in range(12))
    message_id = delivery.enqueue(account, "reader@im.wechat", text)
    assert len(stack.chunks_of(message_id)) == 2

    # Then both chunks arrive, 10 s apart, and the worker was never taken for stuck
    assert stack.wait_final([message_id], timeout=90) == {message_id: "delivered"}
    arrivals = [m.arrived_at for ms in stack.snapshot().messages.values() for m in ms]
    assert max(arrivals) - min(arrivals) >= 2 * WATCHDOG_SECONDS
    assert worker.running()
    assert "exiting with" not in worker.log_text()


@pytest.fixture
def watched_worker_command(
    sqlite_ledger: Ledger, redis_db: RedisInfo, tmp_path: Path
) -> Iterator[WorkerCommand]:
    env = child_env(DELIVERY_WORKER_WATCHDOG_SECONDS=str(WATCHDOG_SECONDS))
    with running_worker_command(env, tmp_path / "worker.log") as command:
        yield command


def test_delivery_worker_starts_again_a_worker_its_watchdog_ended(
    watched_worker_command: WorkerCommand,
) -> None:
    command = watched_worker_command
    send = command.child("send")
    default = command.child("default")
    node = next(n for n in re.findall(r"(\S+@\S+) ready\.", command.text()) if "send@" in n)

    # When the send worker stops consuming
    stop_consuming(node, SEND_QUEUE)

    # Then its watchdog ends it, and the command says so and starts it again
    command.wait_restarted(
        "send",
        send,
        how=rf"exit code {WATCHDOG_EXIT_CODE} \(its watchdog: it had stopped consuming\)",
    )
    assert command.child("default") == default
