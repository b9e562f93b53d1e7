"""The account gate: one send in flight per account, at the account's rate, never
during a cooldown, for every worker process on every host.

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``; the account id sits in
a hash tag, so one account's keys share a Redis Cluster slot)::

    {prefix}:acct:{<account>}:lock       token of the send in flight (PX = lock TTL)
    {prefix}:acct:{<account>}:next       when the next send may start (ms)
    {prefix}:acct:{<account>}:latency    moving average of a send's grant -> answer (ms)
    {prefix}:acct:{<account>}:granted    when the send in flight was granted (ms)
    {prefix}:acct:{<account>}:line       waiters (tickets) by order key: who goes next
    {prefix}:acct:{<account>}:back       waiters by when they are expected back
    {prefix}:acct:{<account>}:weight     waiters' sends still needed by their message
    {prefix}:acct:{<account>}:per_send   moving average of the time between sends (ms)
    {prefix}:acct:{<account>}:last_grant when the last send was granted (ms)
    {prefix}:acct:{<account>}:cooldown   exists while the account cools down (PX = left)
    {prefix}:acct:{<account>}:strikes    consecutive rate-limit answers
    {prefix}:acct:{<account>}:sends      accepted sends of the last 10 minutes (evidence)

**The line.** Waiters go in the order of their order key (:func:`order_key`): the
next part of a message already started before any first part, and older messages
first. A reader who saw part 1 gets part 2 at the account's next slot, not after
the whole backlog; still one send in flight, never over the rate.

**The rate.** Sends are spaced one interval apart, counted from the *answer* of the
previous send as well as from its start: the platform counts a send when it
arrives, which is somewhere between the two, so network jitter never lets two
sends land closer than an interval. An account whose limit was learned
(:mod:`delivery.ratelimit.learning`) passes its learned rate to :meth:`acquire`.

**Fails closed.** When Redis cannot be reached, :meth:`AccountGate.acquire`
raises :class:`~delivery.errors.LimiterUnavailable` and nothing is sent. Sending
without the gate could put two sends of one account in flight and trip the
platform's limit, which lasts minutes and grows when hammered; waiting costs
only time, and the chunk stays pending in the ledger. Redis errors are
translated at this boundary only.

Example::

    gate = AccountGate(redis.Redis.from_url(url), rate=Rate(per_minute=15, burst=2),
                       lock_ttl_seconds=60)
    decision = gate.acquire("bot-1", ticket="42", order=order_key(message_id=7, seq=1))
    if decision.granted:
        try:
            ...send...
            gate.answered("bot-1", accepted=True)
        finally:
            gate.release("bot-1", decision.token)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from delivery.errors import LimiterUnavailable
from delivery.ratelimit import scripts

__all__ = ["AccountGate", "AccountState", "Decision", "Rate", "order_key"]

RESERVATION_GRACE_MS = 5_000  # a loaded worker may run a task this late
LOOK_AHEAD = 8  # waiters this near the front check who is really coming before them
BUSY_POLL_MS = 100  # a send in flight takes tens of ms; look again soon, not at its lock's TTL
EVIDENCE_HORIZON_MS = 600_000  # accepted sends kept as evidence of the platform's limit
EVIDENCE_MAX_SENDS = 5_000
_STARTED = 0.0  # order class of the next part of a message already started
_FIRST = 2.0**40  # ... of a first part (message ids stay far below 2**40)


def order_key(*, message_id: int, seq: int) -> float:
    """A waiter's place in its account's line: the next part of a started message
    before any first part; older messages (smaller ids, enqueued first) first."""
    return (_STARTED if seq > 1 else _FIRST) + message_id


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

    def at_most(self, per_minute: float | None) -> Rate:
        """This rate, lowered to ``per_minute`` when that is lower (a learned limit).
        A learned limit sends one at a time: a burst is what tripped it."""
        if per_minute is None or per_minute >= self.per_minute:
            return self
        return Rate(per_minute=per_minute, burst=1)


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
        """The wait is this caller's own (its turn in the line, a short poll), not
        shared with every other waiter of the account (a cooldown)."""
        return self.status in (scripts.PACED, scripts.BUSY)

    @property
    def reason(self) -> str:
        return {
            scripts.GRANTED: "granted",
            scripts.COOLING: "account cooling down after a rate limit",
            scripts.BUSY: "another send of this account is in flight",
            scripts.PACED: "waiting for its turn at the account's send rate",
        }[self.status]


@dataclass(frozen=True)
class AccountState:
    """What the gate knows of an account, for ``delivery status``."""

    cooldown_seconds: float
    strikes: int
    send_in_flight: bool
    waiting: int  # waiters in the account's line


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"Redis for the rate limiter is unreachable: {exc}") from exc


class AccountGate:
    """Per-account lock, line, rate and cooldown in Redis. See the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        rate: Rate,
        lock_ttl_seconds: float,
        prefix: str = "delivery",
        strikes_ttl_seconds: float = 3600.0,
    ) -> None:
        self._client = client
        self.rate = rate
        self._lock_ttl_ms = max(1, round(lock_ttl_seconds * 1000))
        self._prefix = prefix
        self._strikes_ttl_seconds = max(1, round(strikes_ttl_seconds))
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._answered = client.register_script(scripts.ANSWERED)
        self._leave = client.register_script(scripts.LEAVE)
        self._expect = client.register_script(scripts.EXPECT)
        self._release = client.register_script(scripts.RELEASE)
        self._cool_down = client.register_script(scripts.COOL_DOWN)

    def key(self, account_id: str, name: str) -> str:
        """The Redis key ``name`` (lock, next, line, cooldown, ...) of an account."""
        return f"{self._prefix}:acct:{{{account_id}}}:{name}"

    def acquire(
        self,
        account_id: str,
        *,
        ticket: str,
        order: float = _FIRST,
        weight: int = 1,
        learned_per_minute: float | None = None,
    ) -> Decision:
        """Take the account's lock and a rate slot if ``ticket`` is first in line.

        ``ticket`` names the caller across retries (a chunk id), ``order`` its
        place in the line (:func:`order_key`) and ``weight`` the sends its message
        still needs (itself included): those behind it are told when their turn
        should come from the weights before them. Not yet its turn: it is told when
        to come back. ``learned_per_minute``: the account's learned limit, if lower
        than the configured rate.

        Raises:
            LimiterUnavailable: Redis is unreachable (fail closed: do not send).
        """
        rate = self.rate.at_most(learned_per_minute)
        token = secrets.token_hex(8)
        names = (
            "cooldown",
            "lock",
            "next",
            "line",
            "back",
            "latency",
            "granted",
            "weight",
            "per_send",
            "last_grant",
        )
        keys = [self.key(account_id, n) for n in names]
        args: list[str | int | float] = [
            ticket,
            order,
            token,
            self._lock_ttl_ms,
            rate.interval_ms,
            rate.tolerance_ms,
            self._grace_ms(rate),
            BUSY_POLL_MS,
            LOOK_AHEAD,
            max(1, weight),
        ]
        with _translated():
            status, wait_ms = self._acquire(keys=keys, args=args)
        status, wait_ms = int(status), int(wait_ms)
        return Decision(status, wait_ms / 1000, token if status == scripts.GRANTED else None)

    def expect(
        self, account_id: str, *, ticket: str, order: float, in_seconds: float, weight: int = 1
    ) -> None:
        """``ticket`` will ask in ``in_seconds`` (the next part of a message, after its
        gap): it takes its place in the line now, so no first part takes its slot."""
        keys = [self.key(account_id, n) for n in ("line", "back", "weight")]
        wait_ms = max(0, round(in_seconds * 1000))
        ttl_ms = wait_ms + self._grace_ms(self.rate) + self.rate.interval_ms
        with _translated():
            self._expect(keys=keys, args=[ticket, order, wait_ms, ttl_ms, max(1, weight)])

    def leave(self, account_id: str, ticket: str) -> None:
        """``ticket`` no longer waits (its chunk is final, parked, or another task's)."""
        with _translated():
            keys = [self.key(account_id, n) for n in ("line", "back", "weight")]
            self._leave(keys=keys, args=[ticket])

    @staticmethod
    def _grace_ms(rate: Rate) -> int:
        return max(2 * rate.interval_ms, RESERVATION_GRACE_MS)

    def answered(
        self, account_id: str, *, accepted: bool, learned_per_minute: float | None = None
    ) -> None:
        """The send's call ended: the next send of the account starts one interval
        after now. An accepted send is kept as evidence and ends a rate-limit streak."""
        rate = self.rate.at_most(learned_per_minute)
        keys = [self.key(account_id, n) for n in ("next", "sends", "strikes", "latency", "granted")]
        args = [rate.interval_ms, int(accepted), EVIDENCE_HORIZON_MS, EVIDENCE_MAX_SENDS]
        with _translated():
            self._answered(keys=keys, args=args)

    def accepted_sends(self, account_id: str) -> tuple[list[float], float]:
        """Evidence: the times (s since the epoch) of the account's accepted sends of
        the last 10 minutes, oldest first, and Redis' clock now."""
        with _translated():
            pipe = self._client.pipeline()
            pipe.zrange(self.key(account_id, "sends"), 0, -1, withscores=True)
            pipe.time()
            sends, (seconds, micros) = pipe.execute()
        return [score / 1000 for _, score in sends], seconds + micros / 1e6

    def release(self, account_id: str, token: str) -> bool:
        """Release the lock if still ours. False when it expired meanwhile (logged by caller)."""
        with _translated():
            return bool(self._release(keys=[self.key(account_id, "lock")], args=[token]))

    def rate_limited(self, account_id: str) -> int:
        """Count one more consecutive rate-limit answer; return the streak length."""
        key = self.key(account_id, "strikes")
        with _translated():
            pipe = self._client.pipeline()
            pipe.incr(key)
            pipe.expire(key, self._strikes_ttl_seconds)
            strikes, _ = pipe.execute()
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

    def state(self, account_id: str) -> AccountState:
        """Cooldown left, strikes, whether a send is in flight, waiters in line."""
        with _translated():
            pipe = self._client.pipeline()
            pipe.pttl(self.key(account_id, "cooldown"))
            pipe.get(self.key(account_id, "strikes"))
            pipe.exists(self.key(account_id, "lock"))
            pipe.zcard(self.key(account_id, "line"))
            cooldown_ms, strikes, locked, waiting = pipe.execute()
        return AccountState(
            cooldown_seconds=max(0, int(cooldown_ms)) / 1000,
            strikes=int(strikes or 0),
            send_in_flight=bool(locked),
            waiting=int(waiting),
        )
