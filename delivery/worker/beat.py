"""Exactly one beat publishes: a leader lock in Redis makes a second beat harmless.

Run one ``celery -A delivery beat``. Should a second one start (a deployment
mistake, a rolling restart), it finds the lock held and stays on standby,
publishing nothing; it takes over within ``DELIVERY_BEAT_LOCK_TTL_SECONDS`` if
the leader stops. Briefing slots are claimed in SQL besides, so even two active
beats could not run a slot twice.

Key: ``{prefix}:beat:leader`` holds the leader's identity, with a TTL it renews
on every tick. Redis unreachable: no beat publishes (the broker is gone too).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler

from delivery.settings import get_settings

__all__ = ["BeatLock", "LeaderScheduler"]

log = logging.getLogger(__name__)

# HOLD: take the leader lock, or renew it if it is ours.
# KEYS[1] leader key   ARGV[1] our identity   ARGV[2] ttl ms
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


class BeatLock:
    """A renewable leader lock. ``hold()`` is True while this process leads."""

    def __init__(self, client: redis.Redis, *, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ttl_ms = max(1000, round(ttl_seconds * 1000))
        self._hold = client.register_script(HOLD)

    def hold(self) -> bool:
        try:
            return bool(self._hold(keys=[self.key], args=[self.identity, self._ttl_ms]))
        except redis.RedisError as exc:
            log.warning("beat: leader lock unavailable (%s); publishing nothing", exc)
            return False


class LeaderScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's persistent scheduler that only publishes while it holds the lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._lock = BeatLock(
            redis.Redis.from_url(settings.limiter_redis_url, socket_connect_timeout=2),
            key=f"{settings.redis_key_prefix}:beat:leader",
            ttl_seconds=settings.beat_lock_ttl_seconds,
        )
        # Renew well inside the TTL, whatever the schedule's next due time.
        self._renew_seconds = settings.beat_lock_ttl_seconds / 3
        self._leading = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._lock.hold():
            if self._leading:
                log.warning("beat: lost the leader lock; standing by")
            elif not hasattr(self, "_said_standby"):
                log.warning(
                    "beat: another beat leads (lock %s); this one stands by and publishes nothing",
                    self._lock.key,
                )
                self._said_standby = True
            self._leading = False
            return self._renew_seconds
        if not self._leading:
            log.info("beat: leading (%s)", self._lock.identity)
            self._leading = True
        return float(min(super().tick(*args, **kwargs), self._renew_seconds))
