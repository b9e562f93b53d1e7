"""One turn at the account's slot: admit, call, record; what to tell the line after.

A task that holds the account's send lock (its slot came) takes one turn:

1. **Admit**, in one transaction (:func:`~delivery.ledger.outbox.look` reads the
   chunk, message, account and reader in one statement, under the account's lock):
   a stale, final or parked chunk is left alone; a chunk past its deadline is dead;
   one whose reader is closed or dropping, or whose session expired, is parked (no
   task: the event that clears it offers it again); one not due, or whose account
   is still cooling down by the ledger's word (a Redis that lost the cooldown),
   waits in the line; one that is not its chat's head steps aside. Otherwise the
   attempt row is written (``in_flight``) in the same transaction. An answer
   stashed while the ledger was away is recorded instead of sending again.
2. **Call** the platform with the chunk's fixed ``client_id``; classify the answer
   and judge a bare refusal (a reader's, or the account's limit).
3. **Tell the gate** what a refusal means for the account: a rate limit counts a
   strike, starts a cooldown, and the first of a streak teaches the limit what it
   proves (:mod:`delivery.ratelimit.learning`).
4. **Record** the outcome (:mod:`delivery.pipeline.outcome_record`): the attempt, the
   chunk and the message's next chunk, the counters, in one transaction.

The :class:`Turn` it returns says what happened and what the line gets: whether the
platform was called and accepted it (the next send is spaced from this answer), and
the parts to offer (the message's next chunk, this one again after a wait, a chat
woken). :mod:`delivery.pipeline.send` hands the slot on with them.

Example::

    turn = AttemptRunner(ctx).run(chunk_id, generation, suspects_held=False)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.errors import LimiterUnavailable, TransportError
from delivery.ilink.classify import classify
from delivery.ledger import attempts, outbox
from delivery.ledger.attempts import AttemptResult
from delivery.ledger.db import session_scope
from delivery.ledger.models import Attempt, Reader
from delivery.ledger.outbox import Armed, Look
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    ParkReason,
    SessionState,
)
from delivery.ledger.types import utcnow
from delivery.pipeline.context import ON_TIME_SECONDS, RETRY_SOON_SECONDS, PipelineContext
from delivery.pipeline.job import Job
from delivery.pipeline.outcome import Applied, Plan, apply_outcome
from delivery.pipeline.outcome_record import record_outcome
from delivery.pipeline.reader_verdicts import Judged, ReaderView, judge, text_with_notice
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.policy.outcomes import Decision, Step, decide
from delivery.policy.timing import chunk_gap_seconds, cooldown_seconds
from delivery.ratelimit.learning import Lesson, learned_rate, lesson

__all__ = ["AttemptRunner", "Turn"]

log = logging.getLogger(__name__)

_RECORD_RETRY_DELAYS = (0.1, 0.3, 1.0, 3.0, 10.0)  # seconds, cut to half the lock's TTL


@dataclasses.dataclass(frozen=True)
class Turn:
    """What one turn at the slot did, and what the account's line gets after it.

    ``called``: the platform was called (the next send is spaced from its answer);
    ``accepted``: it accepted the send. ``offers``: parts of this account to offer
    to the line (the message's next chunk; this chunk again, due after its wait; a
    chat woken). ``pace_per_minute``: the learned ceiling in force, if any."""

    result: StepResult
    called: bool = False
    accepted: bool = False
    offers: list[Armed] = dataclasses.field(default_factory=list)
    pace_per_minute: float | None = None
    wake_chat: bool = False  # the message ended here: its chat's next message goes


@dataclasses.dataclass(frozen=True)
class Effects:
    """What the gate made of an outcome, for recording it."""

    cooldown_left: float | None = None  # seconds left of a rate-limit cooldown
    lesson: Lesson | None = None  # what this refusal taught of the limit (or why nothing)
    strikes: int = 0


_NO_EFFECTS = Effects()


class AttemptRunner:
    """Takes one turn for a task that holds the account's send lock."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx

    def run(
        self,
        chunk_id: int,
        generation: int | None,
        *,
        suspects_held: bool,
        lesson_pending: bool = False,
    ) -> Turn:
        """Admit, call and record; see the module docstring. ``lesson_pending``: a
        lesson of the limit waits to be proven; its ceiling is the pace meanwhile."""
        admitted = self._admit(chunk_id, generation)
        if isinstance(admitted, Turn):
            return admitted
        job, stashed = admitted
        pace = self._pace(job, lesson_pending=lesson_pending)
        if stashed is not None:
            log.warning(
                "%s: recording the answer of attempt %d kept while the ledger was away "
                "(%s); not sending again",
                job.label,
                job.attempt_no,
                stashed.reason,
            )
            return self._finish(job, Judged(stashed), effects=_NO_EFFECTS, pace=pace)
        result = self._call(job)
        judged = self._judge(job, result, suspects_held=suspects_held)
        effects = self._account_effects(job, judged, pace=pace)
        return self._finish(job, judged, effects=effects, pace=pace)

    # -- admit --------------------------------------------------------------------

    def _admit(
        self, chunk_id: int, generation: int | None
    ) -> Turn | tuple[Job, AttemptResult | None]:
        now = utcnow()
        with session_scope(self._ctx.engine) as db:
            found = outbox.look(db, chunk_id)
            if found is None:
                return Turn(Done(f"chunk {chunk_id} is not in the ledger"))
            turn = self._refuse(db, found, generation, now)
            if turn is None:
                return self._start(db, found, generation, now)
        if turn.wake_chat:
            self._ctx.wake(found.account_id, found.to_user_id)
        return turn

    def _refuse(
        self, db: Session, look: Look, generation: int | None, now: dt.datetime
    ) -> Turn | None:
        """Why this chunk does not go now (a Turn saying so), or None: it goes."""
        ctx = self._ctx
        chunk_id = look.chunk_id
        if generation is not None and look.generation != generation:
            return Turn(Done(f"chunk {chunk_id}: a newer task holds it"))
        if look.chunk_status != ChunkStatus.PENDING or look.message_status not in (
            OPEN_MESSAGE_STATES
        ):
            return Turn(Done(f"chunk {chunk_id} already {look.chunk_status}"))
        if look.parked_on is not None:
            return Turn(Done(f"chunk {chunk_id} is parked, waiting for its {look.parked_on}"))
        reader = ReaderView.of(look, settings=ctx.settings, now=now)
        if reader.waiting and now >= reader.hold_until:
            return self._kill(db, look, now, reader_waited=True)
        if not reader.waiting and now >= look.deadline_at:
            return self._kill(db, look, now)
        due_in = (look.next_attempt_at - now).total_seconds()
        if due_in > ON_TIME_SECONDS:
            return Turn(Done(f"chunk {chunk_id} not due yet"), offers=[_again(look, due_in)])
        if look.cooldown_until is not None and look.cooldown_until > now:
            left = (look.cooldown_until - now).total_seconds()
            ctx.gate.cool_down(look.account_id, left)  # Redis had lost it
            return Turn(Done(f"chunk {chunk_id}: the account cools down"), offers=[_again(look, 0)])
        if look.session_state == SessionState.EXPIRED and not ctx.trials.take(
            look.account_id, chunk_id=chunk_id
        ):
            return self._park(db, look, generation, ParkReason.SESSION, until=look.deadline_at)
        if reader.waiting:
            return self._park_on_reader(db, look, generation, until=reader.hold_until, now=now)
        if look.blocked_by is not None:
            return Turn(Done(f"chunk {chunk_id} waits behind message {look.blocked_by}"))
        return None

    def _start(
        self, db: Session, look: Look, generation: int | None, now: dt.datetime
    ) -> tuple[Job, AttemptResult | None]:
        """Write the attempt row (or find an answer kept while the ledger was away)."""
        lost = 0
        stashed = None
        if look.in_flight:
            in_flight = list(
                db.scalars(
                    select(Attempt.id).where(
                        Attempt.chunk_id == look.chunk_id,
                        Attempt.outcome == AttemptOutcome.IN_FLIGHT,
                    )
                )
            )
            kept = self._ctx.stash.take(in_flight)
            if kept is not None:
                old, stashed = kept
                job = Job.of(
                    look,
                    attempt_id=old.attempt_id,
                    attempt_no=old.attempt_no,
                    task_generation=generation,
                    text=look.text,
                    lost_before=False,
                )
                return job, stashed
            lost = attempts.close_lost(db, look.chunk_id)
            log.warning(
                "message %s chunk %s: %d earlier attempt(s) were cut off mid-call; sending "
                "again with the same client_id %s, which the platform de-duplicates",
                look.message_id,
                look.seq,
                lost,
                look.client_id,
            )
        text = text_with_notice(
            look.text,
            view=ReaderView.of(look, settings=self._ctx.settings, now=now),
            parts_after=look.chunk_count - look.seq,
            template=self._ctx.settings.reader_notice,
        )
        if text != look.text:
            outbox.set_text(db, look.chunk_id, text)
        attempt_no = look.attempt_count + lost + 1
        attempt_id = attempts.start(
            db,
            chunk_id=look.chunk_id,
            attempt_no=attempt_no,
            context_token=look.context_token,
            host=self._ctx.host,
            now=now,
        )
        job = Job.of(
            look,
            attempt_id=attempt_id,
            attempt_no=attempt_no,
            task_generation=generation,
            text=text,
            lost_before=lost > 0,
        )
        return job, None

    def _kill(
        self, db: Session, look: Look, now: dt.datetime, *, reader_waited: bool = False
    ) -> Turn:
        settings = self._ctx.settings
        if reader_waited:
            reason = (
                f"reader did not write within {_span(settings.reader_wait_seconds)} "
                "(DELIVERY_READER_WAIT_SECONDS); the platform delivers only within "
                "their reply window"
            )
        else:
            last = db.scalar(
                select(Attempt.outcome)
                .where(Attempt.chunk_id == look.chunk_id)
                .order_by(Attempt.id.desc())
                .limit(1)
            )
            reason = (
                f"not delivered by its deadline {look.deadline_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(DELIVERY_DELIVERY_DEADLINE_SECONDS); last outcome: {last or 'never tried'}"
            )
        if look.in_flight:
            attempts.close_lost(db, look.chunk_id)
        unsent = outbox.kill(db, look.message_id, reason=reason, now=now)
        if unsent is None:
            return Turn(Done(f"message {look.message_id} already final"))
        log.error("message %s is dead: %s; %d chunk(s) unsent", look.message_id, reason, unsent)
        return Turn(Done(f"message {look.message_id} dead: deadline passed"), wake_chat=True)

    def _park(
        self,
        db: Session,
        look: Look,
        generation: int | None,
        reason: ParkReason,
        *,
        until: dt.datetime,
    ) -> Turn:
        if outbox.park(db, look.chunk_id, generation=generation, reason=reason, until=until):
            log.debug("chunk %s parked on its %s", look.chunk_id, reason)
            if reason == ParkReason.READER:
                why = f"waits for its reader {look.to_user_id} to write"
            else:
                why = f"parked until the session of {look.account_id} heals"
            return Turn(Done(f"chunk {look.chunk_id} {why}"))
        return Turn(Done(f"chunk {look.chunk_id}: a newer task holds it"))

    def _park_on_reader(
        self,
        db: Session,
        look: Look,
        generation: int | None,
        *,
        until: dt.datetime,
        now: dt.datetime,
    ) -> Turn:
        """Park the head while its reader stays closed (until the hold limit): checked
        under the reader's row lock, so a message they sent meanwhile is seen (and one
        recorded after sees the parked chunk and wakes it)."""
        row = db.execute(
            select(
                Reader.last_inbound_at,
                Reader.sends_since_inbound,
                Reader.closed_reason,
                Reader.dropping_since,
            )
            .where(Reader.account_id == look.account_id, Reader.peer_id == look.to_user_id)
            .with_for_update()
        ).one_or_none()
        if row is not None:
            fresh = dataclasses.replace(
                look,
                reader_last_inbound_at=row[0],
                reader_sends_since_inbound=row[1] or 0,
                reader_closed_reason=row[2],
                reader_dropping_since=row[3],
            )
            if not ReaderView.of(fresh, settings=self._ctx.settings, now=now).waiting:
                return Turn(Done("the reader wrote meanwhile"), offers=[_again(look, 0)])
        log.info("chunk %s waits for %s to write", look.chunk_id, look.to_user_id)
        return self._park(db, look, generation, ParkReason.READER, until=until)

    # -- the call -------------------------------------------------------------------

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
        verdict = classify(
            reply.answer,
            used_context_token=job.context_token is not None,
            expects_message_id=job.confirms_sends,
        )
        return AttemptResult(verdict.outcome, verdict.reason, reply.answer, reply.elapsed_ms)

    def _judge(self, job: Job, result: AttemptResult, *, suspects_held: bool) -> Judged:
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
                suspects_held=suspects_held,
            )
        except LimiterUnavailable as exc:
            log.warning(
                "account %s: refusal not judged (%s); taken as a rate limit", job.account_id, exc
            )
            if result.outcome == AttemptOutcome.REFUSED:
                result = dataclasses.replace(result, outcome=AttemptOutcome.RATE_LIMITED)
            return Judged(result)

    def _pace(self, job: Job, *, lesson_pending: bool = False) -> float | None:
        """The learned ceiling in force, lowered to a pending lesson's while it waits."""
        pace = learned_rate(
            job.learned_rate_per_minute,
            job.learned_at,
            now=utcnow(),
            memory_seconds=self._ctx.settings.pace_memory_seconds,
        )
        if lesson_pending:
            try:
                pending = self._ctx.probe.pending_pace(job.account_id)
            except LimiterUnavailable:
                pending = None
            if pending is not None:
                pace = min(pace or pending, pending)
        return pace

    def _account_effects(self, job: Job, judged: Judged, *, pace: float | None) -> Effects:
        """A rate limit counts a strike and starts a cooldown (growing with each refused
        probe); the first of a streak teaches the account what it proves. A rate limit
        judged from unknown readers alone teaches only once proven (see ``suspects``)."""
        outcome = judged.result.outcome
        try:
            if outcome != AttemptOutcome.RATE_LIMITED:
                return self._settle_lesson(job, judged)
            return self._rate_limited(job, judged, pace=pace)
        except LimiterUnavailable as exc:
            log.warning("account %s: cooldown not kept in Redis (%s)", job.account_id, exc)
            if outcome != AttemptOutcome.RATE_LIMITED:
                return _NO_EFFECTS
            return Effects(
                cooldown_left=self._ctx.settings.cooldown_base_seconds,
                strikes=job.cooldown_strikes + 1,
            )

    def _settle_lesson(self, job: Job, judged: Judged) -> Effects:
        """A released reader's send decides a pending lesson: accepted, the lockout was
        real (it is learned); refused as theirs, it was their window (it is dropped)."""
        if not judged.released_reader:
            return _NO_EFFECTS
        outcome = judged.result.outcome
        if outcome in (AttemptOutcome.ACCEPTED, AttemptOutcome.UNCONFIRMED):
            pending = self._ctx.probe.take_lesson(job.account_id)
            if pending is None:
                return _NO_EFFECTS
            note = f"{pending['note']}; proven: a reader it had held was accepted after it"
            log.warning("account %s learned its limit: %s", job.account_id, note)
            return Effects(lesson=Lesson(float(pending["per_minute"]), note))
        if outcome == AttemptOutcome.READER_REFUSED:
            if self._ctx.probe.take_lesson(job.account_id) is None:
                return _NO_EFFECTS
            note = (
                "the refusals taken for a rate limit were readers' closed windows: nothing learned"
            )
            log.info("account %s: %s", job.account_id, note)
            return Effects(lesson=Lesson(None, note))
        return _NO_EFFECTS

    def _rate_limited(self, job: Job, judged: Judged, *, pace: float | None) -> Effects:
        gate, settings, probe = self._ctx.gate, self._ctx.settings, self._ctx.probe
        strikes, began = gate.rate_limited(job.account_id, streak_began=judged.streak_began)
        strikes = max(strikes, job.cooldown_strikes + 1)
        found: Lesson | None
        if strikes == 1:
            configured = gate.rate.per_minute
            sends, _ = gate.accepted_sends(job.account_id)
            found = lesson(
                sends=sends,
                refused_at=began,
                pace_per_minute=min(configured, pace or configured),
                configured_per_minute=configured,
                previous_per_minute=pace,
                proven_per_minute=job.pace_proven_per_minute,
            )
            if judged.tentative and found.per_minute is not None:
                probe.hold_lesson(
                    job.account_id, {"per_minute": found.per_minute, "note": found.note}
                )
                found = Lesson(
                    None,
                    f"{found.note}: pending, as the refusals came from readers never heard "
                    "from (learned once the lockout is proven)",
                )
        else:
            pending = probe.take_lesson(job.account_id)
            found = None
            if pending is not None:
                note = f"{pending['note']}; proven: the probe after the cooldown was refused"
                found = Lesson(float(pending["per_minute"]), note)
        pause = cooldown_seconds(
            strikes=strikes,
            base_seconds=settings.cooldown_base_seconds,
            max_seconds=settings.cooldown_max_seconds,
            growth=settings.cooldown_growth,
            rng=self._ctx.rng,
        )
        left = gate.cool_down(job.account_id, pause)
        told = f"; {found.note}" if found is not None else ""
        log.warning(
            "account %s rate limited (strike %d): it sends nothing for %.1fs, then one probe%s",
            job.account_id,
            strikes,
            left,
            told,
        )
        return Effects(cooldown_left=left, lesson=found, strikes=strikes)

    # -- after the call -------------------------------------------------------------

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
                return cooldown_left or settings.cooldown_base_seconds
            case Step.RETRY_SOON | Step.AWAIT_SESSION:
                # An expired session parks the chunk; AWAIT_SESSION still waits only
                # when the token was rotated during the call: try the new one at once.
                return RETRY_SOON_SECONDS
            case Step.BACK_OFF:
                return min(settings.max_countdown_seconds, self._ctx.backoff(job.failures + 1))
        return None

    def _finish(self, job: Job, judged: Judged, *, effects: Effects, pace: float | None) -> Turn:
        settings = self._ctx.settings
        result = judged.result
        view = ReaderView.of(job, settings=settings, now=utcnow())
        now = utcnow()

        def apply(db: Session, res: AttemptResult, decision: Decision) -> Applied:
            cooldown_until = None
            if effects.cooldown_left is not None:
                cooldown_until = now + dt.timedelta(seconds=effects.cooldown_left)
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
                drops_before_hold=settings.reader_drops_before_hold,
                lesson=effects.lesson,
                pace_memory_seconds=settings.pace_memory_seconds,
                cooldown_until=cooldown_until,
                strikes=effects.strikes,
            )
            again = judged if res is result else dataclasses.replace(judged, result=res)
            return apply_outcome(db, job=job, judged=again, decision=decision, plan=plan, now=now)

        recorded = record_outcome(
            self._ctx.engine,
            result=result,
            decision=self._decide(job, result),
            apply=apply,
            redecide=lambda failed: self._decide(job, failed),
            retry_delays=_within(_RECORD_RETRY_DELAYS, settings.send_lock_ttl_seconds / 2),
            stash=lambda: self._ctx.stash.put(job, result),
        )
        called = result.answer is not None or result.outcome == AttemptOutcome.TRANSIENT
        accepted = result.outcome in (AttemptOutcome.ACCEPTED, AttemptOutcome.UNCONFIRMED)
        if recorded is None:
            wait = self._ctx.spread(settings.outage_retry_seconds)
            summary = f"{job.label}: {result.outcome}, kept until the ledger is back"
            return Turn(Wait(wait, summary), called=called, accepted=accepted, pace_per_minute=pace)
        if not job.token:  # a recovered answer: the ledger holds it now
            self._ctx.stash.drop(job.attempt_id)
        result, decision, applied = recorded.result, recorded.decision, recorded.applied
        return Turn(
            self._after(job, result, decision, applied),
            called=called,
            accepted=accepted,
            offers=_offers(job, applied),
            pace_per_minute=pace,
        )

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
        if applied.wake_chat:
            self._ctx.wake(job.account_id, job.to_user_id)
        if applied.session_healed:
            self._ctx.wake_parked(job.account_id)
        if applied.reader_newly_dropping:
            self._ctx.reader_dropping(job.account_id, job.to_user_id)
        if applied.session_newly_expired:
            log.error(
                "account %s: session expired (%s); its sends are parked, spending no budget, "
                "until a good token is stored (delivery account add %s --token ...)",
                job.account_id,
                result.reason,
                job.account_id,
            )
        summary = f"{job.label} attempt {job.attempt_no}: {result.outcome} -> {step}"
        if applied.final_status is not None:
            summary = f"{summary}; message {applied.final_status}"
        if applied.parked == ParkReason.SESSION:
            return Done(f"{summary}; parked until the session heals")
        if applied.parked == ParkReason.READER:
            return Done(f"{summary}; the chat waits for its reader to write")
        if applied.released or wait is None:
            return Done(summary)
        return Done(f"{summary}; waits {wait:.2f}s in the account's line")


def _again(look: Look, due_in_seconds: float) -> Armed:
    """This chunk, offered to its line again (same generation), due in ``due_in_seconds``."""
    return Armed(
        look.chunk_id, look.generation, max(0.0, due_in_seconds), look.account_id, look.order
    )


def _offers(job: Job, applied: Applied) -> list[Armed]:
    offers = [item for item in applied.armed if item.account_id == job.account_id]
    if applied.wait_seconds is not None and not applied.released and applied.parked is None:
        offers.append(_again(job, applied.wait_seconds))
    return offers


def _within(delays: tuple[float, ...], budget_seconds: float) -> tuple[float, ...]:
    """The leading ``delays`` whose sum stays within ``budget_seconds``."""
    kept: list[float] = []
    for delay in delays:
        if sum(kept) + delay > budget_seconds:
            break
        kept.append(delay)
    return tuple(kept)


def _span(seconds: float) -> str:
    """``7 days``, ``36 hours``, ``90 s``: a duration as an operator reads it."""
    if seconds >= 2 * 86_400 and seconds % 86_400 == 0:
        return f"{seconds / 86_400:g} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} s"


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
