"""Learning an account's rate limit from the evidence at a refusal (pure functions).

The platform does not publish its limit, so the operator's configured rate is a
guess. When the account's own limit refuses a send (not a reader's window or
budget: those are no evidence about the account), the gate's log of accepted sends
says how fast the account was really going: the rate of the sends just before the
refusal (the fastest run of 3 to 10 of them) is an upper bound of the limit. The
limit itself is somewhere below it, and one refusal cannot say where: a sliding
window of N sends in W seconds refuses the (N+1)th send however long W is. The
learned ceiling is therefore half the rate that tripped, less a margin
(:data:`LEARN_FACTOR`): a guess up to twice the limit costs one lockout and then
drains at 90% of the limit; a guess further off costs one more lockout per
halving. The ceiling never rises again by itself: only ``delivery account
reset-pace`` or ``DELIVERY_PACE_MEMORY_SECONDS`` passing forgets it (and a later
refusal only lowers it).

Example::

    estimate = estimate_limit(sends=[0.0, 0.3, 0.6, 0.9, 1.2], refused_at=1.5,
                              current_per_minute=200.0)
    estimate.per_minute     # 90.0: half of 200/min less 10%
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EVIDENCE_WINDOWS_SECONDS",
    "LEARN_FACTOR",
    "Estimate",
    "estimate_limit",
    "learned_rate",
]

LEARN_FACTOR = 0.45  # half the rate that tripped, less a 10% margin
RUN_SENDS = 10  # the rate that tripped: the fastest run of 3 to 10 sends before the refusal
MIN_RUN_SENDS = 3
MIN_FRACTION = 0.05  # never below 5% of the configured rate
EVIDENCE_WINDOWS_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class Estimate:
    """A learned ceiling and the evidence it came from (for ``delivery status``)."""

    per_minute: float
    tripped_per_minute: float  # the rate the account was sending at when refused
    counts: dict[int, int]  # accepted sends within each trailing window (seconds)

    @property
    def evidence(self) -> str:
        windows = ", ".join(f"{n} in {w}s" for w, n in self.counts.items() if n)
        return (
            f"refused at {self.tripped_per_minute:.1f}/min "
            f"(accepted before it: {windows or 'none in 10 min'}); "
            f"ceiling {self.per_minute:.1f}/min"
        )


def estimate_limit(
    *,
    sends: Sequence[float],
    refused_at: float,
    current_per_minute: float,
    configured_per_minute: float | None = None,
    previous_per_minute: float | None = None,
) -> Estimate:
    """The ceiling to learn from a refusal at ``refused_at``.

    ``sends``: times (seconds, any epoch) of the account's accepted sends before the
    refusal, oldest first. ``current_per_minute``: the rate the gate was granting
    (configured or learned); it stands in for the evidence when there is too little
    (fewer than two sends). The result is never above ``previous_per_minute`` and
    never below 5% of ``configured_per_minute``.
    """
    before = [s for s in sends if s <= refused_at]
    counts = {w: sum(1 for s in before if s > refused_at - w) for w in EVIDENCE_WINDOWS_SECONDS}
    tripped = current_per_minute
    runs = [
        # k sends and the refused one: k intervals between the oldest and the refusal.
        60.0 * k / (refused_at - before[-k])
        for k in range(min(MIN_RUN_SENDS, len(before)), min(RUN_SENDS, len(before)) + 1)
        if k >= 2 and refused_at > before[-k]
    ]
    if runs:
        tripped = min(current_per_minute, max(runs))
    ceiling = tripped * LEARN_FACTOR
    if previous_per_minute is not None:
        ceiling = min(ceiling, previous_per_minute)
    floor = MIN_FRACTION * (configured_per_minute or current_per_minute)
    return Estimate(
        per_minute=round(max(ceiling, floor), 3),
        tripped_per_minute=round(tripped, 3),
        counts=counts,
    )


def learned_rate(
    per_minute: float | None,
    learned_at: dt.datetime | None,
    *,
    now: dt.datetime,
    memory_seconds: float,
) -> float | None:
    """The learned ceiling still in force, or None (never learned, or forgotten)."""
    if per_minute is None or learned_at is None:
        return None
    if (now - learned_at).total_seconds() >= memory_seconds:
        return None
    return per_minute
