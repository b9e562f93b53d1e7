"""A renewable lease on one Redis key: at most one holder at a time, across hosts.

The holder renews it well inside its TTL; when the holder dies, the lease runs out
and another process takes it. Used by beat (one leader) and the inbound relay (one
poller per account).

Key: whatever the user names (its class docstring says which); the value is the
holder's identity, with a TTL in milliseconds on Redis's clock.

The scripts are ``delivery/lua/lease_*.lua``, each headed by its KEYS/ARGV contract.

**Fails closed**: a Redis error raises :class:`~delivery.errors.LimiterUnavailable`
(translated here, only here); a caller that cannot prove it holds the lease acts
as if it did not.

Example::

    lease = RedisLease(redis.Redis.from_url(url), key="delivery:beat:leader", ttl_seconds=30)
    if lease.hold():        # taken, or renewed: ours for another 30 s
        ...
    lease.release()
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from importlib import resources

import redis

from delivery.errors import LimiterUnavailable

__all__ = ["HOLD", "RELEASE", "RedisLease"]

# The scripts, each headed by its KEYS/ARGV contract: take or renew the lease if it is
# free or ours; give it up if it is ours (never someone else's).
HOLD = (resources.files("delivery") / "lua" / "lease_hold.lua").read_text("utf-8")
RELEASE = (resources.files("delivery") / "lua" / "lease_release.lua").read_text("utf-8")


def _identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisLease:
    """A lease on ``key`` for ``ttl_seconds`` (at least 1 s), held by this object."""

    def __init__(self, client: redis.Redis, *, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.identity = _identity()
        self._ttl_ms = max(1000, round(ttl_seconds * 1000))
        self._hold = client.register_script(HOLD)
        self._release = client.register_script(RELEASE)

    def hold(self) -> bool:
        """Take the lease or renew it; ``False`` when another holds it.

        Raises:
            LimiterUnavailable: Redis cannot be reached (hold nothing then).
        """
        try:
            return bool(self._hold(keys=[self.key], args=[self.identity, self._ttl_ms]))
        except redis.RedisError as exc:
            raise LimiterUnavailable(f"lease {self.key} unavailable: {exc}") from exc

    def release(self) -> None:
        """Give the lease up if it is ours; a Redis error is ignored (it runs out anyway)."""
        with contextlib.suppress(redis.RedisError):
            self._release(keys=[self.key], args=[self.identity])
