"""Recording one attempt's outcome: attempt row, chunk, message and account, in the
caller's transaction.

The message and account rows are locked first. A message that became final
while the call was in flight (its deadline passed and a duplicate task killed
it) keeps its final state: the attempt and the chunk record what really
happened, nothing else moves, so no chat is left with an open message that has
nothing to send.

Example::

    with session_scope(engine) as session:
        applied = apply_outcome(session, job=job, result=result, decision=decision,
                                wait_seconds=None, settings=settings, now=utcnow())
    if applied.next_chunk_id is not None:
        publish_send(applied.next_chunk_id, countdown_seconds=applied.gap_seconds)
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.ledger.context_tokens import mark_stale
from delivery.ledger.models import Account, Attempt, Chunk, Message
from delivery.ledger.states import OPEN_MESSAGE_STATES, ChunkStatus, MessageStatus
from delivery.pipeline import ledger_ops as ops
from delivery.policy.outcomes import Decision, Step
from delivery.policy.timing import chunk_gap_seconds
from delivery.settings import Settings

__all__ = ["Applied", "Job", "apply_outcome"]

log = logging.getLogger(__name__)

# An accepted send proves the session; noting it once a minute is enough.
_VALIDATED_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Job:
    """Everything one call needs, read in the transaction that wrote the attempt row."""

    attempt_id: int
    attempt_no: int
    chunk_id: int
    seq: int
    chunk_count: int
    failures: int
    message_id: int
    account_id: str
    to_user_id: str
    base_url: str
    token: str = field(repr=False)
    token_version: int
    client_id: str
    text: str = field(repr=False)
    context_token: str | None = field(repr=False)

    @property
    def label(self) -> str:
        return f"message {self.message_id} chunk {self.seq}/{self.chunk_count}"


@dataclass(frozen=True)
class Applied:
    """What the caller does after the commit."""

    next_chunk_id: int | None = None  # publish it after ``gap_seconds``
    gap_seconds: float = 0.0
    message_final: bool = False  # wake the chat's next message
    was_final_already: bool = False  # the message died while the call was in flight


def apply_outcome(
    session: Session,
    *,
    job: Job,
    result: ops.AttemptResult,
    decision: Decision,
    wait_seconds: float | None,
    settings: Settings,
    now: dt.datetime,
) -> Applied:
    """Move attempt, chunk, message and account as ``decision`` says. Does not commit."""
    message = session.get(Message, job.message_id, with_for_update=True)
    account = session.get(Account, job.account_id, with_for_update=True)
    attempt = session.get(Attempt, job.attempt_id)
    chunk = session.get(Chunk, job.chunk_id)
    assert message is not None
    assert account is not None
    assert attempt is not None
    assert chunk is not None
    ops.record_result(session, attempt, result)
    chunk.last_outcome = result.outcome
    step = decision.step
    accepted = step in (Step.SENT, Step.DELIVERED)
    if accepted:
        chunk.status = ChunkStatus.SENT
        chunk.sent_at = now
        if ops.mark_session_ok(
            session, account, now=now, refresh_seconds=_VALIDATED_REFRESH_SECONDS
        ):
            log.info("account %s: session good (a send was accepted)", account.id)
    if message.status not in OPEN_MESSAGE_STATES:
        return Applied(was_final_already=True)
    if decision.spend_failure:
        chunk.failure_count += 1
    if step == Step.SENT:
        message.status = MessageStatus.SENDING
        gap = chunk_gap_seconds(
            n_chunks=job.chunk_count,
            gap_seconds=settings.chunk_gap_seconds,
            base_seconds=settings.chunk_gap_base_seconds,
            per_chunk_seconds=settings.chunk_gap_per_chunk_seconds,
        )
        next_id = _schedule_next(session, job, at=now + dt.timedelta(seconds=gap))
        return Applied(next_chunk_id=next_id, gap_seconds=gap)
    if step == Step.DELIVERED:
        message.status = MessageStatus.DELIVERED
        message.delivered_at = now
        return Applied(message_final=True)
    if step == Step.DEAD:
        assert decision.dead_reason is not None
        ops.abandon_message(
            session, message, reason=decision.dead_reason, now=now, failed_chunk_id=chunk.id
        )
        return Applied(message_final=True)
    assert wait_seconds is not None
    chunk.next_attempt_at = now + dt.timedelta(seconds=wait_seconds)
    if decision.expire_session and ops.mark_session_expired(
        session, account, token_version=job.token_version, reason=result.reason, now=now
    ):
        log.error(
            "account %s: session expired (%s); its sends wait, spending no budget, "
            "until a good token is stored (delivery account add %s --token ...)",
            account.id,
            result.reason,
            account.id,
        )
    if decision.drop_context_token and job.context_token is not None:
        mark_stale(
            session, account_id=job.account_id, peer_id=job.to_user_id, token=job.context_token
        )
    return Applied()


def _schedule_next(session: Session, job: Job, *, at: dt.datetime) -> int | None:
    """Set the not-before time of the message's next chunk; return its id."""
    chunk = session.scalars(
        select(Chunk).where(Chunk.message_id == job.message_id, Chunk.seq == job.seq + 1)
    ).one_or_none()
    if chunk is None or chunk.status != ChunkStatus.PENDING:
        return None
    chunk.next_attempt_at = at
    return chunk.id
