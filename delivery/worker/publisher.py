"""The task publisher the pipeline is handed: a chunk's send task, through Celery.

Kombu's and redis's errors are translated here, at the one place that publishes:
a refused publish is logged and reported as ``False``, never raised, because the
chunk is safe in the ledger and the reconciler offers it again.

Example::

    publish = CeleryPublisher(app, max_countdown_seconds=1800)
    publish(Pick(ticket="7", generation=3, in_seconds=0.2), "bot-1")   # True
"""

from __future__ import annotations

import logging
from typing import Any

from delivery.pipeline.dispatch import SEND_TASK, send_task_id
from delivery.ratelimit.gate import Pick

__all__ = ["CeleryPublisher"]

log = logging.getLogger(__name__)

# Publishing must not hang a caller when the broker is down: the ledger has it.
_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.1,
    "interval_step": 0.4,
    "interval_max": 1.0,
}


class CeleryPublisher:
    """Publishes ``delivery.send_chunk(chunk_id, generation, account_id)`` on a Celery app.

    Only ids travel: no token and no text (Flower shows arguments). A countdown
    is capped at ``max_countdown_seconds`` (half the broker's visibility
    timeout): past it the broker would redeliver the task again and again, and a
    task woken early just waits again.
    """

    def __init__(self, app: Any, *, max_countdown_seconds: float) -> None:
        self._app = app
        self._max_countdown_seconds = max_countdown_seconds

    def __call__(self, pick: Pick, account_id: str) -> bool:
        countdown = min(max(0.0, pick.in_seconds), self._max_countdown_seconds)
        chunk_id = int(pick.ticket)
        try:
            self._app.send_task(
                SEND_TASK,
                args=[chunk_id, pick.generation, account_id],
                countdown=countdown or None,
                task_id=send_task_id(chunk_id, pick.generation),
                retry=True,
                retry_policy=_PUBLISH_RETRY_POLICY,
            )
        except Exception as exc:  # kombu and redis raise many types; all mean "not published"
            log.warning(
                "could not publish chunk %s (%s: %s); it stays pending in the ledger "
                "and the reconciler will offer it again",
                chunk_id,
                type(exc).__name__,
                exc,
            )
            return False
        return True
