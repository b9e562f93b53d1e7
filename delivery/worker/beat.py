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
from typing import Any

import redis
from celery.beat import PersistentScheduler

from delivery import runtime
from delivery.errors import LimiterUnavailable
from delivery.leases import RedisLease

__all__ = ["BeatLock", "LeaderScheduler"]

log = logging.getLogger(__name__)


class BeatLock(RedisLease):
    """The leader lease. ``hold()`` is True while this process leads."""

    def hold(self) -> bool:
        try:
            return super().hold()
        except LimiterUnavailable as exc:
            log.warning("beat: leader lock unavailable (%s); publishing nothing", exc.__cause__)
            return False


class LeaderScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's persistent scheduler that only publishes while it holds the lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = runtime.current().settings
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
