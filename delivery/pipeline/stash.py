"""Answers the ledger could not take yet: kept in Redis until it can.

When the platform has answered but the transaction that records the answer
fails again and again (the database went away mid-send), the answer is not
thrown away: it is written here, and the chunk's next run applies it instead of
calling the platform again (a resend would be a duplicate the pipeline knew
about). Only if Redis is gone too does the attempt end up ``lost`` and get resent
with the same ``client_id``, for the platform to de-duplicate.

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``)::

    {prefix}:answer:<attempt id>   JSON: the result and the job, without token or text
                                   (EX = STASH_TTL_SECONDS)

Fails soft: a Redis error while stashing or reading is logged and treated as
"nothing stashed"; the attempt is then closed as lost, as before this existed.

Example::

    stash.put(job, result)
    stash.take([attempt_id])     # -> (job, result) or None
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from delivery.ilink.classify import Answer
from delivery.ledger.attempts import AttemptResult
from delivery.ledger.states import AttemptOutcome
from delivery.pipeline.job import Job

__all__ = ["STASH_TTL_SECONDS", "AnswerStash"]

log = logging.getLogger(__name__)

STASH_TTL_SECONDS = 7 * 86_400  # longer than any delivery deadline worth keeping
# What the recording of an answer does not need, and a stash must not keep.
_SECRETS = frozenset({"token", "text", "context_token", "base_url", "client_id"})


def _encoded(value: object) -> object:
    return {"at": value.isoformat()} if isinstance(value, dt.datetime) else value


def _decoded(value: object) -> object:
    if isinstance(value, dict) and set(value) == {"at"}:
        return dt.datetime.fromisoformat(value["at"])
    return value


class AnswerStash:
    """Recorded-later answers in Redis; see the module docstring."""

    def __init__(self, client: redis.Redis, *, prefix: str = "delivery") -> None:
        self._client = client
        self._prefix = prefix

    def key(self, attempt_id: int) -> str:
        return f"{self._prefix}:answer:{attempt_id}"

    def put(self, job: Job, result: AttemptResult) -> bool:
        """Keep ``result`` for ``job``'s attempt; False when Redis refused too."""
        payload = {
            "job": {
                f.name: _encoded(getattr(job, f.name))
                for f in dataclasses.fields(job)
                if f.name not in _SECRETS
            },
            "outcome": str(result.outcome),
            "reason": result.reason,
            "duration_ms": result.duration_ms,
            "answer": None if result.answer is None else vars(result.answer),
        }
        try:
            self._client.set(self.key(job.attempt_id), json.dumps(payload), ex=STASH_TTL_SECONDS)
        except redis.RedisError as exc:
            log.error("attempt %s: answer not stashed either (%s)", job.attempt_id, exc)
            return False
        return True

    def take(self, attempt_ids: Sequence[int]) -> tuple[Job, AttemptResult] | None:
        """The stashed answer of one of ``attempt_ids`` (the newest), or None."""
        for attempt_id in sorted(attempt_ids, reverse=True):
            try:
                raw = self._client.get(self.key(attempt_id))
            except redis.RedisError as exc:
                log.warning("attempt %s: stash not readable (%s)", attempt_id, exc)
                return None
            if raw is not None:
                return _loaded(json.loads(raw))
        return None

    def drop(self, attempt_id: int) -> None:
        """Forget a stashed answer once the ledger holds it."""
        try:
            self._client.delete(self.key(attempt_id))
        except redis.RedisError as exc:
            log.warning("attempt %s: stash not cleared (%s); harmless", attempt_id, exc)


def _loaded(payload: dict[str, Any]) -> tuple[Job, AttemptResult]:
    fields: dict[str, Any] = {name: _decoded(value) for name, value in payload["job"].items()}
    # The call is over: what it needed (token, text, context token) is not kept.
    job = Job(**fields, base_url="", token="", text="", client_id="", context_token=None)
    answer = payload["answer"]
    result = AttemptResult(
        outcome=AttemptOutcome(payload["outcome"]),
        reason=payload["reason"],
        answer=None if answer is None else Answer(**answer),
        duration_ms=int(payload["duration_ms"]),
    )
    return job, result
