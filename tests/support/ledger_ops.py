"""Moving the ledger as the pipeline does, for tests that need rows in a given state."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from delivery.ledger import outbox
from delivery.ledger.states import AttemptOutcome


def accept_chunk(
    db: Session,
    chunk_id: int,
    *,
    now: dt.datetime,
    attempt_no: int = 1,
    outcome: str = AttemptOutcome.ACCEPTED,
) -> outbox.Accepted:
    """The platform accepted the chunk: as the pipeline records it (no gap to the next)."""
    look = outbox.look(db, chunk_id)
    assert look is not None, f"chunk {chunk_id} is not in the ledger"
    return outbox.accept(
        db, look=look, attempt_no=attempt_no, outcome=outcome, now=now, gap_seconds=0.0
    )
