"""Recording one attempt's outcome: attempt row, chunk, message, account and reader,
in the caller's transaction, through the ledger's verbs.

A message that became final while the call was in flight (its deadline passed
and a duplicate task killed it) keeps its final state: the attempt and the chunk
record what really happened, nothing else moves, so no chat is left with an open
message that has nothing to send.

A refusal judged this reader's parks the chat on its reader (until they write,
or the hold limit); a suspect is parked the same way with a recheck. Chats held
on an earlier refusal that this attempt decided are settled here too: confirmed
as their readers', or released (the account was rate limited: they go again
after the cooldown).

Example::

    with session_scope(engine) as db:
        applied = apply_outcome(db, job=job, judged=judged, decision=decision,
                                plan=plan, now=utcnow())
    publish_all(publisher, applied.armed)     # after the commit
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.ledger import accounts, attempts, outbox, readers
from delivery.ledger.outbox import Armed
from delivery.ledger.states import AttemptOutcome, ParkReason, SessionState
from delivery.pipeline.job import Job
from delivery.pipeline.readers import Judged
from delivery.policy.outcomes import Decision, Step
from delivery.policy.readers import Refusal
from delivery.ratelimit.learning import Estimate

__all__ = ["Applied", "Plan", "apply_outcome"]

log = logging.getLogger(__name__)

# An accepted send proves the session; noting it once a minute is enough.
_VALIDATED_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Plan:
    """The times an outcome needs, worked out by the pipeline (seconds)."""

    wait_seconds: float | None  # a waiting chunk's countdown
    gap_seconds: float  # before the message's next chunk
    hold_until: dt.datetime  # a chat waiting for its reader is dead after this
    recheck_seconds: float  # a suspect chat is looked at again after this
    count_reader_sends: bool  # reader limits are on: count this send of the budget
    learned: Estimate | None = None  # a rate limit learned from this refusal: keep it
    pace_memory_seconds: float = 0.0  # ... a lower one learned less than this ago stays


@dataclass(frozen=True)
class Applied:
    """What the caller does after the commit."""

    armed: list[Armed] = field(default_factory=list)  # publish these
    next_parts: list[Armed] = field(default_factory=list)  # ... of them, the message's next
    wait_seconds: float | None = None  # the live task comes back after this
    message_final: bool = False  # wake the chat's next message
    was_final_already: bool = False  # the message died while the call was in flight
    delivered_after_all: bool = False  # ... but this was its last unsent chunk
    parked: ParkReason | None = None  # the head waits for this, holding no task
    released: bool = False  # the chunk is no longer this task's (final, or a newer task's)
    session_healed: bool = False  # the account had been expired: wake its parked heads
    session_newly_expired: bool = False


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
    unparked = _settle(db, job, judged, plan=plan, now=now)
    step = decision.step
    if step in (Step.SENT, Step.DELIVERED):
        accepted = outbox.accept(
            db,
            chunk_id=job.chunk_id,
            message_id=job.message_id,
            seq=job.seq,
            chunk_count=job.chunk_count,
            sending=job.message_sending,
            outcome=result.outcome,
            now=now,
            gap_seconds=plan.gap_seconds,
        )
        if plan.count_reader_sends:
            readers.count_send(db, account_id=job.account_id, peer_id=job.to_user_id, now=now)
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
            next_parts=[] if accepted.message_final else accepted.armed,
            message_final=accepted.message_final,
            was_final_already=accepted.was_final_already,
            delivered_after_all=accepted.delivered_after_all,
            session_healed=healed,
        )
    outbox.record_outcome(db, job.chunk_id, outcome=result.outcome)
    if plan.learned is not None:
        accounts.learn_rate(
            db,
            job.account_id,
            per_minute=plan.learned.per_minute,
            evidence=plan.learned.evidence,
            now=now,
            memory_seconds=plan.pace_memory_seconds,
        )
    if step == Step.DEAD:
        assert decision.dead_reason is not None
        unsent = outbox.kill(
            db, job.message_id, reason=decision.dead_reason, now=now, failed_chunk_id=job.chunk_id
        )
        if unsent is None:
            return Applied(armed=unparked, was_final_already=True)
        return Applied(armed=unparked, message_final=True)
    if decision.drop_context_token and job.context_token is not None:
        readers.mark_context_stale(
            db, account_id=job.account_id, peer_id=job.to_user_id, token=job.context_token, now=now
        )
    if step == Step.AWAIT_READER:
        return _await_reader(db, job, judged, plan=plan, now=now, unparked=unparked)
    if decision.expire_session:
        expired, first = accounts.mark_session_expired(
            db, job.account_id, token_version=job.token_version, reason=result.reason, now=now
        )
        if expired:
            parked = outbox.park(
                db,
                job.chunk_id,
                generation=job.generation,
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
        generation=job.generation,
        until=now + dt.timedelta(seconds=plan.wait_seconds),
        spend_failure=decision.spend_failure,
    )
    return Applied(armed=unparked, released=not waits, wait_seconds=plan.wait_seconds)


def _await_reader(
    db: Session, job: Job, judged: Judged, *, plan: Plan, now: dt.datetime, unparked: list[Armed]
) -> Applied:
    """Park the chat on its reader: until they write (or the hold limit); a suspect
    is looked at again after the recheck too."""
    suspect = judged.verdict == Refusal.SUSPECT
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
        db, job.chunk_id, generation=job.generation, reason=ParkReason.READER, until=until
    )
    return Applied(
        armed=unparked, parked=ParkReason.READER if parked else None, released=not parked
    )


def _settle(db: Session, job: Job, judged: Judged, *, plan: Plan, now: dt.datetime) -> list[Armed]:
    """Chats held on earlier bare refusals that this attempt decided. Returns the
    released ones, armed to go once the account's wait is over."""
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
    if not judged.released:
        return []
    readers.reopen_suspected(db, account_id=job.account_id, peer_ids=judged.released.keys())
    attempts.reclassify(
        db,
        [s.attempt_id for s in judged.released.values()],
        outcome=AttemptOutcome.RATE_LIMITED,
        note="another reader was refused too: the account's rate limit",
    )
    due = now + dt.timedelta(seconds=plan.wait_seconds or 0.0)
    log.info(
        "account %s: %d held chat(s) go again after the cooldown (it was a rate limit)",
        job.account_id,
        len(judged.released),
    )
    return outbox.arm(
        db,
        [s.chunk_id for s in judged.released.values()],
        now=now,
        due_at=due,
    )
