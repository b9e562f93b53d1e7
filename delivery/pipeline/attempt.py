"""One attempt at a chunk, under the account's send lock: claim, call, record.

1. Claim the chunk in the ledger (still this task's, due, the head of its chat),
   close attempts a dead worker left ``in_flight``, and write this attempt's row;
   commit. An answer stashed while the ledger was away is recorded instead.
2. Call the platform with the chunk's fixed ``client_id``; classify the answer.
3. Tell the gate (a rate limit starts a cooldown; an acceptance ends a streak).
4. Record the outcome (:mod:`delivery.pipeline.recording`), then publish what
   it armed, and wake the chat's next message or the account's parked heads.

Example::

    AttemptRunner(ctx).run(snapshot, generation)     # -> Done | Wait
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

from sqlalchemy.orm import Session

from delivery.errors import LimiterUnavailable, TransportError
from delivery.ilink.classify import classify
from delivery.ledger import attempts, outbox
from delivery.ledger.attempts import AttemptResult
from delivery.ledger.db import session_scope
from delivery.ledger.outbox import Claim, Refusal
from delivery.ledger.states import AttemptOutcome, ParkReason
from delivery.ledger.types import utcnow
from delivery.pipeline.context import ON_TIME_SECONDS, RETRY_SOON_SECONDS, PipelineContext
from delivery.pipeline.dispatch import publish_all
from delivery.pipeline.job import Job
from delivery.pipeline.outcome import Applied, Plan, apply_outcome
from delivery.pipeline.readers import Judged, ReaderView, judge, text_with_notice
from delivery.pipeline.recording import record_outcome
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.pipeline.snapshot import Snapshot
from delivery.policy.outcomes import Decision, Step, decide
from delivery.policy.timing import chunk_gap_seconds, cooldown_seconds
from delivery.ratelimit.gate import order_key
from delivery.ratelimit.learning import Estimate, estimate_limit

__all__ = ["AttemptRunner"]

log = logging.getLogger(__name__)

_RECORD_RETRY_DELAYS = (0.1, 0.3, 1.0, 3.0, 10.0)  # seconds, cut to half the lock's TTL


class AttemptRunner:
    """Runs one attempt for a task that holds the account's send lock."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx

    def run(
        self,
        snap: Snapshot,
        generation: int | None,
        *,
        trial: bool = False,
        learned_per_minute: float | None = None,
    ) -> StepResult:
        """Claim, call and record; see the module docstring. ``trial``: the account is
        marked expired, and this chunk holds its trial pass (``sessions.trials``).
        ``learned_per_minute``: the account's learned rate limit in force, if any."""
        if snap.in_flight_attempts:
            stashed = self._ctx.stash.take(snap.in_flight_attempts)
            if stashed is not None:
                job, result = stashed
                log.warning(
                    "%s: recording the answer of attempt %d kept while the ledger was away "
                    "(%s); not sending again",
                    job.label,
                    job.attempt_no,
                    result.reason,
                )
                return self._finish(job, Judged(result), effects=_NO_EFFECTS)
        claimed = self._claim(snap.chunk_id, generation, trial=trial)
        if isinstance(claimed, Refusal):
            if claimed.session_expired:
                return self._ctx.park_on_session(
                    snap.chunk_id, snap.account_id, generation, until=snap.deadline_at
                )
            if claimed.due_in_seconds is not None:
                return Wait(self._ctx.on_time(claimed.due_in_seconds), claimed.why)
            return Done(claimed.why)
        judged = self._judge(claimed, self._call(claimed))
        probed = self._probe_strikes(claimed, judged)
        effects = self._account_effects(
            claimed, judged.result, learned_per_minute=learned_per_minute, probed=probed
        )
        return self._finish(claimed, judged, effects=effects)

    # -- before the call -----------------------------------------------------------

    def _claim(self, chunk_id: int, generation: int | None, *, trial: bool) -> Job | Refusal:
        settings = self._ctx.settings
        now = utcnow()
        with session_scope(self._ctx.engine) as db:
            claim = outbox.claim(
                db,
                chunk_id,
                generation=generation,
                now=now,
                lease_seconds=settings.send_lock_ttl_seconds,
                early_seconds=ON_TIME_SECONDS,
                expired_may_try=trial,
            )
            if isinstance(claim, Refusal):
                return claim
            if claim.lost_before:
                _close_lost(db, claim)
            claim = self._with_notice(db, claim, now)
            context_token = claim.context_token
            attempt_id = attempts.start(
                db,
                chunk_id=chunk_id,
                attempt_no=claim.attempt_no,
                context_token=context_token,
                host=self._ctx.host,
                now=now,
            )
        return Job.of(claim, attempt_id=attempt_id, generation=generation)

    def _with_notice(self, db: Session, claim: Claim, now: dt.datetime) -> Claim:
        """The last part a reader's budget allows ends with a notice that more follow."""
        settings = self._ctx.settings
        text = text_with_notice(
            claim.text,
            view=ReaderView.of(claim, settings=settings, now=now),
            parts_after=claim.chunk_count - claim.seq,
            template=settings.reader_notice,
        )
        if text == claim.text:
            return claim
        outbox.set_text(db, claim.chunk_id, text)
        return dataclasses.replace(claim, text=text)

    def _judge(self, job: Job, result: AttemptResult) -> Judged:
        """A bare refusal: the reader's, or the account's limit (see ``readers``)."""
        settings = self._ctx.settings
        try:
            return judge(
                job,
                result,
                view=ReaderView.of(job, settings=settings, now=utcnow()),
                gate=self._ctx.gate,
                probe=self._ctx.probe,
                probe_pause_seconds=settings.reader_probe_pause_seconds,
            )
        except LimiterUnavailable as exc:
            log.warning(
                "account %s: refusal not judged (%s); taken as a rate limit", job.account_id, exc
            )
            if result.outcome == AttemptOutcome.REFUSED:
                result = dataclasses.replace(result, outcome=AttemptOutcome.RATE_LIMITED)
            return Judged(result)

    def _probe_strikes(self, job: Job, judged: Judged) -> int:
        """The held suspects' refusals were this rate limit's first strikes: they count,
        so a lockout met while probing costs no more refusals than one met head on.
        Returns how many were counted."""
        if judged.result.outcome != AttemptOutcome.RATE_LIMITED:
            return 0
        try:
            for _ in judged.released:
                self._ctx.gate.rate_limited(job.account_id)
        except LimiterUnavailable as exc:
            log.warning("account %s: strikes not counted (%s)", job.account_id, exc)
            return 0
        return len(judged.released)

    def _call(self, job: Job) -> AttemptResult:
        client = self._ctx.clients.get(
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
            return AttemptResult(AttemptOutcome.TRANSIENT, str(exc), None, duration_ms)
        verdict = classify(reply.answer, used_context_token=job.context_token is not None)
        return AttemptResult(verdict.outcome, verdict.reason, reply.answer, reply.elapsed_ms)

    def _account_effects(
        self, job: Job, result: AttemptResult, *, learned_per_minute: float | None, probed: int
    ) -> Effects:
        """Redis side of an outcome: the next send waits an interval from this answer;
        an acceptance ends a streak; a rate limit starts a cooldown, and the first of
        a streak teaches the account its limit (``delivery.ratelimit.learning``)."""
        gate, settings = self._ctx.gate, self._ctx.settings
        outcome = result.outcome
        try:
            gate.answered(
                job.account_id,
                accepted=outcome == AttemptOutcome.ACCEPTED,
                learned_per_minute=learned_per_minute,
            )
            if outcome != AttemptOutcome.RATE_LIMITED:
                return _NO_EFFECTS
            strikes = gate.rate_limited(job.account_id)
            learned = None
            if strikes <= 1 + probed:
                learned = self._estimate(job, learned_per_minute)
            pause = cooldown_seconds(
                strikes=strikes,
                base_seconds=settings.cooldown_base_seconds,
                max_seconds=settings.cooldown_max_seconds,
                rng=self._ctx.rng,
            )
            left = gate.cool_down(job.account_id, pause)
        except LimiterUnavailable as exc:
            log.warning("account %s: cooldown not recorded (%s)", job.account_id, exc)
            if outcome != AttemptOutcome.RATE_LIMITED:
                return _NO_EFFECTS
            return Effects(cooldown_left=settings.cooldown_base_seconds)
        log.warning(
            "account %s rate limited (strike %d): every send of it pauses %.1fs%s",
            job.account_id,
            strikes,
            left,
            f"; it learned its limit: {learned.evidence}" if learned is not None else "",
        )
        return Effects(cooldown_left=left, learned=learned)

    def _estimate(self, job: Job, learned_per_minute: float | None) -> Estimate:
        sends, now = self._ctx.gate.accepted_sends(job.account_id)
        configured = self._ctx.gate.rate.per_minute
        return estimate_limit(
            sends=sends,
            refused_at=now,
            current_per_minute=min(configured, learned_per_minute or configured),
            configured_per_minute=configured,
            previous_per_minute=learned_per_minute,
        )

    # -- after the call ------------------------------------------------------------

    def _expect_next_parts(self, job: Job, applied: Applied) -> None:
        """The message's next part takes its place in the account's line now, ahead of
        every first part: a reader who saw this part gets the next one at the account's
        next slot, not after the backlog."""
        try:
            for part in applied.next_parts:
                self._ctx.gate.expect(
                    job.account_id,
                    ticket=str(part.chunk_id),
                    order=order_key(message_id=job.message_id, seq=job.seq + 1),
                    in_seconds=part.countdown_seconds,
                    weight=job.chunk_count - job.seq,
                )
        except LimiterUnavailable as exc:
            log.debug("account %s: next part not placed in line (%s)", job.account_id, exc)

    def _decide(self, job: Job, result: AttemptResult) -> Decision:
        return decide(
            result.outcome,
            reason=result.reason,
            failures=job.failures,
            max_failures=self._ctx.settings.max_transient_failures,
            used_context_token=job.context_token is not None,
            last_chunk=job.seq >= job.chunk_count,
        )

    def _wait_for(self, step: Step, job: Job, cooldown_left: float | None) -> float | None:
        settings = self._ctx.settings
        match step:
            case Step.COOL_DOWN:
                return self._ctx.spread(cooldown_left or settings.cooldown_base_seconds)
            case Step.RETRY_SOON | Step.AWAIT_SESSION:
                # An expired session parks the chunk; AWAIT_SESSION still waits only
                # when the token was rotated during the call: try the new one at once.
                return self._ctx.spread(RETRY_SOON_SECONDS)
            case Step.BACK_OFF:
                return min(settings.max_countdown_seconds, self._ctx.backoff(job.failures + 1))
        return None

    def _finish(self, job: Job, judged: Judged, effects: Effects) -> StepResult:
        settings = self._ctx.settings
        result = judged.result
        view = ReaderView.of(job, settings=settings, now=utcnow())

        def apply(db: Session, res: AttemptResult, decision: Decision) -> Applied:
            plan = Plan(
                wait_seconds=self._wait_for(decision.step, job, effects.cooldown_left),
                gap_seconds=chunk_gap_seconds(
                    n_chunks=job.chunk_count,
                    gap_seconds=settings.chunk_gap_seconds,
                    base_seconds=settings.chunk_gap_base_seconds,
                    per_chunk_seconds=settings.chunk_gap_per_chunk_seconds,
                ),
                hold_until=view.hold_until,
                recheck_seconds=settings.reader_recheck_seconds,
                count_reader_sends=settings.reader_limits,
                learned=effects.learned,
                pace_memory_seconds=settings.pace_memory_seconds,
            )
            again = judged if res is result else dataclasses.replace(judged, result=res)
            return apply_outcome(
                db, job=job, judged=again, decision=decision, plan=plan, now=utcnow()
            )

        recorded = record_outcome(
            self._ctx.engine,
            result=result,
            decision=self._decide(job, result),
            apply=apply,
            redecide=lambda failed: self._decide(job, failed),
            retry_delays=_within(_RECORD_RETRY_DELAYS, settings.send_lock_ttl_seconds / 2),
            stash=lambda: self._ctx.stash.put(job, result),
        )
        if recorded is None:
            wait = self._ctx.spread(settings.outage_retry_seconds)
            return Wait(wait, f"{job.label}: {result.outcome}, kept until the ledger is back")
        if not job.token:  # a recovered answer: the ledger holds it now
            self._ctx.stash.drop(job.attempt_id)
        return self._after(job, recorded.result, recorded.decision, recorded.applied)

    def _after(
        self, job: Job, result: AttemptResult, decision: Decision, applied: Applied
    ) -> StepResult:
        step, wait = decision.step, applied.wait_seconds
        if applied.delivered_after_all:
            log.warning(
                "%s: %s after its message had died; it was the last unsent chunk, so the "
                "message is delivered after all",
                job.label,
                result.reason,
            )
        elif applied.was_final_already:
            log.warning(
                "%s: %s, but the message had died meanwhile (deadline); it stays dead",
                job.label,
                result.reason,
            )
            return Done(f"{job.label}: {result.outcome}, message already final")
        _log_attempt(job, result, step, None if applied.parked is not None else wait)
        self._expect_next_parts(job, applied)
        publish_all(self._ctx.publisher, applied.armed)
        if applied.message_final:
            self._ctx.wake(job.account_id, job.to_user_id)
        if applied.session_healed:
            self._ctx.wake_parked(job.account_id)
        if applied.session_newly_expired:
            log.error(
                "account %s: session expired (%s); its sends are parked, spending no budget, "
                "until a good token is stored (delivery account add %s --token ...)",
                job.account_id,
                result.reason,
                job.account_id,
            )
        summary = f"{job.label} attempt {job.attempt_no}: {result.outcome} -> {step}"
        if applied.parked == ParkReason.SESSION:
            return Done(f"{summary}; parked until the session heals")
        if applied.parked == ParkReason.READER:
            return Done(f"{summary}; the chat waits for its reader to write")
        if applied.released or wait is None:
            return Done(summary)
        return Wait(wait, summary)


@dataclasses.dataclass(frozen=True)
class Effects:
    """What the gate made of an outcome, for recording it."""

    cooldown_left: float | None = None  # seconds left of a rate-limit cooldown
    learned: Estimate | None = None  # the limit learned from this refusal


_NO_EFFECTS = Effects()


def _within(delays: tuple[float, ...], budget_seconds: float) -> tuple[float, ...]:
    """The leading ``delays`` whose sum stays within ``budget_seconds``."""
    kept: list[float] = []
    for delay in delays:
        if sum(kept) + delay > budget_seconds:
            break
        kept.append(delay)
    return tuple(kept)


def _close_lost(db: Session, claim: Claim) -> None:
    lost = attempts.close_lost(db, claim.chunk_id)
    if lost:
        log.warning(
            "message %s chunk %s: %d earlier attempt(s) were cut off mid-call; "
            "sending again with the same client_id %s, which the platform de-duplicates",
            claim.message_id,
            claim.seq,
            lost,
            claim.client_id,
        )


def _log_attempt(job: Job, result: AttemptResult, step: Step, wait: float | None) -> None:
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
