"""Readers held on a bare refusal while the next send decides: the probe's memory.

A bare ``{"ret": -2}`` is the account's rate limit or one reader's closed window.
The pipeline holds that reader's chat as a *suspect* and lets the account's next
send, to another reader, decide (see :func:`delivery.policy.reader_rules.judge_refusal`).
This remembers, per account, the suspects since the last accepted send (whether
the account is in a rate-limit streak is the gate's ``strikes``). A suspect is
*held* until something decides; a rate limit *releases* it (it was the account's
limit), but its chat goes again only after the account's next accepted send, so
that it is never the probe of a cooldown (a closed window would pass for the
lockout going on).

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``; the account id in a hash
tag, as the gate's keys)::

    {prefix}:acct:{<account>}:suspects   hash: peer -> JSON {chunk_id, attempt_id, at, released}
    {prefix}:acct:{<account>}:lesson     JSON: a lesson that waits to be proven (see below)

A rate limit judged from unknown readers' refusals alone may have been closed
windows: what it would teach of the account's limit is kept here as a *pending
lesson*, applied once something proves the lockout (the probe after the cooldown
is refused too, or a released reader's send is accepted) and dropped once the
released readers are refused again (they were closed windows). Both keys expire
after ``memory_seconds``. **Fails closed** like the gate: a Redis error
raises :class:`~delivery.errors.LimiterUnavailable` and the caller waits. Lost
keys (a flush) only lose evidence: held chats are looked at again on their own.

Example::

    probe = RefusalProbe(redis.Redis.from_url(url), memory_seconds=3600)
    probe.suspect("bot-1", "u@im.wechat", Suspect(chunk_id=7, attempt_id=9, at=t))
    probe.held_others("bot-1", "v@im.wechat")    # 1
    probe.release("bot-1")    # a rate limit: {"u@im.wechat": Suspect(...)}, now released
    probe.settle("bot-1")     # a send accepted: ({}, {"u@im.wechat": Suspect(..., released=True)})
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis

from delivery.errors import LimiterUnavailable

__all__ = ["RefusalProbe", "Suspect"]


@dataclass(frozen=True)
class Suspect:
    """A chat held on a bare refusal: its head chunk, the refused attempt, when it was
    refused (s since the epoch), and whether a rate limit released it."""

    chunk_id: int
    attempt_id: int
    at: float = 0.0
    released: bool = False


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

    def held_others(self, account_id: str, peer_id: str) -> dict[str, Suspect]:
        """The *other* readers held as suspects now (not released)."""
        with _translated():
            held = self._client.hgetall(self._key(account_id, "suspects"))
        return {
            peer: found
            for peer, found in _suspects(held).items()
            if peer != peer_id and not found.released
        }

    def suspect(self, account_id: str, peer_id: str, suspect: Suspect) -> None:
        """Hold ``peer_id`` as a suspect."""
        key = self._key(account_id, "suspects")
        with _translated():
            pipe = self._client.pipeline()
            pipe.hset(key, peer_id, json.dumps(vars(suspect)))
            pipe.expire(key, self._memory_seconds)
            pipe.execute()

    def settle(self, account_id: str) -> tuple[dict[str, Suspect], dict[str, Suspect]]:
        """A send of the account was accepted: the suspects still held were their
        readers' (first), the released ones may go again (second); all forgotten."""
        key = self._key(account_id, "suspects")
        with _translated():
            pipe = self._client.pipeline()
            pipe.hgetall(key)
            pipe.delete(key)
            found, _ = pipe.execute()
        suspects = _suspects(found)
        held = {peer: s for peer, s in suspects.items() if not s.released}
        released = {peer: s for peer, s in suspects.items() if s.released}
        return held, released

    def release(self, account_id: str) -> dict[str, Suspect]:
        """A rate limit decided: the suspects held until now were the account's limit.
        They stay, released, until the account's next accepted send; returns them."""
        key = self._key(account_id, "suspects")
        with _translated():
            found = self._client.hgetall(key)
            held = {p: s for p, s in _suspects(found).items() if not s.released}
            if held:
                marked = {
                    peer: json.dumps(vars(Suspect(s.chunk_id, s.attempt_id, s.at, True)))
                    for peer, s in held.items()
                }
                pipe = self._client.pipeline()
                pipe.hset(key, mapping=cast(Any, marked))
                pipe.expire(key, self._memory_seconds)
                pipe.execute()
        return held

    def hold_lesson(self, account_id: str, lesson: dict[str, Any]) -> None:
        """Keep what a rate limit judged from unknown readers would teach, until proven."""
        with _translated():
            self._client.set(
                self._key(account_id, "lesson"), json.dumps(lesson), ex=self._memory_seconds
            )

    def pending_pace(self, account_id: str) -> float | None:
        """The ceiling a pending lesson would set: the pace to keep until it is decided."""
        with _translated():
            found = self._client.get(self._key(account_id, "lesson"))
        return None if found is None else float(json.loads(_text(found))["per_minute"])

    def take_lesson(self, account_id: str) -> dict[str, Any] | None:
        """The pending lesson, now proven (or dropped): it is forgotten here."""
        key = self._key(account_id, "lesson")
        with _translated():
            pipe = self._client.pipeline()
            pipe.get(key)
            pipe.delete(key)
            found, _ = pipe.execute()
        return None if found is None else dict(json.loads(_text(found)))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _suspects(held: dict[bytes | str, bytes | str]) -> dict[str, Suspect]:
    return {_text(peer): Suspect(**json.loads(_text(raw))) for peer, raw in held.items()}
