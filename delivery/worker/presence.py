"""Which send tasks the broker still holds: late, not lost.

The reconciler asks before it publishes a head again: a task that is still in
the queue (a worker backed up, or stopped for a while), or that a worker took
just now, is merely late, and a twin of it would only be work. Kombu's Redis
transport keeps a queue's ready tasks as Redis lists, one per priority step (see
:func:`delivery.monitoring.redis_stats.queue_keys`), and the tasks workers hold
in a hash, indexed by when they were taken; each entry is the task's JSON
envelope, whose headers carry its id (``send-<chunk>-<generation>``).

Keys read, never written::

    delivery.send, delivery.send\\x06\\x16<3|6|9>   the send queue's ready tasks
    unacked_index                              tasks held by workers, by when taken
    unacked                                    their envelopes, by delivery tag

A task held for longer than ``recent_seconds`` is not counted: it may belong to a
worker that died (kombu gives it back only after the visibility timeout), and a
live worker would have run it by then, since the chunk is long due. **Fails
open:** a Redis error reports nothing seen, and the reconciler publishes (a twin
is harmless: the older task exits when it runs).

Example::

    queued = QueuedTasks(redis.Redis.from_url(broker_url), queue="delivery.send")
    queued({"send-7-3", "send-8-1"})        # -> {"send-7-3"}
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable

import redis

from delivery.monitoring.redis_stats import queue_keys

__all__ = ["QueuedTasks"]

log = logging.getLogger(__name__)

_PAGE = 1000  # entries read per LRANGE
_UNACKED, _UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport's names
_TASK_ID = re.compile(rb'"id":\s*"(send-\d+-\d+)"')


class QueuedTasks:
    """A :data:`~delivery.pipeline.reconcile.TaskPresence` over kombu's Redis lists."""

    def __init__(self, client: redis.Redis, *, queue: str, recent_seconds: float) -> None:
        self._client = client
        self._keys = queue_keys(queue)
        self._recent_seconds = recent_seconds

    def __call__(self, task_ids: Collection[str]) -> set[str]:
        wanted = set(task_ids)
        if not wanted:
            return set()
        found: set[str] = set()
        try:
            for key in self._keys:
                start = 0
                while batch := self._client.lrange(key, start, start + _PAGE - 1):
                    found.update(_ids(batch))
                    start += _PAGE
            taken_since = time.time() - self._recent_seconds
            tags: list[bytes] = list(
                self._client.zrangebyscore(_UNACKED_INDEX, taken_since, "+inf")  # type: ignore[arg-type]
            )
            if tags:
                found.update(_ids(raw for raw in self._client.hmget(_UNACKED, tags) if raw))
        except redis.RedisError as exc:
            log.warning("could not read the send queue (%s); late tasks may get a twin", exc)
            return set()
        return found & wanted


def _ids(raws: Iterable[bytes | str]) -> set[str]:
    found = set()
    for raw in raws:
        match = _TASK_ID.search(raw if isinstance(raw, bytes) else raw.encode())
        if match is not None:
            found.add(match.group(1).decode("ascii"))
    return found
