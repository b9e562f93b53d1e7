"""How long to wait: backoff, cooldowns, chunk spacing, and spreading waiters out.

Pure functions with keyword-only arguments, seconds everywhere; randomness comes
from an injected ``random.Random`` so tests can pin it.

Example::

    transient_backoff_seconds(failures=3, base_seconds=2, max_seconds=600,
                              jitter=False, floor_seconds=0.5)        # 8.0
    chunk_gap_seconds(n_chunks=6, gap_seconds=1.5, base_seconds=2.0,
                      per_chunk_seconds=0.3)                           # 3.8
"""

from __future__ import annotations

import random

__all__ = [
    "chunk_gap_seconds",
    "cooldown_seconds",
    "spread_seconds",
    "transient_backoff_seconds",
]

_COOLDOWN_JITTER = 0.25  # a cooldown lasts up to 25% longer than its step (capped)
_SPREAD_FRACTION = 0.1  # waiters come back within 10% of their wait
_SPREAD_MIN_SECONDS = 0.05  # and never all in the same instant
_RNG = random.Random()


def transient_backoff_seconds(
    *,
    failures: int,
    base_seconds: float,
    max_seconds: float,
    jitter: bool,
    floor_seconds: float,
    rng: random.Random | None = None,
) -> float:
    """The countdown after the ``failures``-th transient failure of a chunk.

    Celery's ``retry_backoff`` rule (``base * 2 ** (failures - 1)``, capped at
    ``max_seconds``, with full jitter when ``jitter``), plus a floor: full jitter
    alone can draw 0 and retry at once.
    """
    if failures < 1:
        raise ValueError(f"failures must be at least 1, not {failures}")
    step = min(max_seconds, base_seconds * 2.0 ** min(failures - 1, 62))
    value = (rng or _RNG).uniform(0, step) if jitter else step
    return max(floor_seconds, value)


def cooldown_seconds(
    *,
    strikes: int,
    base_seconds: float,
    max_seconds: float,
    growth: float = 2.0,
    rng: random.Random | None = None,
) -> float:
    """How long an account pauses after its ``strikes``-th consecutive rate limit.

    ``base_seconds`` times ``growth`` per strike after the first (each one is a
    refused probe), with up to 25% jitter, capped at ``max_seconds``; never zero.
    Platform penalties last minutes to hours and grow with every send made during
    one, so a cooldown is long and only one probe goes out when it ends.
    """
    if strikes < 1:
        raise ValueError(f"strikes must be at least 1, not {strikes}")
    step = min(max_seconds, base_seconds * growth ** min(strikes - 1, 62))
    return min(max_seconds, step * (rng or _RNG).uniform(1.0, 1.0 + _COOLDOWN_JITTER))


def spread_seconds(wait_seconds: float, *, rng: random.Random | None = None) -> float:
    """A waiting task's countdown: the wait plus a little, so waiters do not stampede.

    Always positive, and at least ``wait_seconds``.
    """
    wait = max(0.0, wait_seconds)
    extra = max(_SPREAD_MIN_SECONDS, _SPREAD_FRACTION * wait)
    return wait + (rng or _RNG).uniform(_SPREAD_MIN_SECONDS / 5, extra)


def chunk_gap_seconds(
    *, n_chunks: int, gap_seconds: float, base_seconds: float, per_chunk_seconds: float
) -> float:
    """The pause between two chunks of one message: ``max(gap, base + per_chunk * n)``.

    Longer messages are spaced wider: a fixed 1.5 s let 5-8 chunks trip the limit.
    A single-chunk message has no gap to keep.
    """
    if n_chunks <= 1:
        return 0.0
    return max(gap_seconds, base_seconds + per_chunk_seconds * n_chunks)
