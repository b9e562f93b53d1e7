"""A renewable lease on one Redis key: at most one holder at a time, across hosts.

The holder renews it well inside its TTL; when the holder dies, the lease runs out
and another process takes it. Used by beat (one leader) and the inbound relay (one
poller per account).

Key: whatever the user names (its class docstring says which); the value is the
holder's identity, with a TTL in milliseconds on Redis's clock.

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

import redis

from delivery.errors import LimiterUnavailable

__all__ = ["HOLD", "RELEASE", "RedisLease"]

# HOLD: take the lease, or renew it if it is ours.
# KEYS[1] lease key   ARGV[1] our identity   ARGV[2] ttl ms
# Returns 1 when we hold it after the call, else 0.
HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# RELEASE: give the lease up if it is ours (never someone else's).
# KEYS[1] lease key   ARGV[1] our identity   Returns 1 if released, else 0.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


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
