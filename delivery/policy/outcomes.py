"""What one attempt's outcome does next: a pure decision, applied by the pipeline.

======================  =====================================================
outcome                 next
======================  =====================================================
accepted                chunk sent; message delivered if it was the last
unconfirmed             the same (the API took it); the message ends unconfirmed
rate_limited            account-wide cooldown; wait it out; no budget spent
reader_refused          this chat waits for its reader (parked until they write
                        or the hold limit); no budget, no cooldown, nothing learned
refused                 a bare -2 not decided yet: the chat is held the same way
                        while the next send of the account decides (the caller
                        turns it into rate_limited or reader_refused when it can)
session_expired         account marked expired; wait for a good token; no budget
stale_context           with a context token: drop the token, retry soon;
                        without one: this chat's trouble, not the account's:
                        spend one failure and back off (the session check
                        tells an expired session apart with getconfig)
transient               spend one failure; back off; dead when the budget is gone
permanent               dead at once, with the platform's reason
======================  =====================================================

Example::

    decide(AttemptOutcome.TRANSIENT, reason="HTTP 502 from the platform", failures=24,
           max_failures=25, used_context_token=False, last_chunk=False)
    # Decision(step=Step.DEAD, spend_failure=True,
    #          dead_reason='gave up after 25 failed attempts; last: HTTP 502 ...')
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from delivery.ledger.states import AttemptOutcome

__all__ = ["Decision", "Step", "decide"]


class Step(enum.StrEnum):
    SENT = "sent"  # this chunk is done; more chunks follow
    DELIVERED = "delivered"  # this was the last chunk
    COOL_DOWN = "cool_down"  # account-wide cooldown, then try again
    AWAIT_READER = "await_reader"  # this chat waits for its reader to write
    AWAIT_SESSION = "await_session"  # account expired: wait for a good token
    RETRY_SOON = "retry_soon"  # retry at once (without the stale context token)
    BACK_OFF = "back_off"  # transient failure: exponential backoff
    DEAD = "dead"  # give the message up, with dead_reason


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt. Effects (SQL, Redis, broker) are the pipeline's."""

    step: Step
    spend_failure: bool = False
    dead_reason: str | None = None
    expire_session: bool = False
    drop_context_token: bool = False


def decide(
    outcome: AttemptOutcome,
    *,
    reason: str,
    failures: int,
    max_failures: int,
    used_context_token: bool,
    last_chunk: bool,
) -> Decision:
    """The next step after an attempt that ended in ``outcome``.

    ``failures`` is the chunk's transient failures before this attempt.

    Raises:
        ValueError: ``outcome`` is not the outcome of a finished attempt.
    """
    match outcome:
        case AttemptOutcome.ACCEPTED | AttemptOutcome.UNCONFIRMED:
            return Decision(Step.DELIVERED if last_chunk else Step.SENT)
        case AttemptOutcome.RATE_LIMITED:
            return Decision(Step.COOL_DOWN)
        case AttemptOutcome.READER_REFUSED | AttemptOutcome.REFUSED:
            return Decision(Step.AWAIT_READER)
        case AttemptOutcome.SESSION_EXPIRED:
            return Decision(Step.AWAIT_SESSION, expire_session=True)
        case AttemptOutcome.STALE_CONTEXT if used_context_token:
            return Decision(Step.RETRY_SOON, drop_context_token=True)
        case AttemptOutcome.TRANSIENT | AttemptOutcome.STALE_CONTEXT if (
            failures + 1 >= max_failures
        ):
            return Decision(
                Step.DEAD,
                spend_failure=True,
                dead_reason=f"gave up after {failures + 1} failed attempts; last: {reason}",
            )
        case AttemptOutcome.TRANSIENT | AttemptOutcome.STALE_CONTEXT:
            return Decision(Step.BACK_OFF, spend_failure=True)
        case AttemptOutcome.PERMANENT:
            return Decision(Step.DEAD, dead_reason=f"refused by the platform: {reason}")
    raise ValueError(f"{outcome!r} is not the outcome of a finished attempt")
