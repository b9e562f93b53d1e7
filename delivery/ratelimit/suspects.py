"""Readers held on a bare refusal while the next send decides: the probe's memory.

A bare ``{"ret": -2}`` is the account's rate limit or one reader's closed window.
The pipeline holds that reader's chat as a *suspect* and lets the account's next
send, to another reader, decide (see :func:`delivery.policy.readers.judge_refusal`).
This remembers, per account, the suspects since the last accepted send (whether
the account is in a rate-limit streak is the gate's ``strikes``).

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``; the account id in a hash
tag, as the gate's keys)::

    {prefix}:acct:{<account>}:suspects   hash: peer -> JSON {chunk_id, attempt_id}

It expires after ``memory_seconds``. **Fails closed** like the gate: a Redis error
raises :class:`~delivery.errors.LimiterUnavailable` and the caller waits. Lost
keys (a flush) only lose evidence: held chats are looked at again on their own.

Example::

    probe = RefusalProbe(redis.Redis.from_url(url), memory_seconds=3600)
    probe.suspect("bot-1", "u@im.wechat", Suspect(chunk_id=7, attempt_id=9))   # -> 0 others
    probe.settle("bot-1")     # -> {"u@im.wechat": Suspect(...)} once the next send decided
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from delivery.errors import LimiterUnavailable

__all__ = ["RefusalProbe", "Suspect"]


@dataclass(frozen=True)
class Suspect:
    """A chat held on a bare refusal: its head chunk and the refused attempt."""

    chunk_id: int
    attempt_id: int


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"Redis for the rate limiter is unreachable: {exc}") from exc


class RefusalProbe:
    """The suspects of each account; see the module docstring."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "delivery", memory_seconds: float = 3600.0
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._memory_seconds = max(1, round(memory_seconds))

    def _key(self, account_id: str, name: str) -> str:
        return f"{self._prefix}:acct:{{{account_id}}}:{name}"

    def others(self, account_id: str, peer_id: str) -> int:
        """How many *other* readers are held as suspects now."""
        with _translated():
            peers = self._client.hkeys(self._key(account_id, "suspects"))
        return sum(1 for peer in peers if _text(peer) != peer_id)

    def suspect(self, account_id: str, peer_id: str, suspect: Suspect) -> None:
        """Hold ``peer_id`` as a suspect."""
        key = self._key(account_id, "suspects")
        with _translated():
            pipe = self._client.pipeline()
            pipe.hset(key, peer_id, json.dumps(vars(suspect)))
            pipe.expire(key, self._memory_seconds)
            pipe.execute()

    def settle(self, account_id: str) -> dict[str, Suspect]:
        """The probe decided (a send accepted, or a rate limit): the suspects held
        until now, forgotten here; the caller says what they were."""
        key = self._key(account_id, "suspects")
        with _translated():
            pipe = self._client.pipeline()
            pipe.hgetall(key)
            pipe.delete(key)
            held, _ = pipe.execute()
        return _suspects(held)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _suspects(held: dict[bytes | str, bytes | str]) -> dict[str, Suspect]:
    return {_text(peer): Suspect(**json.loads(_text(raw))) for peer, raw in held.items()}
