"""Sending one chunk: the heart of the pipeline.

A send task calls :meth:`SendPipeline.process` with a chunk id and gets back a
:class:`StepResult`: done, or "retry in N seconds". The steps:

1. Read the ledger. A chunk that is no longer pending, or is not the head of its
   conversation (the first pending chunk of the oldest open message from this
   account to this peer), is left alone: whoever sends the head wakes it later.
2. Past its message's deadline: dead. Not yet due (chunk gap), or its account's
   session expired: wait, without calling the platform or spending budget.
3. Ask the account gate in Redis for the send lock and a rate slot. Cooling down,
   busy or paced: wait (a paced waiter holds a reserved slot).
4. Write the attempt row (``in_flight``) and commit; call the platform with the
   chunk's fixed ``client_id``; classify the answer.
5. In one transaction: complete the attempt row and move chunk, message and
   account as :func:`delivery.policy.outcomes.decide` says.
6. After the commit: publish the next chunk (after the gap) or wake the
   conversation's next message.

Example::

    result = pipeline.process(chunk_id)
    if result.retry_in_seconds is not None:
        raise task.retry(countdown=result.retry_in_seconds)
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from delivery.errors import LedgerError, LimiterUnavailable, TransportError
from delivery.ilink.classify import classify
from delivery.ledger.context_tokens import mark_stale, usable_context_token
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Attempt, Chunk, Message
from delivery.ledger.queries import conversation_heads
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    MessageStatus,
    SessionState,
)
from delivery.ledger.types import utcnow
from delivery.pipeline import ledger_ops as ops
from delivery.pipeline.clients import ClientPool
from delivery.pipeline.dispatch import publish_send, wake_conversations
from delivery.policy.outcomes import Decision, Step, decide
from delivery.policy.timing import chunk_gap_seconds, cooldown_seconds, spread_seconds
from delivery.ratelimit.gate import AccountGate
from delivery.settings import Settings

__all__ = ["SendPipeline", "StepResult"]

log = logging.getLogger(__name__)

_RETRY_SOON_SECONDS = 0.05  # a stale context token is dropped and the chunk retried at once
_ON_TIME_SECONDS = 0.002  # a countdown to a reserved slot: never zero, never late


@dataclass(frozen=True)
class StepResult:
    """How a task run ended: a summary for logs and Flower, and whether to retry."""

    summary: str
    retry_in_seconds: float | None = None


@dataclass(frozen=True)
class _Snapshot:
    chunk_id: int
    chunk_status: str
    seq: int
    next_attempt_at: dt.datetime
    message_id: int
    message_status: str
    chunk_count: int
    deadline_at: dt.datetime
    account_id: str
    to_user_id: str
    session_state: str
    head_chunk_id: int | None
    head_message_id: int | None


@dataclass(frozen=True)
class _Job:
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
    token: str
    token_version: int
    client_id: str
    text: str
    context_token: str | None

    @property
    def label(self) -> str:
        return f"message {self.message_id} chunk {self.seq}/{self.chunk_count}"


class SendPipeline:
    """Sends chunks for one worker process. See the module docstring for the steps.

    ``backoff`` maps a chunk's transient failure count to a countdown in seconds
    (the send task builds it from its ``retry_backoff`` options).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        gate: AccountGate,
        clients: ClientPool,
        settings: Settings,
        backoff: Callable[[int], float],
        host: str,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._clients = clients
        self._settings = settings
        self._backoff = backoff
        self._host = host
        self._rng = rng or random.Random()

    # -- the steps -------------------------------------------------------------

    def process(self, chunk_id: int) -> StepResult:
        """Try to send one chunk; see the module docstring."""
        try:
            return self._process(chunk_id)
        except LimiterUnavailable as exc:
            wait = self._spread(self._settings.outage_retry_seconds)
            log.warning("chunk %s waits %.1fs: %s (nothing sent)", chunk_id, wait, exc)
            return StepResult(f"limiter unavailable; retry in {wait:.1f}s", wait)
        except LedgerError as exc:
            wait = self._spread(self._settings.outage_retry_seconds)
            log.error("chunk %s waits %.1fs: %s", chunk_id, wait, exc)
            return StepResult(f"ledger unavailable; retry in {wait:.1f}s", wait)

    def _process(self, chunk_id: int) -> StepResult:
        now = utcnow()
        with session_scope(self._engine, readonly=True) as session:
            snap = _snapshot(session, chunk_id)
        if snap is None:
            log.warning("chunk %s is not in the ledger; its task is dropped", chunk_id)
            return StepResult(f"chunk {chunk_id} not found")
        if snap.chunk_status != ChunkStatus.PENDING or snap.message_status not in (
            OPEN_MESSAGE_STATES
        ):
            return StepResult(f"chunk {chunk_id} already {snap.chunk_status}")
        if snap.head_chunk_id != chunk_id:
            return StepResult(
                f"chunk {chunk_id} waits behind message {snap.head_message_id} of its chat"
            )
        if now >= snap.deadline_at:
            return self._miss_deadline(snap, now)
        if snap.next_attempt_at > now:
            wait = (snap.next_attempt_at - now).total_seconds()
            return StepResult(f"chunk {chunk_id} not due yet", max(0.01, wait))
        if snap.session_state == SessionState.EXPIRED:
            return self._wait(
                snap, self._settings.session_recheck_seconds, "the account's session expired"
            )
        decision = self._gate.acquire(snap.account_id, ticket=str(chunk_id))
        if not decision.granted:
            # A reserved slot is this task's own: come back right on it. A cooldown
            # ends for every waiter at once: spread them out.
            return self._wait(
                snap, decision.wait_seconds, decision.reason, spread=not decision.scheduled
            )
        assert decision.token is not None
        try:
            return self._attempt(snap)
        finally:
            self._release(snap.account_id, decision.token)

    def _attempt(self, snap: _Snapshot) -> StepResult:
        job = self._start(snap.chunk_id)
        if isinstance(job, str):
            if job == SessionState.EXPIRED:
                # Expired while this task queued for the lock: do not call.
                return self._wait(
                    snap, self._settings.session_recheck_seconds, "the account's session expired"
                )
            return StepResult(f"chunk {snap.chunk_id} {job}")
        result = self._call(job)
        wait = self._account_effects(job, result.outcome)
        decision = decide(
            result.outcome,
            reason=result.reason,
            failures=job.failures,
            max_failures=self._settings.max_transient_failures,
            used_context_token=job.context_token is not None,
            last_chunk=job.seq >= job.chunk_count,
        )
        return self._finish(job, result, decision, wait)

    # -- reading and waiting -----------------------------------------------------

    def _wait(
        self, snap: _Snapshot, seconds: float, why: str, *, spread: bool = True
    ) -> StepResult:
        wait = self._spread(seconds) if spread else max(_ON_TIME_SECONDS, seconds)
        with session_scope(self._engine) as session:
            ops.postpone(session, snap.chunk_id, until=utcnow() + dt.timedelta(seconds=wait))
        log.debug(
            "message %s chunk %s/%s waits %.2fs: %s",
            snap.message_id,
            snap.seq,
            snap.chunk_count,
            wait,
            why,
        )
        return StepResult(f"{why}; retry in {wait:.2f}s", wait)

    def _spread(self, seconds: float) -> float:
        return min(self._settings.max_countdown_seconds, spread_seconds(seconds, rng=self._rng))

    def _release(self, account_id: str, token: str) -> None:
        try:
            if not self._gate.release(account_id, token):
                log.warning(
                    "account %s: the send lock expired before the send ended "
                    "(DELIVERY_SEND_LOCK_TTL_SECONDS too short?)",
                    account_id,
                )
        except LimiterUnavailable as exc:
            log.warning("account %s: lock not released (%s); it expires by itself", account_id, exc)

    def _miss_deadline(self, snap: _Snapshot, now: dt.datetime) -> StepResult:
        with session_scope(self._engine) as session:
            message = session.get(Message, snap.message_id, with_for_update=True)
            if message is None or message.status not in OPEN_MESSAGE_STATES:
                return StepResult(f"message {snap.message_id} already final")
            last = session.scalar(select(Chunk.last_outcome).where(Chunk.id == snap.chunk_id))
            reason = (
                f"not delivered by its deadline {message.deadline_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(DELIVERY_DELIVERY_DEADLINE_SECONDS); last outcome: {last or 'never tried'}"
            )
            unsent = ops.abandon_message(session, message, reason=reason, now=now)
        log.error("message %s is dead: %s; %d chunk(s) unsent", snap.message_id, reason, unsent)
        self._wake(snap.account_id, snap.to_user_id)
        return StepResult(f"message {snap.message_id} dead: deadline passed")

    # -- the attempt -------------------------------------------------------------

    def _start(self, chunk_id: int) -> _Job | str:
        """Under the account lock: re-check, close lost attempts, write the attempt row.

        Returns the job, or why there is nothing to send (the session expired,
        or the chunk was sent meanwhile by a duplicate task).
        """
        with session_scope(self._engine) as session:
            chunk = session.get(Chunk, chunk_id, with_for_update=True)
            if chunk is None or chunk.status != ChunkStatus.PENDING:
                return "was sent meanwhile"
            message = chunk.message
            if message.status not in OPEN_MESSAGE_STATES:
                return f"belongs to a message that is {message.status}"
            account = session.get(Account, message.account_id)
            assert account is not None
            if account.session_state == SessionState.EXPIRED:
                return SessionState.EXPIRED
            lost = ops.close_lost_attempts(session, chunk_id)
            if lost:
                log.warning(
                    "message %s chunk %s: %d earlier attempt(s) were cut off mid-call; "
                    "sending again with the same client_id %s, which the platform de-duplicates",
                    message.id,
                    chunk.seq,
                    lost,
                    chunk.client_id,
                )
            context_token = usable_context_token(
                session, account_id=account.id, peer_id=message.to_user_id
            )
            attempt = ops.start_attempt(
                session, chunk, context_token=context_token, host=self._host, now=utcnow()
            )
            return _Job(
                attempt_id=attempt.id,
                attempt_no=attempt.attempt_no,
                chunk_id=chunk.id,
                seq=chunk.seq,
                chunk_count=message.chunk_count,
                failures=chunk.failure_count,
                message_id=message.id,
                account_id=account.id,
                to_user_id=message.to_user_id,
                base_url=account.base_url,
                token=account.token,
                token_version=account.token_version,
                client_id=chunk.client_id,
                text=chunk.text,
                context_token=context_token,
            )

    def _call(self, job: _Job) -> ops.AttemptResult:
        client = self._clients.get(
            account_id=job.account_id,
            token=job.token,
            token_version=job.token_version,
            base_url=job.base_url,
        )
        started = time.monotonic()
        try:
            reply = client.send_text(
                to_user_id=job.to_user_id,
                client_id=job.client_id,
                text=job.text,
                context_token=job.context_token,
            )
        except TransportError as exc:
            duration_ms = int((time.monotonic() - started) * 1000)
            return ops.AttemptResult(AttemptOutcome.TRANSIENT, str(exc), None, duration_ms)
        verdict = classify(reply.answer, used_context_token=job.context_token is not None)
        return ops.AttemptResult(verdict.outcome, verdict.reason, reply.answer, reply.elapsed_ms)

    def _account_effects(self, job: _Job, outcome: AttemptOutcome) -> float | None:
        """Redis side of an outcome: end a rate-limit streak, or start a cooldown.

        Returns the cooldown's time left (seconds) for a rate-limited answer.
        """
        settings = self._settings
        try:
            if outcome == AttemptOutcome.ACCEPTED:
                self._gate.succeeded(job.account_id)  # ends the streak, lets the pace climb
                return None
            if outcome != AttemptOutcome.RATE_LIMITED:
                return None
            strikes = self._gate.rate_limited(job.account_id)
            pause = cooldown_seconds(
                strikes=strikes,
                base_seconds=settings.cooldown_base_seconds,
                max_seconds=settings.cooldown_max_seconds,
                rng=self._rng,
            )
            left = self._gate.cool_down(job.account_id, pause)
        except LimiterUnavailable as exc:
            log.warning("account %s: cooldown not recorded (%s)", job.account_id, exc)
            return (
                settings.cooldown_base_seconds if outcome == AttemptOutcome.RATE_LIMITED else None
            )
        log.warning(
            "account %s rate limited (strike %d): every send of it pauses %.1fs%s",
            job.account_id,
            strikes,
            left,
            "; it now sends at half its pace and climbs back to 90% of it" if strikes == 1 else "",
        )
        return left

    def _finish(
        self,
        job: _Job,
        result: ops.AttemptResult,
        decision: Decision,
        cooldown_left: float | None,
    ) -> StepResult:
        now = utcnow()
        step = decision.step
        wait = self._wait_for(step, job, cooldown_left)
        next_chunk_id: int | None = None
        gap = 0.0
        with session_scope(self._engine) as session:
            attempt = session.get(Attempt, job.attempt_id)
            chunk = session.get(Chunk, job.chunk_id)
            account = session.get(Account, job.account_id)
            assert attempt is not None
            assert chunk is not None
            assert account is not None
            message = chunk.message
            ops.record_result(session, attempt, result)
            chunk.last_outcome = result.outcome
            if decision.spend_failure:
                chunk.failure_count += 1
            if step in (Step.SENT, Step.DELIVERED):
                chunk.status = ChunkStatus.SENT
                chunk.sent_at = now
                if ops.mark_session_ok(session, account, now=now):
                    log.info("account %s: session good (a send was accepted)", account.id)
            if step == Step.SENT:
                message.status = MessageStatus.SENDING
                gap = chunk_gap_seconds(
                    n_chunks=job.chunk_count,
                    gap_seconds=self._settings.chunk_gap_seconds,
                    base_seconds=self._settings.chunk_gap_base_seconds,
                    per_chunk_seconds=self._settings.chunk_gap_per_chunk_seconds,
                )
                next_chunk_id = _schedule_next(session, job, at=now + dt.timedelta(seconds=gap))
            elif step == Step.DELIVERED:
                message.status = MessageStatus.DELIVERED
                message.delivered_at = now
            elif step == Step.DEAD:
                assert decision.dead_reason is not None
                ops.abandon_message(
                    session, message, reason=decision.dead_reason, now=now, failed_chunk_id=chunk.id
                )
            else:
                assert wait is not None
                chunk.next_attempt_at = now + dt.timedelta(seconds=wait)
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
                        session,
                        account_id=job.account_id,
                        peer_id=job.to_user_id,
                        token=job.context_token,
                    )
        self._log_attempt(job, result, step, wait)
        if next_chunk_id is not None:
            publish_send(next_chunk_id, countdown_seconds=gap)
        if step in (Step.DELIVERED, Step.DEAD):
            self._wake(job.account_id, job.to_user_id)
        summary = f"{job.label} attempt {job.attempt_no}: {result.outcome} -> {step}"
        return StepResult(summary, wait)

    def _wait_for(self, step: Step, job: _Job, cooldown_left: float | None) -> float | None:
        settings = self._settings
        match step:
            case Step.COOL_DOWN:
                return self._spread(cooldown_left or settings.cooldown_base_seconds)
            case Step.AWAIT_SESSION:
                return self._spread(settings.session_recheck_seconds)
            case Step.RETRY_SOON:
                return self._spread(_RETRY_SOON_SECONDS)
            case Step.BACK_OFF:
                return min(settings.max_countdown_seconds, self._backoff(job.failures + 1))
        return None

    def _log_attempt(
        self, job: _Job, result: ops.AttemptResult, step: Step, wait: float | None
    ) -> None:
        then = f"; next try in {wait:.1f}s" if wait is not None else ""
        level = logging.INFO if result.outcome == AttemptOutcome.ACCEPTED else logging.WARNING
        if step == Step.DEAD:
            level = logging.ERROR
        log.log(
            level,
            "%s to %s via %s: %s in %d ms (attempt %d, %s)%s",
            job.label,
            job.to_user_id,
            job.account_id,
            result.reason,
            result.duration_ms,
            job.attempt_no,
            "message dead" if step == Step.DEAD else step.value,
            then,
        )

    def _wake(self, account_id: str, to_user_id: str) -> None:
        try:
            wake_conversations(self._engine, [(account_id, to_user_id)])
        except LedgerError as exc:
            log.warning(
                "could not wake the next message to %s (%s); the reconciler will", to_user_id, exc
            )


def _snapshot(session: Session, chunk_id: int) -> _Snapshot | None:
    row = session.execute(
        select(Chunk, Message, Account.session_state)
        .join(Message, Chunk.message_id == Message.id)
        .join(Account, Message.account_id == Account.id)
        .where(Chunk.id == chunk_id)
    ).one_or_none()
    if row is None:
        return None
    chunk, message, session_state = row
    heads = conversation_heads(session, [(message.account_id, message.to_user_id)])
    head = heads[0] if heads else None
    return _Snapshot(
        chunk_id=chunk.id,
        chunk_status=chunk.status,
        seq=chunk.seq,
        next_attempt_at=chunk.next_attempt_at,
        message_id=message.id,
        message_status=message.status,
        chunk_count=message.chunk_count,
        deadline_at=message.deadline_at,
        account_id=message.account_id,
        to_user_id=message.to_user_id,
        session_state=session_state,
        head_chunk_id=head.chunk_id if head else None,
        head_message_id=head.message_id if head else None,
    )


def _schedule_next(session: Session, job: _Job, *, at: dt.datetime) -> int | None:
    """Set the not-before time of the message's next chunk; return its id."""
    chunk = session.scalars(
        select(Chunk).where(Chunk.message_id == job.message_id, Chunk.seq == job.seq + 1)
    ).one_or_none()
    if chunk is None or chunk.status != ChunkStatus.PENDING:
        return None
    chunk.next_attempt_at = at
    return chunk.id
