"""The agent's side of the inbound relay, for the tests and benchmarks: a webhook
receiver (:mod:`delivery.devstack.receiver`), the agent's Celery worker, and a
``delivery relay`` process.

Example::

    with InboundReceiver(secret=secret) as receiver:
        env.update(receiver.settings())
        agent = AgentWorker(env=env, log_dir=workdir)
        relay = start_relay_process(env, workdir / "relay.log")
        ...
        receiver.counts()       # Counter({'bot-1:9223...': 1, ...}), repeats included
        agent.handled()         # each key once: the agent de-duplicates
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from delivery.devstack.agent import AGENT_QUEUE, AGENT_TASK
from delivery.devstack.processes import ManagedProcess
from delivery.devstack.receiver import DEFAULT_SECRET, InboundReceiver

__all__ = [
    "DEFAULT_SECRET",
    "RELAY_READY",
    "AgentWorker",
    "InboundReceiver",
    "agent_settings",
    "start_relay_process",
]

# What `delivery relay` logs once it runs.
RELAY_READY = "relay: hands inbound messages over by"
_READY_SECONDS = 60.0


class AgentWorker:
    """The agent's own Celery worker (:mod:`delivery.devstack.agent`), consuming the
    inbound task from the delivery broker and writing what it got to a file."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.received_file = log_dir / f"agent-{uuid.uuid4().hex[:6]}.jsonl"
        self.received_file.touch()
        env = {**env, "AGENT_RECEIVED_FILE": str(self.received_file)}
        argv = [sys.executable, "-m", "celery", "-A", "delivery.devstack.agent", "worker"]
        argv += ["-Q", AGENT_QUEUE, "-c", "2", "-P", "threads", "--without-gossip"]
        argv += ["--without-mingle", "-l", "INFO", "-n", f"agent-{uuid.uuid4().hex[:6]}@%h"]
        self.process = ManagedProcess(argv, env=env, log_path=log_dir / "agent-worker.log")
        self.process.wait_for_log("ready.", timeout_seconds=_READY_SECONDS)

    def received(self) -> list[dict[str, Any]]:
        lines = self.received_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def counts(self) -> Counter[str]:
        """How often each idempotency key came, repeats included."""
        return Counter(entry["message"]["idempotency_key"] for entry in self.received())

    def handled(self) -> Counter[str]:
        """The keys the agent handled, after its de-duplication (once each)."""
        entries = self.received()
        return Counter(e["message"]["idempotency_key"] for e in entries if not e.get("repeat"))

    def first_arrival(self) -> dict[str, float]:
        """When each key first came (wall clock)."""
        arrivals: dict[str, float] = {}
        for entry in self.received():
            arrivals.setdefault(entry["message"]["idempotency_key"], entry["at"])
        return arrivals

    def stop(self) -> None:
        self.process.stop()


def agent_settings() -> dict[str, str]:
    """The relay's settings that hand every message to the agent's task."""
    return {"DELIVERY_INBOUND_TASK": AGENT_TASK, "DELIVERY_INBOUND_TASK_QUEUE": AGENT_QUEUE}


def start_relay_process(env: dict[str, str], log_path: Path) -> ManagedProcess:
    """``delivery relay`` as a process of its own, once it is running."""
    relay = ManagedProcess([sys.executable, "-m", "delivery", "relay"], env=env, log_path=log_path)
    relay.wait_for_log(RELAY_READY, timeout_seconds=_READY_SECONDS)
    return relay
