"""The inbound relay's helpers for tests: the agent's side (from
:mod:`delivery.devstack.handover_side`), paced arrivals, and a relay in this process with
its settings (:data:`FAST`) and the agent's callback (:func:`remember`).

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

import delivery
from delivery import runtime
from delivery.devstack import clock
from delivery.devstack.handover_side import (
    DEFAULT_SECRET,
    AgentWorker,
    InboundReceiver,
    agent_settings,
    start_relay_process,
)
from delivery.inbound.event import InboundEvent
from delivery.inbound.poller import AccountPoller, PollerContext
from delivery.inbound.relay import InboundRelay

__all__ = [
    "CALLED",
    "FAST",
    "SECRET",
    "AgentWorker",
    "InboundReceiver",
    "agent_settings",
    "handed_over",
    "paced",
    "poller_by_hand",
    "relay_in_thread",
    "remember",
    "start_relay_process",
]

SECRET = DEFAULT_SECRET
# The relay on a compressed clock: it looks around every 0.1 s, a lease lasts 1 s.
FAST = clock.RELAY_TESTS
CALLED: list[InboundEvent] = []


def remember(event: InboundEvent) -> None:
    """The agent's callback (``DELIVERY_INBOUND_CALLBACK=tests.support.inbound:remember``)."""
    CALLED.append(event)


def handed_over(account: str = "bot-1") -> list[delivery.InboxEntry]:
    """The account's inbox once every message received is handed over (else [])."""
    entries = delivery.list_inbox(account)
    received = [e for e in entries if e.status == "received"]
    done = received and all(set(e.handovers.values()) == {"done"} for e in received)
    return entries if done else []


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


def poller_by_hand(account: str) -> AccountPoller:
    """A poller of this process's settings, as the relay makes one (a webhook to hand
    over to, its lease taken for granted), driven by ``poll_once()``."""
    context = PollerContext(
        engine=runtime.current().engine,
        clients=runtime.current().clients,
        publisher=runtime.current().publisher,
        settings=runtime.current().settings,
        backoff=lambda failures: 0.1,
        channels=("webhook",),
    )
    return AccountPoller(
        account, context=context, after_poll=lambda account, record: None, holds_lease=lambda: True
    )


@contextmanager
def relay_in_thread() -> Iterator[InboundRelay]:
    """The relay of this process's settings, ticking in a thread until the block ends."""
    relay = runtime.current().inbound_relay()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=30)
