"""The pipeline's side of readers: their state, their hold, the notice, the verdict.

The rules are pure (:mod:`delivery.policy.reader_rules`); this applies them to what a
task read from the ledger and to the evidence the account's gate and probe hold
in Redis.

Example::

    view = ReaderView.of(snapshot, settings=settings, now=utcnow())
    if view.waiting:
        ...park the chat on its reader until view.hold_until(...)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from delivery.ledger.attempts import AttemptResult
from delivery.ledger.states import AttemptOutcome, ClosedReason, ReaderState
from delivery.pipeline.job import Job
from delivery.policy.reader_rules import (
    Refusal,
    judge_refusal,
    notice_for,
    reader_state,
    sends_left,
)
from delivery.ratelimit.gate import AccountGate
from delivery.ratelimit.suspects import RefusalProbe, Suspect
from delivery.settings import Settings

__all__ = ["Judged", "ReaderFacts", "ReaderView", "judge", "text_with_notice"]

log = logging.getLogger(__name__)

NOTICE_SEPARATOR = "\n\n"


class ReaderFacts(Protocol):
    """What a snapshot or a claim read of the reader and the message."""

    @property
    def reader_last_inbound_at(self) -> dt.datetime | None: ...
    @property
    def reader_sends_since_inbound(self) -> int: ...
    @property
    def reader_closed_reason(self) -> str | None: ...
    @property
    def reader_dropping_since(self) -> dt.datetime | None: ...
    @property
    def created_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class ReaderView:
    """A reader's state as the pipeline sees it; ``state`` None: limits are off."""

    state: ReaderState | None
    left: int | None  # sends left of the budget; None when not known
    hold_until: dt.datetime  # a message waiting for this reader is dead after this

    @classmethod
    def of(cls, facts: ReaderFacts, *, settings: Settings, now: dt.datetime) -> ReaderView:
        # Held for DELIVERY_READER_WAIT_SECONDS from the message, or from the reader's
        # last message if that came later (a long message that waits a second time).
        since = max(facts.created_at, facts.reader_last_inbound_at or facts.created_at)
        hold = since + dt.timedelta(seconds=settings.reader_wait_seconds)
        if not settings.reader_limits:
            return cls(None, None, hold)
        state = reader_state(
            last_inbound_at=facts.reader_last_inbound_at,
            sends_since_inbound=facts.reader_sends_since_inbound,
            closed_reason=facts.reader_closed_reason,
            now=now,
            window_seconds=settings.reader_window_seconds,
            budget=settings.reader_budget,
            dropping_since=facts.reader_dropping_since,
        )
        left = sends_left(
            last_inbound_at=facts.reader_last_inbound_at,
            sends_since_inbound=facts.reader_sends_since_inbound,
            budget=settings.reader_budget,
        )
        return cls(state, left, hold)

    @property
    def waiting(self) -> bool:
        """The platform would refuse a send, or drop it silently: the chat waits for its
        reader to write."""
        return self.state in (
            ReaderState.WINDOW_CLOSED,
            ReaderState.BUDGET_SPENT,
            ReaderState.DROPPING,
        )


def text_with_notice(text: str, *, view: ReaderView, parts_after: int, template: str) -> str:
    """What the chunk sends: with the notice when it is the last part the reader's
    budget allows and more follow, without it otherwise (a notice added on an
    earlier try is taken off again when the reader wrote meanwhile)."""
    plain = text
    if parts_after >= 1:
        mark = NOTICE_SEPARATOR + notice_for(template, remaining=parts_after)
        plain = text.removesuffix(mark)
        if view.left == 1:
            return plain + mark
    return plain


@dataclass(frozen=True)
class Judged:
    """A result after the verdict on a bare refusal, and what the verdict settled.

    ``confirmed``: held chats now known their readers' (a send was accepted after
    them). ``released``: held chats now known the account's limit; they stay held
    until the account's next accepted send. ``go_again``: chats released earlier,
    free to go now that a send was accepted. ``streak_began``: when the first
    refusal of this rate limit came (an earlier suspect's), s since the epoch."""

    result: AttemptResult
    verdict: Refusal | None = None
    confirmed: dict[str, Suspect] = field(default_factory=dict)
    released: dict[str, Suspect] = field(default_factory=dict)
    go_again: dict[str, Suspect] = field(default_factory=dict)
    streak_began: float | None = None
    tentative: bool = False  # a rate limit judged from unknown readers alone: teach later,
    # and hold this chat as well as the other suspects (it goes again after an accepted send)
    released_reader: bool = False  # the reader was a released suspect (see readers policy)


def judge(
    job: Job,
    result: AttemptResult,
    *,
    view: ReaderView,
    gate: AccountGate,
    probe: RefusalProbe,
    probe_pause_seconds: float,
    suspects_held: bool,
) -> Judged:
    """Decide a bare refusal (see :func:`~delivery.policy.reader_rules.judge_refusal`), and
    settle the suspects held before when this send decides them. ``suspects_held``:
    the gate said readers are held on a bare refusal (else nothing is looked up).

    Raises:
        LimiterUnavailable: Redis is unreachable (the caller waits; nothing moved).
    """
    outcome = result.outcome
    if view.state is None:  # no reader limits: a bare -2 is the account's limit, as ever
        if outcome == AttemptOutcome.REFUSED:
            return Judged(dataclasses.replace(result, outcome=AttemptOutcome.RATE_LIMITED))
        return Judged(result)
    released_reader = job.reader_closed_reason == ClosedReason.RELEASED
    if outcome in (AttemptOutcome.ACCEPTED, AttemptOutcome.UNCONFIRMED):
        if not suspects_held:
            return Judged(result, released_reader=released_reader)
        held, released = probe.settle(job.account_id)
        return Judged(result, confirmed=held, go_again=released, released_reader=released_reader)
    if outcome == AttemptOutcome.RATE_LIMITED:
        held = probe.release(job.account_id) if suspects_held else {}
        return Judged(result, released=held, streak_began=_first(held))
    if outcome != AttemptOutcome.REFUSED:
        return Judged(result)
    others = probe.held_others(job.account_id, job.to_user_id) if suspects_held else {}
    released_reader = job.reader_closed_reason == ClosedReason.RELEASED
    streak = job.cooldown_strikes > 0 or gate.state(job.account_id).strikes > 0
    verdict = judge_refusal(
        reader=view.state,
        rate_limit_streak=streak,
        other_suspects=len(others),
        released=released_reader,
    )
    if verdict == Refusal.READER:
        why = (
            "refused again right after the account proved it can send: this reader's window"
            if released_reader and view.state == ReaderState.UNKNOWN
            else "this reader's window or budget"
        )
        judged = _as(result, AttemptOutcome.READER_REFUSED, why)
        return Judged(judged, verdict, released_reader=released_reader)
    if verdict == Refusal.RATE_LIMIT:
        judged = _as(result, AttemptOutcome.RATE_LIMITED, "the account's rate limit")
        held = probe.release(job.account_id) if others else {}
        tentative = bool(others) and not streak and view.state == ReaderState.UNKNOWN
        if tentative:
            # this reader is a suspect as much as the others: held with them
            probe.suspect(
                job.account_id,
                job.to_user_id,
                Suspect(job.chunk_id, job.attempt_id, at=time.time(), released=True),
            )
        return Judged(
            judged, verdict, released=held, streak_began=_first(held), tentative=tentative
        )
    probe.suspect(
        job.account_id,
        job.to_user_id,
        Suspect(job.chunk_id, job.attempt_id, at=time.time()),
    )
    if probe_pause_seconds > 0:
        gate.cool_down(job.account_id, probe_pause_seconds)
    log.info(
        "%s: a bare refusal from %s, who never wrote: held while the account's next send "
        "(to another reader) tells a closed window from a rate limit",
        job.label,
        job.to_user_id,
    )
    return Judged(result, verdict)


def _first(suspects: dict[str, Suspect]) -> float | None:
    return min((s.at for s in suspects.values() if s.at), default=None)


def _as(result: AttemptResult, outcome: AttemptOutcome, why: str) -> AttemptResult:
    return dataclasses.replace(result, outcome=outcome, reason=f"{result.reason}: {why}")
