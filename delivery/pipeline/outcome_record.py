"""Recording an answer the platform already gave: never thrown away, never a loop.

The answer is applied in one transaction (:func:`~delivery.pipeline.outcome.apply_outcome`).
That transaction is retried while the ledger is unreachable, a few times within
the send lock; if the ledger stays away, the answer is stashed in Redis
(:mod:`delivery.pipeline.stash`) and the chunk's next run applies it instead of
calling the platform again. Any other error while recording (an answer the
database refuses to store, a bug) is not allowed to escape and loop the chunk:
the attempt is recorded as a transient failure with the error as its reason,
spending one unit of the chunk's failure budget.

Example::

    recorded = record_outcome(engine, result=result, decision=decision, apply=apply,
                              redecide=redecide, retry_delays=(0.1, 0.3), stash=stash_it)
    if recorded is None:     # stashed; try again later
        ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from delivery.errors import LedgerError
from delivery.ledger.attempts import AttemptResult
from delivery.ledger.db import session_scope
from delivery.ledger.states import AttemptOutcome
from delivery.pipeline.outcome import Applied
from delivery.policy.outcomes import Decision

__all__ = ["Recorded", "record_outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """What was recorded: the outcome applied, and the result and decision it was for."""

    applied: Applied
    result: AttemptResult
    decision: Decision


def record_outcome(
    engine: Engine,
    *,
    result: AttemptResult,
    decision: Decision,
    apply: Callable[[Session, AttemptResult, Decision], Applied],
    redecide: Callable[[AttemptResult], Decision],
    retry_delays: Sequence[float],
    stash: Callable[[], bool],
) -> Recorded | None:
    """Apply the outcome, retrying while the ledger is away; None once stashed.

    ``redecide`` gives the decision for the failure recorded when the answer
    itself cannot be stored; ``stash`` keeps the answer for the next run.
    """
    current, current_decision = result, decision
    for delay in (*retry_delays, None):
        try:
            with session_scope(engine) as db:
                return Recorded(apply(db, current, current_decision), current, current_decision)
        except LedgerError as exc:
            if delay is None:
                log.error("the answer (%s) could not be recorded: %s", result.reason, exc)
                break
            log.warning("recording the answer failed (%s); again in %.1fs", exc, delay)
            time.sleep(delay)
        except Exception as exc:  # an answer the database refuses, or a bug: never a loop
            if current is not result:
                raise
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            log.exception("the answer (%s) could not be recorded", result.reason)
            current = AttemptResult(
                AttemptOutcome.TRANSIENT,
                f"the answer ({result.reason}) could not be recorded "
                f"({type(exc).__name__}: {first_line}); counted as a failure",
                None,
                result.duration_ms,
            )
            current_decision = redecide(current)
    if stash():
        log.warning("the answer (%s) is kept in Redis until the ledger is back", result.reason)
    return None
