"""Recording one attempt's outcome: attempt row, chunk, message and account, in the
caller's transaction, through the ledger's verbs.

A message that became final while the call was in flight (its deadline passed
and a duplicate task killed it) keeps its final state: the attempt and the chunk
record what really happened, nothing else moves, so no chat is left with an open
message that has nothing to send.

Example::

    with session_scope(engine) as db:
        applied = apply_outcome(db, job=job, result=result, decision=decision,
                                wait_seconds=None, gap_seconds=1.5, grace_seconds=120,
                                now=utcnow())
    publish_all(publisher, applied.armed)     # after the commit
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.ledger import accounts, attempts, outbox
from delivery.ledger.attempts import AttemptResult
from delivery.ledger.context_tokens import mark_stale
from delivery.ledger.outbox import Armed
from delivery.ledger.states import ParkReason
from delivery.pipeline.job import Job
from delivery.policy.outcomes import Decision, Step

__all__ = ["Applied", "apply_outcome"]

log = logging.getLogger(__name__)

# An accepted send proves the session; noting it once a minute is enough.
_VALIDATED_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Applied:
    """What the caller does after the commit."""

    armed: list[Armed] = field(default_factory=list)  # publish these
    wait_seconds: float | None = None  # the live task comes back after this
    message_final: bool = False  # wake the chat's next message
    was_final_already: bool = False  # the message died while the call was in flight
    delivered_after_all: bool = False  # ... but this was its last unsent chunk
    parked: bool = False  # the head waits for the session, holding no task
    released: bool = False  # the chunk is no longer this task's (final, or a newer task's)
    session_healed: bool = False  # the account had been expired: wake its parked heads
    session_newly_expired: bool = False


def apply_outcome(
    db: Session,
    *,
    job: Job,
    result: AttemptResult,
    decision: Decision,
    wait_seconds: float | None,
    gap_seconds: float,
    grace_seconds: float,
    now: dt.datetime,
) -> Applied:
    """Move attempt, chunk, message and account as ``decision`` says. Does not commit."""
    attempts.record(db, job.attempt_id, result)
    step = decision.step
    if step in (Step.SENT, Step.DELIVERED):
        accepted = outbox.accept(
            db,
            chunk_id=job.chunk_id,
            message_id=job.message_id,
            outcome=result.outcome,
            now=now,
            gap_seconds=gap_seconds,
            grace_seconds=grace_seconds,
        )
        healed = accounts.mark_session_ok(
            db,
            job.account_id,
            now=now,
            token_version=job.token_version,
            refresh_seconds=_VALIDATED_REFRESH_SECONDS,
        )
        return Applied(
            armed=accepted.armed,
            message_final=accepted.message_final,
            was_final_already=accepted.was_final_already,
            delivered_after_all=accepted.delivered_after_all,
            session_healed=healed,
        )
    outbox.record_outcome(db, job.chunk_id, outcome=result.outcome)
    if step == Step.DEAD:
        assert decision.dead_reason is not None
        unsent = outbox.kill(
            db, job.message_id, reason=decision.dead_reason, now=now, failed_chunk_id=job.chunk_id
        )
        if unsent is None:
            return Applied(was_final_already=True)
        return Applied(message_final=True)
    if decision.drop_context_token and job.context_token is not None:
        mark_stale(db, account_id=job.account_id, peer_id=job.to_user_id, token=job.context_token)
    if decision.expire_session:
        expired, first = accounts.mark_session_expired(
            db, job.account_id, token_version=job.token_version, reason=result.reason, now=now
        )
        if expired:
            parked = outbox.park(
                db, job.chunk_id, generation=job.generation, reason=ParkReason.SESSION
            )
            return Applied(parked=parked, released=not parked, session_newly_expired=first)
        # The token was rotated while the call was in flight: try again with the new one.
    assert wait_seconds is not None
    waits = outbox.postpone(
        db,
        job.chunk_id,
        generation=job.generation,
        until=now + dt.timedelta(seconds=wait_seconds),
        now=now,
        grace_seconds=grace_seconds,
        spend_failure=decision.spend_failure,
    )
    return Applied(released=not waits, wait_seconds=wait_seconds)
