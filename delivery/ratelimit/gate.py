"""The account gate: one send in flight per account, at the account's rate, never
during a cooldown, for every worker process on every host, and a line that hands
each slot to the next part instead of letting parts poll for it.

Key schema (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``; the account id sits in
a hash tag, so one account's keys share a Redis Cluster slot)::

    {prefix}:acct:{<account>}:lock       token of the send in flight (PX = lock TTL)
    {prefix}:acct:{<account>}:holder     the next slot, reserved for one part (a published task)
    {prefix}:acct:{<account>}:next       GCRA: when the next send may start (ms)
    {prefix}:acct:{<account>}:cooldown   exists while the account cools down (PX = left)
    {prefix}:acct:{<account>}:ready      parts due, by their place in the line
    {prefix}:acct:{<account>}:later      parts not due yet, by when they are due
    {prefix}:acct:{<account>}:waiters    each waiting part's generation, place and due time
    {prefix}:acct:{<account>}:sends      accepted sends of the last 10 minutes (evidence)
    {prefix}:acct:{<account>}:strikes    consecutive rate-limit verdicts
    {prefix}:acct:{<account>}:run        accepted sends at the account's pace since a refusal
    {prefix}:acct:{<account>}:answered   when the last send was answered (ms)
    {prefix}:acct:{<account>}:suspects   readers held on a bare refusal (``suspects.py``)
    {prefix}:acct:{<account>}:streak_at  when the current streak's first refusal came (ms)
    {prefix}:acct:{<account>}:lesson     a lesson of the limit, waiting to be proven

**The line.** A part that may be sent joins its account's line (:meth:`offer`), in
the order of its order key (:func:`order_key`): the next part of a message already
started first, then first parts of replies, then first parts of pushes, older
messages first within each. Nobody polls: when the account's next slot is free
(no send in flight, none reserved), the first part due by then gets it, and the
caller publishes that part's task to run at the slot's time (:class:`Pick`). The
task's run takes the lock (:meth:`acquire`), sends, and hands the slot on
(:meth:`handoff`), which reserves the next one for the next part. So a paced part
is one task run, and the worker never idles while a part is due.

**The rate.** Sends are spaced one interval apart, counted from the *answer* of the
previous send: the platform counts a send when it arrives, somewhere between the
call and its answer, so network jitter never lets two sends land closer than an
interval. An account whose limit was learned passes its learned rate.

**Cooldowns.** During a cooldown no slot is given out: the part holding the next
slot waits for its end, and it alone goes then (the probe). Whatever the line holds,
a cooldown costs at most one send.

**Fails closed.** When Redis cannot be reached, every method raises
:class:`~delivery.errors.LimiterUnavailable` and nothing is sent. Sending
without the gate could put two sends of one account in flight and trip the
platform's limit, which lasts minutes and grows when hammered; waiting costs
only time, and the chunk stays pending in the ledger. Redis errors are
translated at this boundary only. The Lua scripts are in ``ratelimit/lua/``, each
headed by its KEYS/ARGV contract.

Example::

    gate = AccountGate(redis.Redis.from_url(url), rate=Rate(per_minute=15),
                       lock_ttl_seconds=60)
    picks = gate.offer("bot-1", [Offer(ticket="42", generation=1, order=order_key(...))])
    ...publish each pick's task, to run in pick.in_seconds...
    decision = gate.acquire("bot-1", ticket="42", generation=1)   # in that task
    if decision.granted:
        ...send...
        picks = gate.handoff("bot-1", token=decision.token, answered=True, accepted=True)
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

import redis

from delivery.errors import LimiterUnavailable
from delivery.policy.order import order_key

__all__ = [
    "AccountGate",
    "AccountState",
    "Decision",
    "Handoff",
    "Offer",
    "Pick",
    "Rate",
    "order_key",
]

EARLY_MS = 3  # a task this close to its slot may go: never a retry for a few ms
EVIDENCE_HORIZON_MS = 600_000  # accepted sends kept as evidence of the platform's limit
EVIDENCE_MAX_SENDS = 5_000
LINE_KEEP_MS = 7 * 86_400_000  # a line nobody touches for a week is gone (its parts are
# pending in the ledger, and the reconciler offers them again)
AT_PACE_FACTOR = 1.5  # an accepted send within this many intervals of the last answer is
# a send at the account's pace (the line kept it busy)
PREEMPT_MIN_MS = 500  # a reserved slot further away may go to a part that is better placed
GRACE_MIN_MS = 5_000  # a reserved slot waits at least this long past its time for its task

GRANTED, COOLING, PACED, QUEUED, STALE, UNKNOWN = 0, 1, 3, 4, 5, 6

_KEYS = (
    "lock",
    "holder",
    "next",
    "cooldown",
    "ready",
    "later",
    "waiters",
    "sends",
    "strikes",
    "run",
    "answered",
    "suspects",
    "streak_at",
    "lesson",
)


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
class Offer:
    """A part that joins its account's line: ``due_in_seconds`` from now (a chunk gap,
    a backoff), in the place ``order`` (:func:`order_key`)."""

    ticket: str
    generation: int
    order: str
    due_in_seconds: float = 0.0


@dataclass(frozen=True)
class Pick:
    """The next slot was reserved for this part: publish its task to run in
    ``in_seconds``."""

    ticket: str
    generation: int
    in_seconds: float


@dataclass(frozen=True)
class Decision:
    """What :meth:`AccountGate.acquire` said to a task.

    ``granted`` with a lock ``token``: send now. ``wait_seconds`` > 0: the slot is
    this task's, later (its own, or after a cooldown): run again then. Otherwise the
    task has nothing to do: its part waits in the line (``queued``), a newer task
    holds its slot (``stale``), or the line does not know it (``unknown``: the
    caller looks at the ledger and offers it). ``pick``: a slot this call reserved
    for another part, whose task the caller publishes. ``suspects``: readers are
    held on a bare refusal, for this send to decide. ``lesson_pending``: a lesson of
    the account's limit waits to be proven; its pace holds meanwhile.
    """

    status: int
    wait_seconds: float = 0.0
    token: str | None = None
    pick: Pick | None = None
    suspects: bool = False
    lesson_pending: bool = False

    @property
    def granted(self) -> bool:
        return self.status == GRANTED

    @property
    def waits(self) -> bool:
        return self.status in (COOLING, PACED)

    @property
    def queued(self) -> bool:
        return self.status == QUEUED

    @property
    def stale(self) -> bool:
        return self.status == STALE

    @property
    def unknown(self) -> bool:
        return self.status == UNKNOWN

    @property
    def reason(self) -> str:
        return {
            GRANTED: "granted",
            COOLING: "its slot comes when the account's cooldown ends",
            PACED: "its slot comes at the account's rate",
            QUEUED: "waits in the account's line; its task is published when its slot comes",
            STALE: "a newer task holds its slot",
            UNKNOWN: "not in the account's line",
        }[self.status]


@dataclass(frozen=True)
class Handoff:
    """What :meth:`AccountGate.handoff` did: the slot reserved next (publish its
    task), and the run of accepted sends at the account's pace so far."""

    pick: Pick | None
    run: int


@dataclass(frozen=True)
class AccountState:
    """What the gate knows of an account, for ``delivery status``."""

    cooldown_seconds: float
    strikes: int
    send_in_flight: bool
    waiting: int  # parts in the account's line, the one holding the next slot included


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"Redis for the rate limiter is unreachable: {exc}") from exc


def _script(name: str) -> str:
    folder = resources.files("delivery.ratelimit") / "lua"
    return (folder / "line.lua").read_text("utf-8") + "\n" + (folder / name).read_text("utf-8")


def _pick(values: Sequence[object]) -> Pick | None:
    if len(values) < 3:
        return None
    ticket, generation, in_ms = values[:3]
    return Pick(_text(ticket), int(str(generation)), max(0, int(str(in_ms))) / 1000)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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
        self._strikes_ttl_ms = max(1000, round(strikes_ttl_seconds * 1000))
        self._acquire = client.register_script(_script("acquire.lua"))
        self._offer = client.register_script(_script("offer.lua"))
        self._handoff = client.register_script(_script("handoff.lua"))
        self._leave = client.register_script(_script("leave.lua"))
        self._cool_down = client.register_script(_script("cool_down.lua"))
        self._rate_limited = client.register_script(_script("rate_limited.lua"))

    def key(self, account_id: str, name: str) -> str:
        """The Redis key ``name`` (lock, next, ready, cooldown, ...) of an account."""
        return f"{self._prefix}:acct:{{{account_id}}}:{name}"

    def _keys(self, account_id: str) -> list[str]:
        return [self.key(account_id, name) for name in _KEYS]

    def _grace_ms(self, rate: Rate) -> int:
        return max(self._lock_ttl_ms, 2 * rate.interval_ms, GRACE_MIN_MS)

    def acquire(self, account_id: str, *, ticket: str, generation: int) -> Decision:
        """A task of part ``ticket`` runs: take the send lock if the slot is its own.

        Raises:
            LimiterUnavailable: Redis is unreachable (fail closed: do not send).
        """
        token = secrets.token_hex(8)
        args: list[str | int] = [
            ticket,
            generation,
            token,
            self._lock_ttl_ms,
            EARLY_MS,
            self.rate.tolerance_ms,
            self._grace_ms(self.rate),
            LINE_KEEP_MS,
        ]
        with _translated():
            reply = self._acquire(keys=self._keys(account_id), args=args)
        status, wait_ms, held, lesson = (int(v) for v in reply[:4])
        return Decision(
            status,
            wait_seconds=max(0, wait_ms) / 1000,
            token=token if status == GRANTED else None,
            pick=_pick(reply[4:]),
            suspects=held > 0,
            lesson_pending=lesson > 0,
        )

    def offer(self, account_id: str, offers: Sequence[Offer]) -> Pick | None:
        """Parts join the account's line; returns the slot reserved now, if any.

        Raises:
            LimiterUnavailable: Redis is unreachable.
        """
        args: list[str | int | float] = [
            self.rate.tolerance_ms,
            self._grace_ms(self.rate),
            LINE_KEEP_MS,
            PREEMPT_MIN_MS,
            len(offers),
        ]
        for offer in offers:
            due_ms = max(0, round(offer.due_in_seconds * 1000))
            args += [offer.ticket, offer.generation, offer.order, due_ms]
        with _translated():
            reply = self._offer(keys=self._keys(account_id), args=args)
        return _pick(reply)

    def kick(self, account_id: str) -> Pick | None:
        """Reserve the next slot if nobody holds it (a slot's task was lost)."""
        return self.offer(account_id, [])

    def handoff(
        self,
        account_id: str,
        *,
        token: str | None,
        answered: bool,
        accepted: bool = False,
        learned_per_minute: float | None = None,
        offers: Sequence[Offer] = (),
    ) -> Handoff:
        """The task is done with its slot: release the lock, move the rate on from
        this answer (``answered``: the platform was called), keep an accepted send as
        evidence, let ``offers`` join the line, and reserve the next slot.

        Raises:
            LimiterUnavailable: Redis is unreachable (the lock then expires by itself).
        """
        rate = self.rate.at_most(learned_per_minute)
        args: list[str | int | float] = [
            token or "",
            int(answered),
            int(accepted),
            rate.interval_ms,
            rate.tolerance_ms,
            self._grace_ms(rate),
            LINE_KEEP_MS,
            EVIDENCE_HORIZON_MS,
            EVIDENCE_MAX_SENDS,
            round(AT_PACE_FACTOR * rate.interval_ms),
            len(offers),
        ]
        for offer in offers:
            due_ms = max(0, round(offer.due_in_seconds * 1000))
            args += [offer.ticket, offer.generation, offer.order, due_ms]
        with _translated():
            reply = self._handoff(keys=self._keys(account_id), args=args)
        return Handoff(pick=_pick(reply[1:]), run=int(reply[0]))

    def leave(self, account_id: str, tickets: Collection[str]) -> Pick | None:
        """Parts no longer wait (final, parked, another task's); a slot one of them
        held goes to the next in line, which is returned."""
        if not tickets:
            return None
        args: list[str | int] = [self.rate.tolerance_ms, self._grace_ms(self.rate), *tickets]
        with _translated():
            reply = self._leave(keys=self._keys(account_id), args=args)
        return _pick(reply)

    def rate_limited(
        self, account_id: str, *, streak_began: float | None = None
    ) -> tuple[int, float]:
        """Count one more consecutive rate-limit verdict; returns the streak's length and
        when it began (s since the epoch, Redis' clock). ``streak_began``: the time of
        an earlier refusal now known to be the first of this streak (a suspect's)."""
        began = "" if streak_began is None else str(round(streak_began * 1000))
        with _translated():
            strikes, began_ms = self._rate_limited(
                keys=self._keys(account_id), args=[self._strikes_ttl_ms, began]
            )
        return int(strikes), int(began_ms) / 1000

    def cool_down(self, account_id: str, seconds: float) -> float:
        """Hold every send of the account for ``seconds`` (never shortens a longer one);
        the part holding the next slot keeps it, for when the cooldown ends.

        Returns the cooldown's time left, in seconds.
        """
        args = [max(1, round(seconds * 1000)), self._grace_ms(self.rate)]
        with _translated():
            left_ms = self._cool_down(keys=self._keys(account_id), args=args)
        return int(left_ms) / 1000

    def accepted_sends(self, account_id: str) -> tuple[list[float], float]:
        """Evidence: the times (s since the epoch) of the account's accepted sends of
        the last 10 minutes, oldest first, and Redis' clock now."""
        with _translated():
            pipe = self._client.pipeline()
            pipe.zrange(self.key(account_id, "sends"), 0, -1, withscores=True)
            pipe.time()
            sends, (seconds, micros) = pipe.execute()
        return [score / 1000 for _, score in sends], seconds + micros / 1e6

    def reset_run(self, account_id: str) -> None:
        """Start counting the run at the account's pace again (its rate changed)."""
        with _translated():
            self._client.delete(self.key(account_id, "run"))

    def in_line(self, account_id: str, tickets: Collection[str]) -> set[str]:
        """Which of ``tickets`` wait in the account's line or hold its next slot."""
        if not tickets:
            return set()
        ordered = sorted(tickets)
        with _translated():
            pipe = self._client.pipeline()
            pipe.hmget(self.key(account_id, "waiters"), ordered)
            pipe.get(self.key(account_id, "holder"))
            found, holder = pipe.execute()
        waiting = {ticket for ticket, meta in zip(ordered, found, strict=True) if meta}
        if holder:
            waiting.add(_text(holder).split("|", 1)[0])
        return waiting & set(tickets)

    def state(self, account_id: str) -> AccountState:
        """Cooldown left, strikes, whether a send is in flight, parts in line."""
        with _translated():
            pipe = self._client.pipeline()
            pipe.pttl(self.key(account_id, "cooldown"))
            pipe.get(self.key(account_id, "strikes"))
            pipe.exists(self.key(account_id, "lock"))
            pipe.hlen(self.key(account_id, "waiters"))
            pipe.exists(self.key(account_id, "holder"))
            cooldown_ms, strikes, locked, waiting, holding = pipe.execute()
        return AccountState(
            cooldown_seconds=max(0, int(cooldown_ms)) / 1000,
            strikes=int(strikes or 0),
            send_in_flight=bool(locked),
            waiting=int(waiting) + int(holding),
        )
