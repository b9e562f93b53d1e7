"""Reading what was published to the Redis broker, as a worker would receive it."""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from delivery.monitoring.redis_stats import queue_keys


@dataclass(frozen=True)
class Published:
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    eta: str | None
    raw: str


def published(url: str, queue: str) -> list[Published]:
    """Every task message waiting in ``queue`` (kombu keeps a queue as a Redis list)."""
    client = redis.Redis.from_url(url)
    found = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        args, kwargs, _embed = body
        headers = envelope["headers"]
        found.append(
            Published(
                task=headers["task"],
                args=args,
                kwargs=kwargs,
                eta=headers.get("eta"),
                raw=raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw),
            )
        )
    return found


def live_send_tasks(url: str, queue: str) -> Counter[int]:
    """Send tasks the broker holds, per chunk id: ready in ``queue`` (each priority
    step's list) or held by a worker unacked (a countdown, or running).

    A task is counted once per task id: a retry re-publishes the same task under
    the same id, and for a moment both messages exist."""
    client = redis.Redis.from_url(url)
    envelopes = [json.loads(raw) for key in queue_keys(queue) for raw in client.lrange(key, 0, -1)]
    # kombu keeps an unacked task as [envelope, exchange, routing key]
    envelopes += [json.loads(value)[0] for value in client.hvals("unacked")]
    seen: set[str] = set()
    counts: Counter[int] = Counter()
    for envelope in envelopes:
        headers = envelope["headers"]
        if headers.get("task") != "delivery.send_chunk" or headers["id"] in seen:
            continue
        seen.add(headers["id"])
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        counts[int(args[0])] += 1
    return counts


def ready_tasks(url: str, queue: str) -> int:
    """How many tasks wait in ``queue``'s lists for a worker."""
    client = redis.Redis.from_url(url)
    return sum(int(client.llen(key)) for key in queue_keys(queue))
