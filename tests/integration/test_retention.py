"""Retention: final messages go with their chunks and attempts, in small batches; open ones
never do, and dead letters only when asked. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, func, select, text, update

import delivery
from delivery import runtime
from delivery.api import pruning
from delivery.cli import cli
from delivery.errors import ConfigError
from delivery.ledger import attempts, outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Attempt, Base, Chunk, Message
from delivery.ledger.retention import prune_batch
from delivery.ledger.states import MessageStatus
from delivery.ledger.types import utcnow
from delivery.settings import load_settings
from delivery.worker import tasks
from delivery.worker.queues import BACKGROUND_PRIORITY, beat_schedule_for
from tests.conftest import Ledger
from tests.integration.conftest import ACCOUNT
from tests.support.configure import Configure
from tests.support.ledger_ops import accept_chunk

PEER = "o9cq80peer@im.wechat"
TWO_CHUNKS = "word " * 500  # 2,500 characters: two chunks of at most 2,000
FINAL = pruning.statuses(include_dead=True)
# A cutoff after everything the test wrote: every final message counts as past retention.
TOMORROW = dt.timedelta(days=1)


# --- the ledger as the pipeline leaves it -------------------------------------------------


def chunk_ids(ledger: Ledger, message_id: str) -> list[int]:
    with session_scope(ledger.engine) as db:
        query = select(Chunk.id).where(Chunk.message_id == int(message_id)).order_by(Chunk.seq)
        return list(db.scalars(query))


def send(ledger: Ledger, message_id: str, *, chunks: int | None = None) -> None:
    """As the pipeline does: an attempt row, then the platform's acceptance, chunk by chunk."""
    now = utcnow()
    every = chunk_ids(ledger, message_id)
    with session_scope(ledger.engine) as db:
        for chunk_id in every[:chunks]:
            attempts.start(
                db, chunk_id=chunk_id, attempt_no=1, context_token=None, host="t", now=now
            )
            accept_chunk(db, chunk_id, now=now)


def kill(ledger: Ledger, message_id: str) -> None:
    """An attempt that failed for good, and the message dead with it."""
    with session_scope(ledger.engine) as db:
        first = db.scalar(
            select(func.min(Chunk.id)).where(
                Chunk.message_id == int(message_id), Chunk.status == "pending"
            )
        )
        assert first is not None
        attempts.start(db, chunk_id=first, attempt_no=1, context_token=None, host="t", now=utcnow())
        outbox.kill(
            db, int(message_id), reason="refused (ret -1)", now=utcnow(), failed_chunk_id=first
        )


def supersede(ledger: Ledger, message_id: str) -> None:
    """Superseded as ``outbox.supersede`` leaves a message (final, ended at ``dead_at``),
    without the newer message with the same collapse key that would make it so."""
    with session_scope(ledger.engine) as db:
        db.execute(
            update(Message)
            .where(Message.id == int(message_id))
            .values(status=MessageStatus.SUPERSEDED, dead_at=utcnow(), dead_reason="superseded")
        )
        db.execute(
            update(Chunk)
            .where(Chunk.message_id == int(message_id), Chunk.status == "pending")
            .values(status="unsent")
        )


def age(ledger: Ledger, message_id: str, *, days: float) -> None:
    """As if the message had ended ``days`` ago."""
    then = utcnow() - dt.timedelta(days=days)
    with session_scope(ledger.engine) as db:
        message = db.get(Message, int(message_id))
        assert message is not None
        if message.delivered_at is not None:
            message.delivered_at = then
        if message.dead_at is not None:
            message.dead_at = then
        message.created_at = then - dt.timedelta(hours=1)


def rows(ledger: Ledger, message_id: str) -> tuple[str | None, int, int]:
    """The message's status (None once deleted), its chunks and attempts."""
    with session_scope(ledger.engine, readonly=True) as db:
        status = db.scalar(select(Message.status).where(Message.id == int(message_id)))
        chunks = db.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.message_id == int(message_id))
        )
        tries = db.scalar(
            select(func.count())
            .select_from(Attempt)
            .join(Chunk, Attempt.chunk_id == Chunk.id)
            .where(Chunk.message_id == int(message_id))
        )
        return status, int(chunks or 0), int(tries or 0)


def all_rows(
    ledger: Ledger, tables: tuple[type[Base], ...] = (Message, Chunk, Attempt)
) -> tuple[int, ...]:
    """How many rows each of ``tables`` holds."""
    with session_scope(ledger.engine, readonly=True) as db:
        return tuple(
            int(db.scalar(select(func.count()).select_from(table)) or 0) for table in tables
        )


@dataclass
class Ledgered:
    """One message in each state, with chunks and attempts."""

    delivered: str
    superseded: str
    dead: str
    queued: str
    sending: str
    open_rows: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)


@pytest.fixture
def every_state(account: str, ledger: Ledger) -> Ledgered:
    made = Ledgered(
        delivered=delivery.enqueue(account, PEER, TWO_CHUNKS),
        superseded=delivery.enqueue(account, PEER, "yesterday's leaderboard"),
        dead=delivery.enqueue(account, PEER, "refused"),
        queued=delivery.enqueue(account, PEER, "still queued"),
        sending=delivery.enqueue(account, PEER, TWO_CHUNKS),
    )
    send(ledger, made.delivered)
    supersede(ledger, made.superseded)
    kill(ledger, made.dead)
    send(ledger, made.sending, chunks=1)
    second = chunk_ids(ledger, made.sending)[1]
    with session_scope(ledger.engine) as db:  # its second chunk is in flight right now
        attempts.start(
            db, chunk_id=second, attempt_no=1, context_token=None, host="t", now=utcnow()
        )
    made.open_rows = {m: rows(ledger, m) for m in (made.queued, made.sending)}
    assert made.open_rows == {made.queued: ("queued", 1, 0), made.sending: ("sending", 2, 2)}
    assert rows(ledger, made.delivered) == ("delivered", 2, 2)
    return made


# --- what goes, what stays ------------------------------------------------------------------


def test_delivered_and_superseded_messages_go_with_their_chunks_and_attempts(
    every_state: Ledgered, ledger: Ledger
) -> None:
    # Given one message in each state, all ended before the cutoff
    # When the final ones are pruned as beat does (dead letters kept)
    pruned = pruning.prune(
        ledger.engine, before=utcnow() + TOMORROW, statuses=pruning.statuses(include_dead=False)
    )

    # Then the delivered and superseded ones are gone, with every chunk and attempt
    assert rows(ledger, every_state.delivered) == (None, 0, 0)
    assert rows(ledger, every_state.superseded) == (None, 0, 0)
    assert (pruned.messages, pruned.chunks, pruned.attempts) == (2, 3, 2)
    # And the dead letter and the open messages are untouched
    assert rows(ledger, every_state.dead) == ("dead", 1, 1)
    for message_id, before in every_state.open_rows.items():
        assert rows(ledger, message_id) == before


def test_nothing_open_is_ever_deleted_however_long_ago_it_was_enqueued(
    every_state: Ledgered, ledger: Ledger
) -> None:
    # Given open messages enqueued long ago
    for message_id in every_state.open_rows:
        age(ledger, message_id, days=365)

    # When every final state is pruned, with a cutoff after all of them
    pruning.prune(ledger.engine, before=utcnow() + TOMORROW, statuses=FINAL)

    # Then only the open messages are left, each with all its chunks and attempts
    assert all_rows(ledger) == (2, 3, 2)
    for message_id, before in every_state.open_rows.items():
        assert rows(ledger, message_id) == before
    # And asking for an open state is refused outright
    with session_scope(ledger.engine) as db, pytest.raises(ValueError, match="only final"):
        prune_batch(db, before=utcnow(), statuses={MessageStatus.QUEUED}, limit=10)


def test_a_replayed_dead_letter_is_not_pruned(account: str, ledger: Ledger) -> None:
    # Given a dead letter that an operator replayed (it is open again)
    message_id = delivery.enqueue(account, PEER, TWO_CHUNKS)
    send(ledger, message_id, chunks=1)
    kill(ledger, message_id)
    age(ledger, message_id, days=90)
    delivery.replay(message_id)

    # When dead letters are pruned too
    pruned = pruning.prune(ledger.engine, before=utcnow() + TOMORROW, statuses=FINAL)

    # Then the replayed message stays, queued, with its chunks and attempts
    assert pruned.messages == 0
    assert rows(ledger, message_id) == ("queued", 2, 2)


def test_dead_letters_go_only_when_asked(every_state: Ledgered, ledger: Ledger) -> None:
    cutoff = utcnow() + TOMORROW
    pruning.prune(ledger.engine, before=cutoff, statuses=pruning.statuses(include_dead=False))
    assert rows(ledger, every_state.dead) == ("dead", 1, 1)

    pruning.prune(ledger.engine, before=cutoff, statuses=pruning.statuses(include_dead=True))
    assert rows(ledger, every_state.dead) == (None, 0, 0)


def test_messages_that_ended_after_the_cutoff_stay(account: str, ledger: Ledger) -> None:
    # Given a message delivered 29 days ago and one 31 days ago
    recent, old = (delivery.enqueue(account, PEER, text) for text in ("recent", "old"))
    for message_id, days in ((recent, 29), (old, 31)):
        send(ledger, message_id)
        age(ledger, message_id, days=days)

    # When what ended more than 30 days ago is pruned
    before = pruning.cutoff(now=utcnow(), older_than_days=30)
    pruning.prune(ledger.engine, before=before, statuses=FINAL)

    # Then only the older one is gone
    assert rows(ledger, old) == (None, 0, 0)
    assert rows(ledger, recent) == ("delivered", 1, 1)


# --- small batches --------------------------------------------------------------------------


@dataclass
class Transactions:
    """What each committed transaction deleted from ``messages`` (engine events)."""

    deleted: list[int] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)


@pytest.fixture
def transactions(ledger: Ledger) -> Iterator[Transactions]:
    seen = Transactions()
    engine: Engine = ledger.engine

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM MESSAGES"):
            seen.deleted.append(cursor.rowcount)

    def committed(conn: Any) -> None:
        seen.batches.append(seen.deleted)
        seen.deleted = []

    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    yield seen
    event.remove(engine, "after_cursor_execute", executed)
    event.remove(engine, "commit", committed)


def test_each_batch_is_one_transaction_of_at_most_the_batch_size(
    account: str, ledger: Ledger, transactions: Transactions
) -> None:
    # Given seven delivered messages
    sent = [delivery.enqueue(account, PEER, f"briefing {i}") for i in range(7)]
    for message_id in sent:
        send(ledger, message_id)
    transactions.batches.clear()

    # When one batch of three is pruned
    with session_scope(ledger.engine) as db:
        first = prune_batch(db, before=utcnow() + TOMORROW, statuses=FINAL, limit=3)

    # Then three went, the oldest, and four are left
    assert first.messages == 3
    assert [rows(ledger, m)[0] for m in sent] == [None] * 3 + ["delivered"] * 4

    # And the rest go in transactions of at most three messages each
    transactions.batches.clear()
    pruning.prune(ledger.engine, before=utcnow() + TOMORROW, statuses=FINAL, batch_messages=3)
    assert [deleted for deleted in transactions.batches if deleted] == [[3], [1]]
    assert all_rows(ledger) == (0, 0, 0)


def test_a_batch_skips_a_message_another_transaction_holds(account: str, ledger: Ledger) -> None:
    if ledger.backend != "postgresql":
        pytest.skip("SQLite has a single writer: a batch waits for it, briefly")
    # Given two delivered messages, one of them locked by a transaction still open
    held, free = (delivery.enqueue(account, PEER, text) for text in ("held", "free"))
    send(ledger, held)
    send(ledger, free)
    with ledger.engine.connect() as other:
        other.execute(text("SELECT id FROM messages WHERE id = :id FOR UPDATE"), {"id": int(held)})

        # When a prune runs meanwhile
        pruned = pruning.prune(ledger.engine, before=utcnow() + TOMORROW, statuses=FINAL)

        # Then it did not wait: the free one went, the held one is left for the next run
        assert pruned.messages == 1
        other.rollback()
    assert rows(ledger, free) == (None, 0, 0)
    assert rows(ledger, held) == ("delivered", 1, 1)


# --- beat --------------------------------------------------------------------------------


def test_beat_prunes_delivered_and_superseded_past_retention_and_keeps_dead_letters(
    every_state: Ledgered, ledger: Ledger
) -> None:
    # Given every final message ended 31 days ago, and one delivered today
    for message_id in (every_state.delivered, every_state.superseded, every_state.dead):
        age(ledger, message_id, days=31)
    today = delivery.enqueue(ACCOUNT, PEER, "today's briefing")
    send(ledger, today)

    # When beat's task runs (default retention: 30 days)
    summary = tasks.prune()

    # Then the old delivered and superseded messages are gone; the rest stay
    assert summary.startswith("pruned 2 message(s), 3 chunk(s), 2 attempt(s)")
    assert rows(ledger, every_state.delivered)[0] is None
    assert rows(ledger, every_state.superseded)[0] is None
    assert rows(ledger, every_state.dead) == ("dead", 1, 1)
    assert rows(ledger, today) == ("delivered", 1, 1)
    for message_id, before in every_state.open_rows.items():
        assert rows(ledger, message_id) == before


def test_beat_schedules_retention_at_its_interval(configure: Configure) -> None:
    configure(retention_interval_seconds=120)
    entry = beat_schedule_for(runtime.current().settings)["delivery.prune"]
    assert (entry["task"], entry["schedule"]) == ("delivery.prune", 120.0)
    # a run not started within its interval expires; the reconciler goes before it
    assert entry["options"] == {"expires": 120.0, "priority": BACKGROUND_PRIORITY}


@pytest.mark.parametrize("value", ["0", "-3", "a month"])
def test_retention_days_must_be_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DELIVERY_RETENTION_DAYS", value)
    with pytest.raises(ConfigError, match=f"DELIVERY_RETENTION_DAYS='{value}'"):
        load_settings()


# --- delivery prune -------------------------------------------------------------------------


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["prune", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_prune_dry_run_says_how_many_would_go_and_deletes_nothing(
    every_state: Ledgered, ledger: Ledger
) -> None:
    for message_id in (every_state.delivered, every_state.superseded, every_state.dead):
        age(ledger, message_id, days=31)
    before = all_rows(ledger)

    output = run("--dry-run")

    assert "would delete 2 message(s) (1 delivered, 1 superseded)" in output
    assert "with 3 chunk(s) and 2 attempt(s); 1 dead kept; nothing deleted" in output
    assert all_rows(ledger) == before
    assert "would delete 3 message(s)" in run("--dry-run", "--include-dead")


def test_prune_shows_its_progress_and_deletes_what_ended_before_the_cutoff(
    every_state: Ledgered, ledger: Ledger
) -> None:
    # Given final messages that ended 10 days ago
    for message_id in (every_state.delivered, every_state.superseded, every_state.dead):
        age(ledger, message_id, days=10)

    # When the default (30 days) is pruned, nothing goes
    assert "deleted 0 message(s)" in run()

    # When a week is, with dead letters, one message per transaction
    output = run("--older-than", "7d", "--include-dead", "--batch-size", "1")

    # Then the bar reached its end and the three final messages went
    assert "pruning" in output and "100%" in output
    assert "deleted 3 message(s)" in output and "4 chunk(s) and 3 attempt(s)" in output
    assert all_rows(ledger) == (2, 3, 2)


def test_prune_refuses_a_cutoff_in_the_future(ledger: Ledger) -> None:
    result = CliRunner().invoke(cli, ["prune", "--older-than", "2999-01-01"])
    assert result.exit_code == 2
    assert "--older-than" in result.output and "must lie in the past" in result.output
