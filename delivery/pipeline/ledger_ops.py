"""The pipeline's writes to the ledger. Each takes a ``Session`` and never commits:
the caller's transaction moves attempt, chunk, message and account together.

Example::

    with session_scope(engine) as session:
        attempt = start_attempt(session, chunk, context_token=None, host="worker-1", now=utcnow())
    ...call the platform...
    with session_scope(engine) as session:
        record_result(session, session.get(Attempt, attempt.id), result)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.ilink.classify import Answer
from delivery.ledger.context_tokens import fingerprint
from delivery.ledger.models import Account, Attempt, Chunk, Message
from delivery.ledger.states import AttemptOutcome, ChunkStatus, MessageStatus, SessionState

__all__ = [
    "AttemptResult",
    "abandon_message",
    "attempt_in_flight",
    "close_lost_attempts",
    "mark_session_expired",
    "mark_session_ok",
    "postpone",
    "record_result",
    "start_attempt",
]

_ERRMSG_CHARS = 500  # the platform's errmsg is short; a pathological one is cut
LOST_DETAIL = "the worker stopped before the answer was recorded; it may have arrived"


@dataclass(frozen=True)
class AttemptResult:
    """What came back from one call: the raw answer (if any) and its class."""

    outcome: AttemptOutcome
    reason: str
    answer: Answer | None
    duration_ms: int


def attempt_in_flight(session: Session, chunk_id: int, *, since: dt.datetime) -> bool:
    """Whether an attempt at the chunk started after ``since`` and has no answer yet."""
    found = session.scalar(
        select(Attempt.id)
        .where(
            Attempt.chunk_id == chunk_id,
            Attempt.outcome == AttemptOutcome.IN_FLIGHT,
            Attempt.started_at > since,
        )
        .limit(1)
    )
    return found is not None


def close_lost_attempts(session: Session, chunk_id: int) -> int:
    """Attempts still ``in_flight`` belong to a worker that died mid-call: mark them lost."""
    result = session.execute(
        update(Attempt)
        .where(Attempt.chunk_id == chunk_id, Attempt.outcome == AttemptOutcome.IN_FLIGHT)
        .values(outcome=AttemptOutcome.LOST, detail=LOST_DETAIL)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def start_attempt(
    session: Session, chunk: Chunk, *, context_token: str | None, host: str, now: dt.datetime
) -> Attempt:
    """Write the attempt row before the call, so a crash mid-call leaves a trace."""
    chunk.attempt_count += 1
    attempt = Attempt(
        chunk_id=chunk.id,
        attempt_no=chunk.attempt_count,
        started_at=now,
        outcome=AttemptOutcome.IN_FLIGHT,
        used_context_token=context_token is not None,
        context_token_fingerprint=fingerprint(context_token) if context_token else None,
        worker_host=host,
    )
    session.add(attempt)
    session.flush()
    return attempt


def record_result(session: Session, attempt: Attempt, result: AttemptResult) -> None:
    """Complete the attempt row with the raw answer and its class."""
    attempt.outcome = result.outcome
    attempt.duration_ms = result.duration_ms
    answer = result.answer
    if answer is not None:
        attempt.http_status = answer.http_status
        attempt.ret = answer.ret
        attempt.errcode = answer.errcode
        attempt.errmsg = answer.errmsg[:_ERRMSG_CHARS] if answer.errmsg else None
    if result.outcome != AttemptOutcome.ACCEPTED:
        attempt.detail = (
            result.reason
            if answer is None or answer.json_ok
            else (f"{result.reason}: {answer.excerpt!r}")
        )


def postpone(session: Session, chunk_id: int, *, until: dt.datetime) -> None:
    """Push the chunk's next attempt to ``until``, so the reconciler knows it is waiting."""
    session.execute(update(Chunk).where(Chunk.id == chunk_id).values(next_attempt_at=until))


def abandon_message(
    session: Session,
    message: Message,
    *,
    reason: str,
    now: dt.datetime,
    failed_chunk_id: int | None = None,
) -> int:
    """Make the message dead: the failing chunk ``failed``, every other pending one
    ``unsent``. Returns how many chunks were left unsent."""
    if failed_chunk_id is not None:
        session.execute(
            update(Chunk).where(Chunk.id == failed_chunk_id).values(status=ChunkStatus.FAILED)
        )
    unsent = session.execute(
        update(Chunk)
        .where(Chunk.message_id == message.id, Chunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.UNSENT)
    )
    message.status = MessageStatus.DEAD
    message.dead_at = now
    message.dead_reason = reason
    return int(getattr(unsent, "rowcount", 0) or 0)


def mark_session_expired(
    session: Session, account: Account, *, token_version: int, reason: str, now: dt.datetime
) -> bool:
    """Mark the account expired, unless its token was rotated since the attempt began.

    Returns True when this call changed the state (the first sign of expiry).
    """
    if account.token_version != token_version:
        return False
    changed = account.session_state != SessionState.EXPIRED
    account.session_state = SessionState.EXPIRED
    if account.session_expired_at is None:
        account.session_expired_at = now
    account.last_error = reason
    return changed


def mark_session_ok(
    session: Session, account: Account, *, now: dt.datetime, refresh_seconds: float = 0.0
) -> bool:
    """An accepted call proves the session. Returns True when it was not known good.

    An account already good and validated less than ``refresh_seconds`` ago is
    left untouched: every accepted send need not rewrite the account row.
    """
    changed = account.session_state != SessionState.OK
    fresh = account.last_validated_at is not None and (
        (now - account.last_validated_at).total_seconds() < refresh_seconds
    )
    if not changed and fresh:
        return False
    account.session_state = SessionState.OK
    account.session_expired_at = None
    account.last_validated_at = now
    account.last_error = None
    return changed
