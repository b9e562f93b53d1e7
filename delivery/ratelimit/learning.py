"""Learning an account's rate limit from a refusal, and unlearning it (pure functions).

The platform does not publish its limit, so the operator's configured rate is a
guess. A refusal by the account's own limit (not a reader's window or budget:
those say nothing about the account) teaches only what it proves:

- **The evidence is the account's own accepted sends before the first refusal of
  the streak** (:func:`lesson`): counted in trailing windows of 1 s to 10 minutes
  ending at that refusal, the fastest of those windows' rates (with at least three
  sends in it) is an upper bound of the limit: a sliding window of N sends in W
  seconds refused the (N+1)th, so the W-second window held N, and a window's rate is
  the limit's for the platform's own W. The limit is somewhere at or below it, and
  one refusal cannot say where, so the ceiling learned is half of it, less a margin
  (:data:`LEARN_FACTOR`): a guess up to twice the limit costs one lockout and then
  drains at 90% of the limit; further off, one more lockout per halving. Windows of
  a second or more keep a few sends that the network bunched up from reading as a
  rate the account never kept.
- **No lesson without evidence.** No accepted send in the 10 minutes before the
  refusal (a lockout this pipeline did not cause, a restart), fewer than three, or
  sends far apart (the last three spread over more than ten times what the pace in
  force would take: an account sending slowly proves nothing of its limit, and 3
  sends 3 minutes apart would teach 0.4 a minute) teach nothing. Nor does a refusal
  of a cooldown's probe: the lockout was known already.
- **A ceiling can rise again on evidence** (:func:`raised`): after a run of sends at
  its pace without a refusal it rises by a quarter, up to the configured rate (then
  it is forgotten); the rate of that run is *proven*, and a later refusal above it
  falls back to it, not below. A ceiling's memory counts from when it was learned:
  a refusal that teaches nothing lower does not renew it.

Example::

    found = lesson(sends=[0.0, 0.3, 0.6, 0.9, 1.2], refused_at=1.5,
                   pace_per_minute=200.0, configured_per_minute=200.0)
    found.per_minute     # 90.0: half of 200/min less 10%
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "EVIDENCE_WINDOWS_SECONDS",
    "LEARN_FACTOR",
    "Lesson",
    "learned_rate",
    "lesson",
    "raised",
]

LEARN_FACTOR = 0.45  # half the rate that tripped, less a 10% margin
MIN_RUN_SENDS = 3  # a window's rate counts only with this many accepted sends in it
SLOW_FACTOR = 10  # the last sends spread over more than this many times their pace: idle
MIN_FRACTION = 0.05  # never below 5% of the configured rate
EVIDENCE_HORIZON_SECONDS = 600
EVIDENCE_WINDOWS_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class Lesson:
    """What one refusal taught: a ceiling (``per_minute``) or nothing (None), and
    ``note``, the evidence or why there is none (``delivery status`` shows it)."""

    per_minute: float | None
    note: str
    tripped_per_minute: float | None = None  # how fast the account sent before the refusal
    counts: dict[int, int] = field(default_factory=dict)  # accepted sends per trailing window


def _windows(counts: dict[int, int]) -> str:
    return ", ".join(f"{n} in {w}s" for w, n in counts.items() if n) or "none in 10 min"


def lesson(
    *,
    sends: Sequence[float],
    refused_at: float,
    pace_per_minute: float,
    configured_per_minute: float,
    previous_per_minute: float | None = None,
    proven_per_minute: float | None = None,
    probe: bool = False,
) -> Lesson:
    """What the account learns from a refusal at ``refused_at`` (the first of its streak).

    ``sends``: times (seconds, any epoch) of the account's accepted sends, oldest
    first. ``pace_per_minute``: the rate the gate was granting (configured or
    learned). ``previous_per_minute``: a ceiling in force (the result never rises
    above it); ``proven_per_minute``: a rate proven by a long run (the result never
    falls below it unless it tripped too). ``probe``: the refusal answered a
    cooldown's probe. The ceiling is never below 5% of ``configured_per_minute``.
    """
    if probe:
        return Lesson(None, "a refused probe after a cooldown teaches nothing new")
    before = [s for s in sends if refused_at - EVIDENCE_HORIZON_SECONDS < s <= refused_at]
    counts = {w: sum(1 for s in before if s > refused_at - w) for w in EVIDENCE_WINDOWS_SECONDS}
    if not before:
        return Lesson(
            None,
            "refused with no accepted send in the 10 minutes before it (a lockout this "
            "pipeline did not cause, or a restart): nothing learned",
            counts=counts,
        )
    if len(before) < MIN_RUN_SENDS:
        return Lesson(
            None,
            f"refused after only {len(before)} accepted send(s) in 10 minutes: too few to "
            "tell a rate; nothing learned",
            counts=counts,
        )
    rates = [60.0 * n / w for w, n in counts.items() if n >= MIN_RUN_SENDS]
    tripped = min(pace_per_minute, max(rates)) if rates else pace_per_minute
    seen = f"refused at {tripped:.1f}/min (accepted before it: {_windows(counts)})"
    last = before[-MIN_RUN_SENDS:]
    spread = refused_at - last[0]
    if spread > SLOW_FACTOR * MIN_RUN_SENDS * 60.0 / pace_per_minute:
        return Lesson(
            None,
            f"{seen}; its last {MIN_RUN_SENDS} sends spread over {spread:.0f} s, far slower "
            f"than the pace in force ({pace_per_minute:.1f}/min): sending slowly proves "
            "nothing of the limit; nothing learned",
            round(tripped, 3),
            counts,
        )
    ceiling = tripped * LEARN_FACTOR
    if proven_per_minute is not None and proven_per_minute < tripped:
        ceiling = max(ceiling, proven_per_minute)
    ceiling = max(ceiling, MIN_FRACTION * configured_per_minute)
    if previous_per_minute is not None and ceiling >= previous_per_minute:
        return Lesson(
            None,
            f"{seen}: the ceiling in force ({previous_per_minute:.1f}/min) is lower already; kept",
            round(tripped, 3),
            counts,
        )
    ceiling = round(ceiling, 3)
    return Lesson(ceiling, f"{seen}; ceiling {ceiling:.1f}/min", round(tripped, 3), counts)


def raised(*, per_minute: float, configured_per_minute: float, factor: float) -> float | None:
    """The ceiling after a long run at it without a refusal: ``factor`` times higher,
    or None when that reaches the configured rate (the ceiling is forgotten)."""
    higher = per_minute * factor
    if higher >= configured_per_minute:
        return None
    return round(higher, 3)


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
