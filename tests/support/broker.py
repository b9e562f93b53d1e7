"""Reading what was published to the Redis broker, as a worker would receive it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import redis


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
