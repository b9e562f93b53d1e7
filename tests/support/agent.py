"""The agent's own Celery app, as an agent would write it: one task that gets each
inbound message the relay hands over (``DELIVERY_INBOUND_TASK=agent.on_inbound``).

It appends what it got to ``AGENT_RECEIVED_FILE`` (one JSON line per run, with the
task id), so a test counts at the receiver, whatever happens to Redis.

Run: ``celery -A tests.support.agent worker -Q agent.inbound``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from celery import Celery, Task

app = Celery("agent", broker=os.environ.get("DELIVERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_lock = threading.Lock()


@app.task(bind=True, name="agent.on_inbound")
def on_inbound(self: Task[Any, Any], message: dict[str, Any]) -> None:
    line = json.dumps({"task_id": self.request.id, "message": message})
    with _lock, open(os.environ["AGENT_RECEIVED_FILE"], "a", encoding="utf-8") as out:
        out.write(line + "\n")
