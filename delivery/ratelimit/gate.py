"""The account gate: one send in flight per account, at the account's rate, never
during a cooldown, for every worker process on every host.

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``; the account id sits in
a hash tag, so one account's keys share a Redis Cluster slot)::

    {prefix}:acct:{<account>}:lock       token of the send in flight (PX = lock TTL)
    {prefix}:acct:{<account>}:gcra       theoretical arrival time of reservations (ms)
    {prefix}:acct:{<account>}:sent       theoretical arrival time of granted sends (ms)
    {prefix}:acct:{<account>}:cooldown   exists while the account cools down (PX = left)
    {prefix}:acct:{<account>}:strikes    consecutive rate-limit answers
    {prefix}:acct:{<account>}:slot:<ticket>  a waiter's reserved rate slot (ms)
    {prefix}:acct:{<account>}:pace       learned fraction of the configured rate
    {prefix}:acct:{<account>}:ceiling    the pace it may climb back to

**Learned pace.** The platform's limit is not published. The first rate-limit
answer of a streak means the pace was too high: the account's pace halves and
a ceiling is remembered at 90% of the pace that tripped; each accepted send
climbs back by a step, up to the ceiling. A ceiling is forgotten after
``pace_memory_seconds`` without another trip. Later answers of the same streak
are probes during a lockout and teach nothing.

**Fails closed.** When Redis cannot be reached, :meth:`AccountGate.acquire`
raises :class:`~delivery.errors.LimiterUnavailable` and nothing is sent. Sending
without the gate could put two sends of one account in flight and trip the
platform's limit, which lasts minutes and grows when hammered; waiting costs
only time, and the chunk stays pending in the ledger. Redis errors are
translated at this boundary only.

Example::

    gate = AccountGate(redis.Redis.from_url(url), rate=Rate(per_minute=15, burst=2),
                       lock_ttl_seconds=60)
    decision = gate.acquire("bot-1")
    if decision.granted:
        try: ...send...
        finally: gate.release("bot-1", decision.token)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from delivery.errors import LimiterUnavailable
from delivery.ratelimit import scripts

__all__ = ["AccountGate", "AccountState", "Decision", "Rate"]

RESERVATION_GRACE_MS = 5_000  # a loaded worker may run a task this late
BUSY_POLL_MS = 100  # a send in flight takes tens of ms; look again soon, not at its lock's TTL
PACE_BACKOFF = 0.5  # after a trip the account sends at half its pace ...
PACE_CEILING = 0.9  # ... and climbs back to 90% of the pace that tripped
PACE_STEP = 0.05  # per accepted send
PACE_MIN = 0.05  # never slower than 5% of the configured rate


@dataclass(frozen=True)
class Rate:
    """A send rate: ``per_minute`` sends, with up to ``burst`` back to back."""

    per_minute: float
    burst: int = 1

    @property
    def interval_ms(self) -> int:
        return max(1, round(60_000 / self.per_minute))

    @property
    def tolerance_ms(self) -> int:
        return (self.burst - 1) * self.interval_ms


@dataclass(frozen=True)
class Decision:
    """The gate's answer. ``granted`` with a lock ``token``, or why not and for how long."""

    status: int
    wait_seconds: float
    token: str | None = None

    @property
    def granted(self) -> bool:
        return self.status == scripts.GRANTED

    @property
    def scheduled(self) -> bool:
        """The wait is this caller's own (a reserved slot, a short poll), not shared
        with every other waiter of the account (a cooldown)."""
        return self.status in (scripts.PACED, scripts.BUSY)

    @property
    def reason(self) -> str:
        return {
            scripts.GRANTED: "granted",
            scripts.COOLING: "account cooling down after a rate limit",
            scripts.BUSY: "another send of this account is in flight",
            scripts.PACED: "account send rate reached",
        }[self.status]


@dataclass(frozen=True)
class AccountState:
    """What the gate knows of an account, for ``delivery status``."""

    cooldown_seconds: float
    strikes: int
    send_in_flight: bool
    pace: float  # fraction of the configured rate the account sends at


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"Redis for the rate limiter is unreachable: {exc}") from exc


class AccountGate:
    """Per-account lock, rate and cooldown in Redis. See the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        rate: Rate,
        lock_ttl_seconds: float,
        prefix: str = "delivery",
        strikes_ttl_seconds: float = 3600.0,
        pace_memory_seconds: float = 86_400.0,
    ) -> None:
        self._client = client
        self.rate = rate
        self._lock_ttl_ms = max(1, round(lock_ttl_seconds * 1000))
        self._prefix = prefix
        self._strikes_ttl_seconds = max(1, round(strikes_ttl_seconds))
        # A waiter late for its slot by more than this queues again (its slot is lost).
        self._reservation_grace_ms = max(2 * rate.interval_ms, RESERVATION_GRACE_MS)
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._release = client.register_script(scripts.RELEASE)
        self._cool_down = client.register_script(scripts.COOL_DOWN)
        self._pace_down = client.register_script(scripts.PACE_DOWN)
        self._pace_up = client.register_script(scripts.PACE_UP)
        self._pace_memory_ms = max(1000, round(pace_memory_seconds * 1000))

    def key(self, account_id: str, name: str) -> str:
        """The Redis key ``name`` (lock, gcra, cooldown, strikes) of an account."""
        return f"{self._prefix}:acct:{{{account_id}}}:{name}"

    def acquire(self, account_id: str, *, ticket: str) -> Decision:
        """Take the account's lock and a rate slot, unless cooling, busy or paced.

        ``ticket`` names the caller across retries (a chunk id): when the rate makes
        it wait, a slot is reserved for that ticket, and the ticket's next call
        at or after ``wait_seconds`` uses it instead of queueing again.

        Raises:
            LimiterUnavailable: Redis is unreachable (fail closed: do not send).
        """
        token = secrets.token_hex(8)
        keys = [self.key(account_id, n) for n in ("cooldown", "lock", "gcra")]
        keys.append(self.key(account_id, f"slot:{ticket}"))
        keys.append(self.key(account_id, "pace"))
        keys.append(self.key(account_id, "sent"))
        args: list[str | int] = [
            token,
            self._lock_ttl_ms,
            self.rate.interval_ms,
            self.rate.tolerance_ms,
            self._reservation_grace_ms,
            BUSY_POLL_MS,
        ]
        with _translated():
            status, wait_ms = self._acquire(keys=keys, args=args)
        status, wait_ms = int(status), int(wait_ms)
        return Decision(status, wait_ms / 1000, token if status == scripts.GRANTED else None)

    def release(self, account_id: str, token: str) -> bool:
        """Release the lock if still ours. False when it expired meanwhile (logged by caller)."""
        with _translated():
            return bool(self._release(keys=[self.key(account_id, "lock")], args=[token]))

    def rate_limited(self, account_id: str) -> int:
        """Count one more consecutive rate-limit answer; return the streak length.

        The first of a streak lowers the account's pace (see the module docstring).
        """
        key = self.key(account_id, "strikes")
        with _translated():
            pipe = self._client.pipeline()
            pipe.incr(key)
            pipe.expire(key, self._strikes_ttl_seconds)
            strikes, _ = pipe.execute()
            if int(strikes) == 1:
                self._pace_down(
                    keys=[self.key(account_id, "pace"), self.key(account_id, "ceiling")],
                    args=[PACE_BACKOFF, PACE_CEILING, PACE_MIN, self._pace_memory_ms],
                )
        return int(strikes)

    def cool_down(self, account_id: str, seconds: float) -> float:
        """Hold every send of the account for ``seconds`` (never shortens a longer one).

        Returns the cooldown's time left, in seconds.
        """
        with _translated():
            left_ms = self._cool_down(
                keys=[self.key(account_id, "cooldown")], args=[max(1, round(seconds * 1000))]
            )
        return int(left_ms) / 1000

    def succeeded(self, account_id: str) -> float:
        """An accepted send ends the streak and lets the pace climb; returns the pace."""
        with _translated():
            self._client.delete(self.key(account_id, "strikes"))
            pace = self._pace_up(
                keys=[self.key(account_id, "pace"), self.key(account_id, "ceiling")],
                args=[PACE_STEP, self._pace_memory_ms],
            )
        return float(pace)

    def state(self, account_id: str) -> AccountState:
        """Cooldown left, strikes and whether a send is in flight."""
        with _translated():
            pipe = self._client.pipeline()
            pipe.pttl(self.key(account_id, "cooldown"))
            pipe.get(self.key(account_id, "strikes"))
            pipe.exists(self.key(account_id, "lock"))
            pipe.get(self.key(account_id, "pace"))
            cooldown_ms, strikes, locked, pace = pipe.execute()
        return AccountState(
            cooldown_seconds=max(0, int(cooldown_ms)) / 1000,
            strikes=int(strikes or 0),
            send_in_flight=bool(locked),
            pace=float(pace or 1),
        )
