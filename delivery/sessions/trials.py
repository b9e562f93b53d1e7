"""Trial sends: one chat of an account marked expired may try the platform anyway.

The session check marks an account expired when ``getconfig`` says ``-14``, and
the account's chats then park. If ``getconfig`` is wrong (the platform's
``sendmessage`` works all the while), nothing would ever clear the mark. So each
session check that leaves an account expired grants one parked head a *trial
pass*: its send goes to the platform despite the mark; accepted, it proves the
session good and every parked chat resumes; refused with ``-14``, it parks again.

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``)::

    {prefix}:acct:{<account>}:trial   the chunk id allowed to try (EX = ttl_seconds)

Fails closed: a Redis error means no pass (the chat stays parked; the next check
grants another).

The script is ``sessions/lua/trial_take.lua``, headed by its KEYS/ARGV contract.

Example::

    passes = TrialPasses(redis.Redis.from_url(url), ttl_seconds=120)
    passes.grant("bot-1", chunk_id=7)
    passes.take("bot-1", chunk_id=7)   # True once, then False
"""

from __future__ import annotations

import logging
from importlib import resources

import redis

__all__ = ["TrialPasses"]

log = logging.getLogger(__name__)

# Use the pass if it names this chunk; the script is headed by its KEYS/ARGV contract.
TAKE = (resources.files("delivery.sessions") / "lua" / "trial_take.lua").read_text("utf-8")


class TrialPasses:
    """One trial pass per account at a time; see the module docstring."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "delivery", ttl_seconds: float = 120.0
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_seconds = max(1, round(ttl_seconds))
        self._take = client.register_script(TAKE)

    def _key(self, account_id: str) -> str:
        return f"{self._prefix}:acct:{{{account_id}}}:trial"

    def grant(self, account_id: str, *, chunk_id: int) -> bool:
        """Let ``chunk_id`` try despite the expired mark; False if Redis refused."""
        try:
            self._client.set(self._key(account_id), str(chunk_id), ex=self._ttl_seconds)
        except redis.RedisError as exc:
            log.warning("account %s: no trial send (%s)", account_id, exc)
            return False
        return True

    def take(self, account_id: str, *, chunk_id: int) -> bool:
        """Whether ``chunk_id`` holds the account's pass (used up by this call)."""
        try:
            return bool(self._take(keys=[self._key(account_id)], args=[str(chunk_id)]))
        except redis.RedisError:
            return False
