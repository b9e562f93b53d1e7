"""The seed's send policies, re-implemented faithfully, for comparison with the pipeline.

Both speak real HTTP to the simulator through :class:`delivery.ilink.client.ILinkClient`
(one ``requests.Session`` per delivery thread) and decide what an answer means with
:func:`delivery.ilink.classify.classify`.

**seed** (the client this project replaces): every cron delivery runs at once in
its own thread (not serialised). Each chunk gets up to :data:`ATTEMPTS` attempts; a
rate-limit (or transient) answer waits a fixed ``retry_delay`` (3 s real) before the
next; chunks of a message are a fixed ``chunk_gap`` (1.5 s real) apart. A chunk
that fails every attempt aborts the rest of its message, and the message is
dropped: cron deliveries are never retried later.

**seed + fix** (the fix proposed in the seed's issue): the same, but each whole
delivery (its sleeps included) holds one global ``Semaphore(1)``; a refused attempt
waits ``min(base_wait * 2 ** attempt + uniform(0, 2), 60)`` with ``base_wait = 3 *
retry_delay`` (9 s real); chunks are ``max(1.5, 2.0 + 0.3 * n_chunks)`` apart. The
issue keeps the seed's attempt count, so it still gives up after :data:`ATTEMPTS`
attempts (four waits: 9 + 18 + 36 + 60 s, about two minutes), and a failed
message is not resent.

``client_id``: each chunk of each message send gets a fresh ``seed-<uuid>``, reused
by that chunk's attempts within the send (the seed does not resend a failed
message, so a fresh id per *send* never meets the same chunk twice here).

All durations are real seconds multiplied by the compression factor of
:class:`SeedTiming`.

Example::

    timing = SeedTiming(factor=1 / 20)
    outcomes = run_policy(fix_policy(timing), batch, base_url=url, token=token)
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import requests

from bench.workload import Briefing
from delivery.errors import TransportError
from delivery.ilink.classify import classify
from delivery.ilink.client import ILinkClient
from delivery.ledger.states import AttemptOutcome

__all__ = [
    "ATTEMPTS",
    "MessageOutcome",
    "SeedPolicy",
    "SeedTiming",
    "fix_gap_seconds",
    "fix_policy",
    "fix_wait_seconds",
    "run_policy",
    "seed_policy",
]

ATTEMPTS = 5  # "backing off 3.0s x 5": five attempts, four waits
_RETRYABLE = frozenset({AttemptOutcome.RATE_LIMITED, AttemptOutcome.TRANSIENT})


@dataclass(frozen=True)
class SeedTiming:
    """The seed's constants in real seconds, and the factor that compresses them."""

    factor: float
    retry_delay_seconds: float = 3.0
    chunk_gap_seconds: float = 1.5
    fix_base_multiplier: float = 3.0
    fix_max_wait_seconds: float = 60.0
    fix_jitter_seconds: float = 2.0
    fix_gap_base_seconds: float = 2.0
    fix_gap_per_chunk_seconds: float = 0.3
    http_timeout_seconds: float = 15.0


def fix_wait_seconds(
    *, attempt: int, base_seconds: float, jitter_seconds: float, max_seconds: float, draw: float
) -> float:
    """The fix's wait after refused attempt ``attempt`` (from 0); ``draw`` is in [0, 1)."""
    return min(base_seconds * 2.0**attempt + jitter_seconds * draw, max_seconds)


def fix_gap_seconds(
    *, n_chunks: int, gap_seconds: float, base_seconds: float, per_chunk_seconds: float
) -> float:
    """The fix's dynamic gap between chunks: ``max(gap, base + per_chunk * n_chunks)``."""
    return max(gap_seconds, base_seconds + per_chunk_seconds * n_chunks)


@dataclass(frozen=True)
class SeedPolicy:
    """How one policy waits, spaces chunks, and whether deliveries are serialised."""

    name: str
    serialised: bool
    wait_seconds: Callable[[int, random.Random], float]  # (attempt from 0, rng) -> seconds
    gap_seconds: Callable[[int], float]  # n_chunks -> seconds between chunks
    http_timeout_seconds: float


def seed_policy(timing: SeedTiming) -> SeedPolicy:
    """The seed: fixed 3 s waits, fixed 1.5 s gap, concurrent deliveries."""
    c = timing.factor
    return SeedPolicy(
        name="seed",
        serialised=False,
        wait_seconds=lambda _attempt, _rng: timing.retry_delay_seconds * c,
        gap_seconds=lambda _n: timing.chunk_gap_seconds * c,
        http_timeout_seconds=timing.http_timeout_seconds * c,
    )


def fix_policy(timing: SeedTiming) -> SeedPolicy:
    """The seed's proposed fix: exponential backoff with jitter, one global semaphore."""
    c = timing.factor

    def wait(attempt: int, rng: random.Random) -> float:
        return fix_wait_seconds(
            attempt=attempt,
            base_seconds=timing.fix_base_multiplier * timing.retry_delay_seconds * c,
            jitter_seconds=timing.fix_jitter_seconds * c,
            max_seconds=timing.fix_max_wait_seconds * c,
            draw=rng.random(),
        )

    def gap(n_chunks: int) -> float:
        return fix_gap_seconds(
            n_chunks=n_chunks,
            gap_seconds=timing.chunk_gap_seconds * c,
            base_seconds=timing.fix_gap_base_seconds * c,
            per_chunk_seconds=timing.fix_gap_per_chunk_seconds * c,
        )

    return SeedPolicy(
        name="seed + fix",
        serialised=True,
        wait_seconds=wait,
        gap_seconds=gap,
        http_timeout_seconds=timing.http_timeout_seconds * c,
    )


@dataclass(frozen=True)
class MessageOutcome:
    """How one message's delivery ended (``finished_at`` is ``time.monotonic()``)."""

    index: int
    chunks_total: int
    chunks_accepted: int
    attempts: int
    finished_at: float

    @property
    def delivered(self) -> bool:
        return self.chunks_accepted == self.chunks_total


def run_policy(
    policy: SeedPolicy, batch: Sequence[Briefing], *, base_url: str, token: str, seed: int = 0
) -> list[MessageOutcome]:
    """Fire every message's delivery at once, one thread each; wait for all to end."""
    lock: threading.Semaphore | None = threading.Semaphore(1) if policy.serialised else None
    outcomes: list[MessageOutcome | None] = [None] * len(batch)

    def deliver(position: int, message: Briefing) -> None:
        guard: AbstractContextManager[object] = lock if lock is not None else nullcontext()
        with guard:
            outcomes[position] = _deliver(
                policy, message, base_url=base_url, token=token, rng=random.Random(seed + position)
            )

    threads = [
        threading.Thread(target=deliver, args=(i, m), name=f"{policy.name} #{m.index}", daemon=True)
        for i, m in enumerate(batch)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [outcome for outcome in outcomes if outcome is not None]


def _deliver(
    policy: SeedPolicy, message: Briefing, *, base_url: str, token: str, rng: random.Random
) -> MessageOutcome:
    client = ILinkClient(
        base_url=base_url,
        token=token,
        session=requests.Session(),
        timeout_seconds=policy.http_timeout_seconds,
    )
    accepted = attempts = 0
    try:
        for seq, text in enumerate(message.chunks):
            if seq:
                time.sleep(policy.gap_seconds(len(message.chunks)))
            ok, tries = _send_chunk(policy, client, message.to_user_id, text, rng)
            attempts += tries
            if not ok:
                break  # the rest of the message is aborted, and the message dropped
            accepted += 1
    finally:
        client.close()
    return MessageOutcome(message.index, len(message.chunks), accepted, attempts, time.monotonic())


def _send_chunk(
    policy: SeedPolicy, client: ILinkClient, to_user_id: str, text: str, rng: random.Random
) -> tuple[bool, int]:
    """Up to :data:`ATTEMPTS` attempts with one client_id; (accepted?, attempts made)."""
    client_id = f"seed-{uuid.uuid4().hex}"
    for attempt in range(ATTEMPTS):
        try:
            reply = client.send_text(
                to_user_id=to_user_id, client_id=client_id, text=text, context_token=None
            )
            outcome = classify(reply.answer, used_context_token=False).outcome
        except TransportError:
            outcome = AttemptOutcome.TRANSIENT
        if outcome == AttemptOutcome.ACCEPTED:
            return True, attempt + 1
        if outcome not in _RETRYABLE:
            return False, attempt + 1
        if attempt < ATTEMPTS - 1:
            time.sleep(policy.wait_seconds(attempt, rng))
    return False, ATTEMPTS
