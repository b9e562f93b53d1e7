"""Retention of the inbound relay's rows: a message received before the cutoff goes with
its hand-overs and their attempts once none of them is pending; one the agent has not
had yet stays, however old; duplicates and malformed items go by age alone. On SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text

import delivery
from delivery.api import pruning
from delivery.ledger import handovers, inbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Handover, HandoverAttempt, InboundMessage
from delivery.ledger.retention import prune_inbound_batch
from delivery.ledger.states import HandoverChannel
from delivery.ledger.types import utcnow
from delivery.worker import tasks
from tests.conftest import Ledger
from tests.integration.test_retention import ACCOUNT, PEER, TOMORROW, age, all_rows, rows, run, send

WEBHOOK, TASK = HandoverChannel.WEBHOOK, HandoverChannel.TASK
_platform_ids = itertools.count(7_318_000_000)


# --- the ledger as the relay leaves it ----------------------------------------------------


def receive(
    ledger: Ledger, words: str, *, days_ago: float, channels: tuple[str, ...] = (WEBHOOK,)
) -> int:
    """A reader's message as a poll records it ``days_ago``: its row, a hand-over per
    channel, the first attempt of each claimed by the relay (in flight)."""
    then = utcnow() - dt.timedelta(days=days_ago)
    with session_scope(ledger.engine) as db:
        recorded = inbox.record(
            db,
            account_id=ACCOUNT,
            platform_message_id=str(next(_platform_ids)),
            peer_id=PEER,
            text=words,
            item_types="1",
            fingerprint=f"fp:{words}"[:32],
            written_at=then,
            received_at=then,
            dedupe_seconds=10,
        )
        assert recorded.inbound_id is not None
        if recorded.new:
            handovers.open_handovers(
                db,
                inbound_id=recorded.inbound_id,
                channels=channels,
                now=then,
                claim_seconds=30,
                host="relay-1",
            )
    return recorded.inbound_id


def attempt(ledger: Ledger, inbound_id: int, channel: str, *, delivered: bool) -> None:
    """The relay records what its attempt in flight did; a failed one is due again at once
    and claimed again (its next attempt in flight)."""
    now = utcnow()
    with session_scope(ledger.engine) as db:
        attempt_no = db.scalar(
            select(Handover.attempt_count).where(
                Handover.inbound_id == inbound_id, Handover.channel == channel
            )
        )
        assert attempt_no is not None
        handovers.finish(
            db,
            inbound_id=inbound_id,
            channel=channel,
            attempt_no=attempt_no,
            now=now,
            delivered=delivered,
            detail="HTTP 204" if delivered else "HTTP 503",
            retry_at=now,
        )
        if not delivered:
            again = handovers.claim(
                db, inbound_id=inbound_id, channel=channel, now=now, claim_seconds=30, host="t"
            )
            assert again == attempt_no + 1


def malformed(ledger: Ledger, *, days_ago: float) -> int:
    then = utcnow() - dt.timedelta(days=days_ago)
    with session_scope(ledger.engine) as db:
        inbound_id = inbox.record_malformed(
            db,
            account_id=ACCOUNT,
            reason="no sender",
            raw_excerpt='{"message_id": 1}',
            platform_message_id=None,
            peer_id=None,
            received_at=then,
        )
    assert inbound_id is not None
    return inbound_id


def inbound_rows(ledger: Ledger, inbound_id: int) -> tuple[str | None, int, int]:
    """The inbound message's status (None once deleted), its hand-overs and attempts."""
    with session_scope(ledger.engine, readonly=True) as db:
        status = db.scalar(select(InboundMessage.status).where(InboundMessage.id == inbound_id))
        handed = db.scalar(select(func.count()).where(Handover.inbound_id == inbound_id))
        tried = db.scalar(select(func.count()).where(HandoverAttempt.inbound_id == inbound_id))
        return status, int(handed or 0), int(tried or 0)


def all_inbound_rows(ledger: Ledger) -> tuple[int, ...]:
    return all_rows(ledger, (InboundMessage, Handover, HandoverAttempt))


@dataclass
class Received:
    """One inbound message in each state the relay leaves, all received at one time."""

    handed: int  # by the task and the webhook, the webhook at its second attempt
    waiting: int  # the task took it; the webhook failed and its next attempt is in flight
    in_flight: int  # its first hand-over is being attempted right now
    duplicate: int  # the same text again under a new id: no hand-over
    malformed: int  # no hand-over

    @property
    def settled(self) -> list[int]:
        return [self.handed, self.duplicate, self.malformed]

    @property
    def unsettled(self) -> list[int]:
        return [self.waiting, self.in_flight]


def received(ledger: Ledger, *, days_ago: float) -> Received:
    tag = f"{days_ago}d"
    made = Received(
        handed=receive(ledger, f"handed {tag}", days_ago=days_ago, channels=(TASK, WEBHOOK)),
        waiting=receive(ledger, f"waiting {tag}", days_ago=days_ago, channels=(TASK, WEBHOOK)),
        in_flight=receive(ledger, f"in flight {tag}", days_ago=days_ago),
        duplicate=receive(ledger, f"handed {tag}", days_ago=days_ago),
        malformed=malformed(ledger, days_ago=days_ago),
    )
    attempt(ledger, made.handed, TASK, delivered=True)
    attempt(ledger, made.handed, WEBHOOK, delivered=False)
    attempt(ledger, made.handed, WEBHOOK, delivered=True)
    attempt(ledger, made.waiting, TASK, delivered=True)
    attempt(ledger, made.waiting, WEBHOOK, delivered=False)
    assert inbound_rows(ledger, made.handed) == ("received", 2, 3)
    assert inbound_rows(ledger, made.waiting) == ("received", 2, 3)
    assert inbound_rows(ledger, made.in_flight) == ("received", 1, 1)
    assert inbound_rows(ledger, made.duplicate) == ("duplicate", 0, 0)
    assert inbound_rows(ledger, made.malformed) == ("malformed", 0, 0)
    return made


# --- what goes, what stays ------------------------------------------------------------------


def test_handed_over_inbound_messages_past_retention_go_with_their_hand_overs_and_attempts(
    account: str, ledger: Ledger
) -> None:
    # Given inbound messages in every state, received 31 days ago
    old = received(ledger, days_ago=31)

    # When what is past 30 days is pruned
    pruned = pruning.prune(
        ledger.engine,
        before=pruning.cutoff(now=utcnow(), older_than_days=30),
        statuses=pruning.statuses(include_dead=False),
    )

    # Then the handed-over message is gone with both hand-overs and all three attempts,
    # and the duplicate and the malformed item with it
    for inbound_id in old.settled:
        assert inbound_rows(ledger, inbound_id) == (None, 0, 0)
    assert (pruned.inbound_messages, pruned.inbound_handovers, pruned.inbound_attempts) == (
        3,
        2,
        3,
    )
    assert (pruned.messages, pruned.chunks, pruned.attempts) == (0, 0, 0)
    # And the two the agent has not had yet stay, with every hand-over and attempt
    assert inbound_rows(ledger, old.waiting) == ("received", 2, 3)
    assert inbound_rows(ledger, old.in_flight) == ("received", 1, 1)


def test_an_inbound_message_not_yet_handed_over_stays_however_old(
    account: str, ledger: Ledger
) -> None:
    # Given messages received a year ago whose hand-over is pending: one channel failed
    # (another took it), one in flight, and one handed to a broker that restarted since
    reopened = receive(ledger, "lost with the broker", days_ago=365, channels=(TASK,))
    attempt(ledger, reopened, TASK, delivered=True)
    with session_scope(ledger.engine) as db:
        assert handovers.reopen_tasks(
            db,
            broker_run_id="new-run",
            handed_over_since=utcnow() - dt.timedelta(minutes=5),
            now=utcnow(),
        )
    old = received(ledger, days_ago=365)  # (handed over to the new broker)

    # When everything received before tomorrow is pruned
    pruned = pruning.prune(
        ledger.engine, before=utcnow() + TOMORROW, statuses=pruning.statuses(include_dead=True)
    )

    # Then only the settled ones went; each pending one stays whole
    assert pruned.inbound_messages == 3
    assert inbound_rows(ledger, old.waiting) == ("received", 2, 3)
    assert inbound_rows(ledger, old.in_flight) == ("received", 1, 1)
    assert inbound_rows(ledger, reopened) == ("received", 1, 1)

    # And once the agent has them, the next prune takes them
    attempt(ledger, old.waiting, WEBHOOK, delivered=True)
    attempt(ledger, old.in_flight, WEBHOOK, delivered=True)
    pruned = pruning.prune(
        ledger.engine, before=utcnow() + TOMORROW, statuses=pruning.statuses(include_dead=True)
    )
    assert pruned.inbound_messages == 2
    assert all_inbound_rows(ledger) == (1, 1, 1)  # the reopened one, still pending


def test_inbound_messages_received_after_the_cutoff_stay(account: str, ledger: Ledger) -> None:
    # Given messages in every state received 29 days ago, and as many 31 days ago
    recent = received(ledger, days_ago=29)
    old = received(ledger, days_ago=31)

    # When what is past 30 days is pruned
    pruning.prune(
        ledger.engine,
        before=pruning.cutoff(now=utcnow(), older_than_days=30),
        statuses=pruning.statuses(include_dead=False),
    )

    # Then the old settled ones are gone, the duplicate and the malformed item by age alone
    for inbound_id in old.settled:
        assert inbound_rows(ledger, inbound_id)[0] is None
    # And every recent one stays, whatever its state
    assert [inbound_rows(ledger, i)[0] for i in (*recent.settled, *recent.unsettled)] == [
        "received",
        "duplicate",
        "malformed",
        "received",
        "received",
    ]


# --- small batches --------------------------------------------------------------------------


def test_inbound_batches_go_oldest_first_at_most_the_batch_size(
    account: str, ledger: Ledger
) -> None:
    # Given five handed-over messages received 35 down to 31 days ago
    ids = [receive(ledger, f"message {days}", days_ago=days) for days in (35, 34, 33, 32, 31)]
    for inbound_id in ids:
        attempt(ledger, inbound_id, WEBHOOK, delivered=True)

    # When one batch of two is pruned
    with session_scope(ledger.engine) as db:
        first = prune_inbound_batch(db, before=utcnow(), limit=2)

    # Then the two oldest went
    assert (first.inbound_messages, first.inbound_handovers, first.inbound_attempts) == (2, 2, 2)
    assert [inbound_rows(ledger, i)[0] for i in ids] == [None] * 2 + ["received"] * 3

    # And the rest go in batches of at most two
    batches: list[int] = []
    pruning.prune(
        ledger.engine,
        before=utcnow(),
        statuses=pruning.statuses(include_dead=False),
        batch_messages=2,
        on_batch=lambda batch: batches.append(batch.inbound_messages),
    )
    assert [n for n in batches if n] == [2, 1]
    assert all_inbound_rows(ledger) == (0, 0, 0)


def test_an_inbound_batch_skips_a_message_another_transaction_holds(
    account: str, ledger: Ledger
) -> None:
    if ledger.backend != "postgresql":
        pytest.skip("SQLite has a single writer: a batch waits for it, briefly")
    # Given two handed-over messages, one of them locked by a transaction still open
    held, free = (receive(ledger, words, days_ago=31) for words in ("held", "free"))
    for inbound_id in (held, free):
        attempt(ledger, inbound_id, WEBHOOK, delivered=True)
    with ledger.engine.connect() as other:
        other.execute(
            text("SELECT id FROM inbound_messages WHERE id = :id FOR UPDATE"), {"id": held}
        )

        # When a prune runs meanwhile
        pruned = pruning.prune(
            ledger.engine, before=utcnow(), statuses=pruning.statuses(include_dead=False)
        )

        # Then it did not wait: the free one went, the held one is left for the next run
        assert pruned.inbound_messages == 1
        other.rollback()
    assert inbound_rows(ledger, free) == (None, 0, 0)
    assert inbound_rows(ledger, held) == ("received", 1, 1)


# --- beat and delivery prune ----------------------------------------------------------------


def test_beat_prunes_inbound_messages_past_retention_beside_outbound_ones_and_logs_it(
    account: str, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a delivered message and inbound messages in every state, all 31 days old
    sent = delivery.enqueue(ACCOUNT, PEER, "an old briefing")
    send(ledger, sent)
    age(ledger, sent, days=31)
    received(ledger, days_ago=31)

    # When beat's task runs (default retention: 30 days)
    with caplog.at_level(logging.INFO, logger="delivery.api.pruning"):
        summary = tasks.prune()

    # Then both sides went, and the result and the log say so, table by table
    went = (
        "1 message(s), 1 chunk(s), 1 attempt(s) that ended before",
        "; 3 inbound message(s), 2 hand-over(s), 3 hand-over attempt(s) received before",
    )
    assert summary.startswith(f"pruned {went[0]}") and went[1] in summary
    assert all(part in caplog.text for part in went)
    assert rows(ledger, sent) == (None, 0, 0)
    assert all_inbound_rows(ledger) == (2, 3, 4)  # the two not handed over yet


def test_prune_dry_run_counts_inbound_rows_and_deletes_nothing(
    account: str, ledger: Ledger
) -> None:
    # Given inbound messages in every state received 31 days ago, and as many 29 days ago
    received(ledger, days_ago=31)
    received(ledger, days_ago=29)
    before = all_inbound_rows(ledger)

    # When a dry run asks what the default (30 days) would prune
    output = run("--dry-run")

    # Then it counts the old settled ones, table by table, and deletes nothing
    assert "would delete 0 message(s)" in output  # the outbound line as before
    assert "would delete 3 inbound message(s) received before" in output
    assert "with 2 hand-over(s) and 3 hand-over attempt(s); nothing deleted" in output
    assert all_inbound_rows(ledger) == before
    assert "would delete 6 inbound message(s)" in run("--dry-run", "--older-than", "28d")


def test_prune_deletes_inbound_rows_and_shows_its_progress(account: str, ledger: Ledger) -> None:
    # Given inbound messages in every state received 10 days ago
    received(ledger, days_ago=10)

    # When the default (30 days) is pruned, nothing goes
    assert "deleted 0 inbound message(s)" in run()

    # When a week is, one message per transaction
    output = run("--older-than", "7d", "--batch-size", "1")

    # Then the bar reached its end and the settled ones went, counted per table
    assert "pruning" in output and "100%" in output
    assert "deleted 0 message(s)" in output
    assert "deleted 3 inbound message(s)" in output
    assert "with 2 hand-over(s) and 3 hand-over attempt(s)" in output
    assert all_inbound_rows(ledger) == (2, 3, 4)
    assert all_rows(ledger) == (0, 0, 0)
