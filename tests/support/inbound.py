"""The inbound relay's helpers for tests: the agent's side (from
:mod:`delivery.devstack.inbound`), paced arrivals, and a relay in this process.

Example::

    with InboundReceiver() as receiver:
        stack.overrides.update(receiver.settings())
        relay = stack.start_relay()
        ...
        assert receiver.counts() == {key: 1 for key in keys}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from delivery import runtime
from delivery.devstack.inbound import (
    DEFAULT_SECRET,
    AgentWorker,
    InboundReceiver,
    agent_settings,
    start_relay_process,
)
from delivery.inbound.relay import InboundRelay

__all__ = [
    "SECRET",
    "AgentWorker",
    "InboundReceiver",
    "agent_settings",
    "paced",
    "relay_in_thread",
    "start_relay_process",
]

SECRET = DEFAULT_SECRET


def paced(count: int, *, per_second: float) -> Iterator[int]:
    """``0 .. count-1``, the n-th handed out ``n / per_second`` seconds after the first.

    It shapes a workload's arrival rate (readers do not all write in one instant);
    it never waits for an outcome: tests wait on conditions with deadlines.
    """
    start = time.monotonic()
    for n in range(count):
        delay = start + n / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n


@contextmanager
def relay_in_thread() -> Iterator[InboundRelay]:
    """The relay of this process's settings, ticking in a thread until the block ends."""
    relay = runtime.inbound_relay()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=30)
