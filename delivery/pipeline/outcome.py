"""Recording one attempt's outcome: attempt row, chunk, message, account and reader,
in the caller's transaction, through the ledger's verbs.

An accepted chunk is marked sent in the statement that arms the message's next
chunk; the last one ends the message and arms its chat's next head, in the same
transaction; the caller offers what was armed to the account's line after the
commit. A message that became final while the call was in flight keeps its final
state: the attempt and the chunk record what really happened, nothing else moves.

An answer accepted without the ``message_id`` the account's answers carry is
*unconfirmed*: the chunk and the attempt say so, the message ends ``unconfirmed``
instead of ``delivered``, and the reader's run of such answers is counted (the
setting's worth in a row makes them *dropping*: their next messages wait).

A refusal judged this reader's parks the chat on its reader (until they write,
or the hold limit); a suspect is parked the same way with a recheck. Chats held
on an earlier refusal that this attempt decided are settled here too: confirmed
as their readers', released (the account was rate limited: they wait for its next
accepted send), or free to go again (a send was accepted after their release).

Example::

    with session_scope(engine) as db:
        applied = apply_outcome(db, job=job, judged=judged, decision=decision,
                                plan=plan, now=utcnow())
    ...offer applied.armed to the account's line, after the commit
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.ledger import accounts, attempts, outbox, readers
from delivery.ledger.outbox import Armed
from delivery.ledger.states import AttemptOutcome, ClosedReason, ParkReason, SessionState
from delivery.pipeline.job import Job
from delivery.pipeline.reader_verdicts import Judged
from delivery.policy.outcomes import Decision, Step
from delivery.policy.reader_rules import Refusal
from delivery.ratelimit.learning import Lesson

__all__ = ["Applied", "Plan", "apply_outcome"]

log = logging.getLogger(__name__)

# An accepted send proves the session; noting it once a minute is enough.
_VALIDATED_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Plan:
    """The times and facts an outcome needs, worked out by the pipeline (seconds)."""

    wait_seconds: float | None  # a waiting chunk's countdown
    gap_seconds: float  # before the message's next chunk
    hold_until: dt.datetime  # a chat waiting for its reader is dead after this
    recheck_seconds: float  # a suspect chat is looked at again after this
    count_reader_sends: bool  # reader limits are on: count this send of the budget
    drops_before_hold: int = 2  # unconfirmed sends in a row that hold a reader
    lesson: Lesson | None = None  # what this refusal taught of the limit (or why nothing)
    pace_memory_seconds: float = 0.0  # a lower ceiling learned less than this ago stays
    cooldown_until: dt.datetime | None = None  # a rate limit's cooldown, kept in the ledger
    strikes: int = 0  # ... the streak's cooldowns so far


@dataclass(frozen=True)
class Applied:
    """What the caller does after the commit."""

    armed: list[Armed] = field(default_factory=list)  # offer these to the account's line
    wait_seconds: float | None = None  # the chunk waits this long, in the line
    message_final: bool = False  # the message ended (its chat's next head is armed)
    final_status: str | None = None  # delivered or unconfirmed
    wake_chat: bool = False  # the message ended outside the accept path: wake the chat
    was_final_already: bool = False  # the message died while the call was in flight
    delivered_after_all: bool = False  # ... but this was its last unsent chunk
    parked: ParkReason | None = None  # the head waits for this, holding no task
    released: bool = False  # the chunk is no longer this task's (final, or a newer task's)
    session_healed: bool = False  # the account had been expired: wake its parked heads
    session_newly_expired: bool = False
    reader_newly_dropping: bool = False  # tell the operator, once


def apply_outcome(
    db: Session,
    *,
    job: Job,
    judged: Judged,
    decision: Decision,
    plan: Plan,
    now: dt.datetime,
) -> Applied:
    """Move attempt, chunk, message, account and readers as ``decision`` says.

    Does not commit.
    """
    result = judged.result
    attempts.record(db, job.attempt_id, result)
    unparked = _settle(db, job, judged, now=now)
    step = decision.step
    if step in (Step.SENT, Step.DELIVERED):
        return _accepted(db, job, judged, plan=plan, now=now, unparked=unparked)
    outbox.record_outcome(db, job.chunk_id, outcome=result.outcome, attempt_no=job.attempt_no)
    if plan.cooldown_until is not None:
        accounts.note_cooldown(db, job.account_id, until=plan.cooldown_until, strikes=plan.strikes)
    _note_lesson(db, job, plan, now=now)
    if step == Step.DEAD:
        assert decision.dead_reason is not None
        unsent = outbox.kill(
            db, job.message_id, reason=decision.dead_reason, now=now, failed_chunk_id=job.chunk_id
        )
        if unsent is None:
            return Applied(armed=unparked, was_final_already=True)
        return Applied(armed=unparked, message_final=True, wake_chat=True)
    if decision.drop_context_token and job.context_token is not None:
        readers.mark_context_stale(
            db, account_id=job.account_id, peer_id=job.to_user_id, token=job.context_token, now=now
        )
    if step == Step.AWAIT_READER or (step == Step.COOL_DOWN and judged.tentative):
        # (a rate limit judged from unknown readers holds this chat with the other suspects)
        return _await_reader(db, job, judged, plan=plan, now=now, unparked=unparked)
    if decision.expire_session:
        expired, first = accounts.mark_session_expired(
            db, job.account_id, token_version=job.token_version, reason=result.reason, now=now
        )
        if expired:
            parked = outbox.park(
                db,
                job.chunk_id,
                generation=job.task_generation,
                reason=ParkReason.SESSION,
                until=plan.hold_until,
            )
            return Applied(
                armed=unparked,
                parked=ParkReason.SESSION if parked else None,
                released=not parked,
                session_newly_expired=first,
            )
        # The token was rotated while the call was in flight: try again with the new one.
    assert plan.wait_seconds is not None
    waits = outbox.postpone(
        db,
        job.chunk_id,
        generation=job.task_generation,
        until=now + dt.timedelta(seconds=plan.wait_seconds),
        spend_failure=decision.spend_failure,
    )
    return Applied(armed=unparked, released=not waits, wait_seconds=plan.wait_seconds)


def _accepted(
    db: Session, job: Job, judged: Judged, *, plan: Plan, now: dt.datetime, unparked: list[Armed]
) -> Applied:
    result = judged.result
    accepted = outbox.accept(
        db,
        look=job,
        attempt_no=job.attempt_no,
        outcome=result.outcome,
        now=now,
        gap_seconds=plan.gap_seconds,
    )
    has_id = result.answer is not None and result.answer.message_id is not None
    confirmed: bool | None = True if has_id else (False if job.confirms_sends else None)
    count = plan.count_reader_sends and job.reader_last_inbound_at is not None
    newly_dropping = False
    released = job.reader_closed_reason == ClosedReason.RELEASED
    if count or confirmed is False or job.reader_unconfirmed_in_row > 0 or released:
        newly_dropping = readers.note_accepted(
            db,
            account_id=job.account_id,
            peer_id=job.to_user_id,
            now=now,
            count=count,
            confirmed=confirmed,
            drops_before_hold=plan.drops_before_hold,
        )
    if has_id and not job.confirms_sends:
        accounts.note_confirms_sends(db, job.account_id)
    if job.cooldown_strikes or job.cooldown_until is not None:
        accounts.end_cooldown(db, job.account_id)
    _note_lesson(db, job, plan, now=now)
    validated = job.session_validated_at
    known_good = (
        job.session_state == SessionState.OK
        and validated is not None
        and (now - validated).total_seconds() < _VALIDATED_REFRESH_SECONDS
    )
    healed = not known_good and accounts.mark_session_ok(
        db,
        job.account_id,
        now=now,
        token_version=job.token_version,
        refresh_seconds=_VALIDATED_REFRESH_SECONDS,
    )
    return Applied(
        armed=accepted.armed + unparked,
        message_final=accepted.message_final,
        final_status=accepted.final_status,
        wake_chat=accepted.message_final and accepted.final_status is None,
        was_final_already=accepted.was_final_already,
        delivered_after_all=accepted.delivered_after_all,
        session_healed=healed,
        reader_newly_dropping=newly_dropping,
    )


def _note_lesson(db: Session, job: Job, plan: Plan, *, now: dt.datetime) -> None:
    lesson = plan.lesson
    if lesson is None:
        return
    if lesson.per_minute is None:
        accounts.note_pace(db, job.account_id, note=lesson.note)
        return
    accounts.learn_rate(
        db,
        job.account_id,
        per_minute=lesson.per_minute,
        evidence=lesson.note,
        now=now,
        memory_seconds=plan.pace_memory_seconds,
    )


def _await_reader(
    db: Session, job: Job, judged: Judged, *, plan: Plan, now: dt.datetime, unparked: list[Armed]
) -> Applied:
    """Park the chat on its reader: until they write (or the hold limit); a suspect
    is looked at again after the recheck too."""
    suspect = judged.verdict == Refusal.SUSPECT or judged.tentative
    readers.close(
        db,
        account_id=job.account_id,
        peer_id=job.to_user_id,
        reason=readers.SUSPECTED if suspect else readers.REFUSED,
        now=now,
    )
    until = plan.hold_until
    if suspect:
        until = min(until, now + dt.timedelta(seconds=plan.recheck_seconds))
    parked = outbox.park(
        db, job.chunk_id, generation=job.task_generation, reason=ParkReason.READER, until=until
    )
    return Applied(
        armed=unparked, parked=ParkReason.READER if parked else None, released=not parked
    )


def _settle(db: Session, job: Job, judged: Judged, *, now: dt.datetime) -> list[Armed]:
    """Chats held on earlier bare refusals that this attempt decided. Returns the ones
    free to go again, armed."""
    if judged.confirmed:
        readers.confirm_suspected(db, account_id=job.account_id, peer_ids=judged.confirmed.keys())
        attempts.reclassify(
            db,
            [s.attempt_id for s in judged.confirmed.values()],
            outcome=AttemptOutcome.READER_REFUSED,
            note="a send to another reader was accepted after it: this reader's window",
        )
        log.info(
            "account %s: %d held chat(s) wait for their readers (another reader's send "
            "was accepted)",
            job.account_id,
            len(judged.confirmed),
        )
    if judged.released:
        attempts.reclassify(
            db,
            [s.attempt_id for s in judged.released.values()],
            outcome=AttemptOutcome.RATE_LIMITED,
            note="another reader was refused too: the account's rate limit",
        )
        log.info(
            "account %s: %d held chat(s) were the account's rate limit; they go again after "
            "its next accepted send",
            job.account_id,
            len(judged.released),
        )
    if not judged.go_again:
        return []
    readers.reopen_suspected(db, account_id=job.account_id, peer_ids=judged.go_again.keys())
    return outbox.arm(db, [s.chunk_id for s in judged.go_again.values()], now=now, due_at=now)
