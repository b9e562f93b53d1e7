"""The one module that writes ``attempts``: start, record, close the lost.

An attempt row is written (``in_flight``) and committed before the platform is
called, so a worker killed mid-call leaves a trace; the answer completes it in
the transaction that moves chunk and message. Whatever the platform answers is
*cleaned* before it is stored: NUL characters and lone surrogates removed,
lengths cut, numbers clamped to the column's 32 bits (the raw value is kept in
``detail``), so no answer can make the outcome's transaction fail and loop the
chunk. Every outcome given (answered, lost, decided by a probe) is counted in
:mod:`delivery.ledger.counters` in the same transaction.

Example::

    with session_scope(engine) as db:
        attempt_id = start(db, chunk_id=7, attempt_no=1, context_token=None,
                           host="worker-1", now=utcnow())
    ...call the platform...
    with session_scope(engine) as db:
        record(db, attempt_id, result)
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, Update, bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from delivery.ilink.classify import Answer
from delivery.ledger import counters
from delivery.ledger.models import Attempt
from delivery.ledger.readers import fingerprint
from delivery.ledger.states import AttemptOutcome
from delivery.ledger.types import clean_text

__all__ = [
    "LOST_DETAIL",
    "AttemptResult",
    "close_lost",
    "in_flight_since",
    "reclassify",
    "record",
    "start",
]

ERRMSG_CHARS = 500  # the platform's errmsg is short; a pathological one is cut
DETAIL_CHARS = 2000  # what the pipeline says about an attempt
HOST_CHARS = 255
MESSAGE_ID_CHARS = 32  # a uint64 has 20 digits
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
LOST_DETAIL = "the worker stopped before the answer was recorded; it may have arrived"


@dataclass(frozen=True)
class AttemptResult:
    """What came back from one call: the raw answer (if any) and its class."""

    outcome: AttemptOutcome
    reason: str
    answer: Answer | None
    duration_ms: int


def _clamped(value: int | None, name: str, notes: list[str]) -> int | None:
    if value is None or _INT32_MIN <= value <= _INT32_MAX:
        return value
    notes.append(f"{name} {value} out of range")
    return max(_INT32_MIN, min(_INT32_MAX, value))


def start(
    db: Session,
    *,
    chunk_id: int,
    attempt_no: int,
    context_token: str | None,
    host: str,
    now: dt.datetime,
) -> int:
    """Write the ``in_flight`` row before the call; return its id."""
    attempt_id: int | None = db.connection().scalar(
        _start_statement(),
        {
            "chunk_id": chunk_id,
            "attempt_no": attempt_no,
            "started_at": now,
            "outcome": AttemptOutcome.IN_FLIGHT.value,
            "used_context_token": context_token is not None,
            "context_token_fingerprint": fingerprint(context_token) if context_token else None,
            "worker_host": clean_text(host, limit=HOST_CHARS),
        },
    )
    assert attempt_id is not None
    return attempt_id


# Statements of the send path, built once: a statement made anew costs more Python than
# SQLite takes to run it.
@functools.cache
def _start_statement() -> ReturningInsert[int]:
    table = _table()
    names = (
        "chunk_id",
        "attempt_no",
        "started_at",
        "outcome",
        "used_context_token",
        "context_token_fingerprint",
        "worker_host",
    )
    return insert(table).values({name: bindparam(name) for name in names}).returning(table.c.id)


@functools.cache
def _record_statement() -> Update:
    table = _table()
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in _RECORDED})
    )


_RECORDED = (
    "outcome",
    "duration_ms",
    "http_status",
    "ret",
    "errcode",
    "errmsg",
    "platform_message_id",
    "detail",
)


def _table() -> Table:
    return cast(Table, Attempt.__table__)


def record(db: Session, attempt_id: int, result: AttemptResult) -> None:
    """Complete the attempt row with the (cleaned) raw answer and its class."""
    answer = result.answer
    notes: list[str] = []
    values: dict[str, object] = dict.fromkeys(_RECORDED)
    values.update(outcome=result.outcome.value, duration_ms=result.duration_ms)
    if answer is not None:
        values.update(
            http_status=_clamped(answer.http_status, "HTTP status", notes),
            ret=_clamped(answer.ret, "ret", notes),
            errcode=_clamped(answer.errcode, "errcode", notes),
            errmsg=clean_text(answer.errmsg, limit=ERRMSG_CHARS) or None,
            platform_message_id=clean_text(answer.message_id, limit=MESSAGE_ID_CHARS) or None,
        )
    detail = None
    if result.outcome != AttemptOutcome.ACCEPTED:
        detail = result.reason
        if answer is not None and not answer.json_ok:
            detail = f"{result.reason}: {answer.excerpt!r}"
    if notes:
        detail = "; ".join([detail, *notes] if detail else notes)
    values["detail"] = clean_text(detail, limit=DETAIL_CHARS)
    done = db.connection().execute(_record_statement(), {"b_id": attempt_id, **values})
    counters.add_attempts(db, result.outcome, n=_rowcount(done))


def reclassify(
    db: Session, attempt_ids: Collection[int], *, outcome: AttemptOutcome, note: str
) -> None:
    """A later attempt decided what these attempts' answers meant (a bare refusal:
    the reader's window, or the account's limit); the raw answer stays."""
    if attempt_ids:
        decided = db.execute(
            update(Attempt)
            .where(Attempt.id.in_(sorted(attempt_ids)))
            .values(
                outcome=outcome,
                detail=func.substr(
                    func.coalesce(Attempt.detail + "; ", "") + note, 1, DETAIL_CHARS
                ),
            )
        )
        counters.add_attempts(db, outcome, n=_rowcount(decided))


def close_lost(db: Session, chunk_id: int) -> int:
    """Attempts still ``in_flight`` belong to a worker that died mid-call: mark them lost.

    Call it under the account's send lock, before the chunk's next attempt.
    """
    result = db.execute(
        update(Attempt)
        .where(Attempt.chunk_id == chunk_id, Attempt.outcome == AttemptOutcome.IN_FLIGHT)
        .values(outcome=AttemptOutcome.LOST, detail=LOST_DETAIL)
    )
    lost = _rowcount(result)
    counters.add_attempts(db, AttemptOutcome.LOST, n=lost)
    return lost


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def in_flight_since(db: Session, chunk_id: int, *, since: dt.datetime) -> list[int]:
    """Ids of the chunk's attempts started after ``since`` that have no answer yet."""
    return list(
        db.scalars(
            select(Attempt.id).where(
                Attempt.chunk_id == chunk_id,
                Attempt.outcome == AttemptOutcome.IN_FLIGHT,
                Attempt.started_at > since,
            )
        )
    )
