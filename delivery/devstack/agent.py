"""An agent's own Celery app, as an agent would write it: one task that gets each
inbound message the relay hands over (``DELIVERY_INBOUND_TASK=agent.on_inbound``,
``DELIVERY_INBOUND_TASK_QUEUE=agent.inbound``). The tests and benchmarks run it.

It appends what it got to ``AGENT_RECEIVED_FILE``, one JSON line per run (the task
id, the message, the wall-clock time it arrived, and whether it is a repeat), so
what reached the agent is counted at the receiver, whatever happens to Redis
meanwhile. Like any agent, it de-duplicates on the ``idempotency_key`` in the
message (the relay hands over at least once): a repeat is noted, not handled
again, also across a restart of the worker (the file is what it handled).

Run: ``celery -A delivery.devstack.agent worker -Q agent.inbound``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from celery import Celery, Task

__all__ = ["AGENT_QUEUE", "AGENT_TASK", "app", "on_inbound"]

AGENT_TASK = "agent.on_inbound"
AGENT_QUEUE = "agent.inbound"

# Not the current app of a process that imports this module to learn the names.
app = Celery(
    "agent",
    broker=os.environ.get("DELIVERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    set_as_current=False,
)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_lock = threading.Lock()
_handled: set[str] | None = None  # the keys handled, read from the file on the first run


def _first_time(key: str, path: str) -> bool:
    """Whether ``key`` is new to this agent (call under ``_lock``)."""
    global _handled
    if _handled is None:
        with open(path, encoding="utf-8") as lines:
            _handled = {
                json.loads(line)["message"]["idempotency_key"] for line in lines if line.strip()
            }
    if key in _handled:
        return False
    _handled.add(key)
    return True


@app.task(bind=True, name=AGENT_TASK)
def on_inbound(self: Task[Any, Any], message: dict[str, Any]) -> None:
    path = os.environ["AGENT_RECEIVED_FILE"]
    with _lock:
        repeat = not _first_time(message["idempotency_key"], path)
        entry = {"task_id": self.request.id, "message": message, "at": time.time()}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({**entry, "repeat": repeat}) + "\n")
