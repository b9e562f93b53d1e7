"""What Redis says: Celery queue depths (broker), account cooldowns and lines (account gate).

Keys read, never written::

    <queue>, <queue>\\x06\\x16<3|6|9>    the broker's lists of ready tasks, as kombu's
                                       Redis transport names them per priority step
    {prefix}:acct:{<account>}:...       the account gate's keys, through AccountGate.state

**Fails soft.** A scrape must answer while Redis is down, since that is when it
matters: an unreachable Redis leaves its numbers out (``None``) and the
collector reports ``delivery_exporter_redis_up 0``. Redis errors are translated
at this boundary only.

A part waiting for its account's next slot has no task: it waits in the account's
line (``delivery_account_line_waiting``). A task whose slot lies ahead is held
unacked by a worker, not in its queue's list: queue depth counts tasks ready to
run now. The ledger's ``delivery_chunks_waiting`` counts everything not yet sent.

Example::

    source = RedisSource(broker=redis.Redis.from_url(broker_url), gate=gate,
                         queues=(SEND_QUEUE, DEFAULT_QUEUE))
    stats = source.read(["bot-1"])
    stats.queue_depths        # {"delivery.send": 3, "delivery.default": 0}, or None
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from delivery.errors import LimiterUnavailable
from delivery.ratelimit.gate import AccountGate, AccountState

__all__ = ["PRIORITY_STEPS", "RedisSource", "RedisStats", "RedisStatsSource", "queue_keys"]

# kombu's Redis transport keeps one list per priority step; step 0 is the bare name.
PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s ready tasks, one per priority step."""
    return [f"{queue}{_PRIORITY_SEPARATOR}{p}" if p else queue for p in PRIORITY_STEPS]


@dataclass(frozen=True)
class RedisStats:
    """One reading of Redis; a part is ``None`` when its Redis could not be read."""

    queue_depths: Mapping[str, int] | None
    cooldown_seconds: Mapping[str, float] | None
    error: str | None = None  # why a part is missing, for the exporter's log
    line_waiting: Mapping[str, int] | None = None  # parts in each account's line

    @property
    def up(self) -> bool:
        return self.queue_depths is not None and self.cooldown_seconds is not None


class RedisStatsSource(Protocol):
    """Where the collector gets Redis numbers; ``read`` never raises for Redis being down."""

    def read(self, account_ids: Sequence[str]) -> RedisStats: ...


class RedisSource:
    """Queue depths from the broker's Redis, cooldowns from the account gate's Redis."""

    def __init__(self, *, broker: redis.Redis, gate: AccountGate, queues: Sequence[str]) -> None:
        self._broker = broker
        self._gate = gate
        self._queues = tuple(queues)

    def read(self, account_ids: Sequence[str]) -> RedisStats:
        """Depth of each queue and cooldown left (seconds) of each account."""
        errors: list[str] = []
        depths = self._queue_depths(errors)
        states = self._states(account_ids, errors)
        return RedisStats(
            depths,
            None if states is None else {a: s.cooldown_seconds for a, s in states.items()},
            "; ".join(errors) or None,
            line_waiting=None if states is None else {a: s.waiting for a, s in states.items()},
        )

    def _queue_depths(self, errors: list[str]) -> dict[str, int] | None:
        try:
            pipe = self._broker.pipeline(transaction=False)
            for queue in self._queues:
                for key in queue_keys(queue):
                    pipe.llen(key)
            lengths = [int(n) for n in pipe.execute()]
        except redis.RedisError as exc:
            errors.append(f"the broker's Redis is unreachable: {exc}")
            return None
        steps = len(PRIORITY_STEPS)
        return {
            queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(self._queues)
        }

    def _states(
        self, account_ids: Sequence[str], errors: list[str]
    ) -> dict[str, AccountState] | None:
        try:
            return {a: self._gate.state(a) for a in account_ids}
        except LimiterUnavailable as exc:
            errors.append(str(exc))
            return None
