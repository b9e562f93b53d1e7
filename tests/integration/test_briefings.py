"""Briefings: defined in SQL, each slot claimed once, produced and enqueued idempotently."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from delivery.briefings import add_briefing, list_briefings, remove_briefing
from delivery.briefings.runner import claim_due_slots, run_slot
from delivery.errors import BriefingError, UnknownAccount
from delivery.ledger.db import session_scope
from delivery.ledger.models import Briefing, BriefingRun, Message
from delivery.ledger.types import utcnow
from tests.conftest import Ledger
from tests.integration.conftest import ACCOUNT

READERS = ("alice@im.wechat", "bob@im.wechat")


def define(name: str, producer: str, schedule: str = "every 1h") -> None:
    add_briefing(
        name,
        account_id=ACCOUNT,
        recipients=READERS,
        producer=f"tests.support.producers:{producer}",
        schedule=schedule,
    )


def a_slot_later(hours: float = 1.01) -> dt.datetime:
    return utcnow() + dt.timedelta(hours=hours)


def messages(ledger: Ledger) -> list[tuple[str, str | None]]:
    with session_scope(ledger.engine) as session:
        return list(session.execute(select(Message.to_user_id, Message.source)))


def test_define_list_and_remove(account: str) -> None:
    define("daily", "hello", "0 8 * * 1-5")
    [info] = list_briefings()
    assert info.name == "daily"
    assert info.recipients == READERS
    assert info.next_slot_at is not None and info.next_slot_at.hour == 8
    assert remove_briefing("daily")
    assert not remove_briefing("daily")
    assert list_briefings() == []


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"producer": "tests.support.producers:nothing"}, BriefingError, "no callable"),
        ({"producer": "no.such.module:fn"}, BriefingError, "cannot import"),
        ({"producer": "not a path"}, BriefingError, "package.module:callable"),
        ({"schedule": "at dawn"}, BriefingError, "neither"),
        ({"timezone": "Mars/Olympus"}, BriefingError, "unknown time zone"),
        ({"recipients": []}, BriefingError, "no recipients"),
        ({"account_id": "ghost"}, UnknownAccount, "ghost"),
        ({"name": "has space"}, BriefingError, "briefing name"),
    ],
)
def test_bad_definitions_are_refused(
    account: str, change: dict[str, object], error: type[Exception], words: str
) -> None:
    options: dict[str, object] = {
        "name": "daily",
        "account_id": ACCOUNT,
        "recipients": READERS,
        "producer": "tests.support.producers:hello",
        "schedule": "every 1h",
    }
    options.update(change)
    name = options.pop("name")
    with pytest.raises(error, match=words):
        add_briefing(name, **options)  # type: ignore[arg-type]
    assert list_briefings() == []


def test_a_slot_is_claimed_once_even_by_racing_beats(account: str, ledger: Ledger) -> None:
    define("daily", "hello")
    later = a_slot_later()
    claimed: list[int] = []
    barrier = threading.Barrier(4)

    def beat() -> None:
        barrier.wait()
        claimed.extend(claim_due_slots(ledger.engine, now=later, misfire_grace_seconds=7200))

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(claimed) == 1
    with session_scope(ledger.engine) as session:
        assert session.scalar(select(func.count()).select_from(BriefingRun)) == 1


def test_a_slot_before_the_briefing_existed_or_long_missed_is_not_run(
    account: str, ledger: Ledger
) -> None:
    define("daily", "hello")
    with session_scope(ledger.engine) as session:
        created = session.scalars(select(Briefing.created_at)).one()
    # At its creation the latest slot is before it: nothing runs until the next one.
    assert claim_due_slots(ledger.engine, now=created, misfire_grace_seconds=7200) == []
    # Half an hour after a slot, with a minute's grace, that slot is missed for good.
    half_past = created.replace(minute=30, second=0, microsecond=0) + dt.timedelta(hours=3)
    assert claim_due_slots(ledger.engine, now=half_past, misfire_grace_seconds=60) == []


def test_a_run_enqueues_one_message_per_reader_and_twice_changes_nothing(
    account: str, ledger: Ledger
) -> None:
    define("board", "per_reader")
    [run_id] = claim_due_slots(ledger.engine, now=a_slot_later(), misfire_grace_seconds=7200)

    summary = run_slot(ledger.engine, run_id, lease_seconds=60)
    with session_scope(ledger.engine) as session:
        session.get(BriefingRun, run_id).status = "pending"  # type: ignore[union-attr]
    run_slot(ledger.engine, run_id, lease_seconds=60)  # a redelivered task

    assert "2 message(s)" in summary
    assert sorted(messages(ledger)) == [
        ("alice@im.wechat", "briefing:board"),
        ("bob@im.wechat", "briefing:board"),
    ]


def test_a_run_another_worker_started_is_left_to_it_until_its_lease_ends(
    account: str, ledger: Ledger
) -> None:
    define("slow", "hello")
    [run_id] = claim_due_slots(ledger.engine, now=a_slot_later(), misfire_grace_seconds=7200)
    with session_scope(ledger.engine) as session:
        run = session.get(BriefingRun, run_id)
        assert run is not None
        run.status = "running"  # another worker is calling the producer
        run.claimed_at = utcnow()

    assert "running elsewhere" in run_slot(ledger.engine, run_id, lease_seconds=60)
    assert messages(ledger) == []
    # Its lease over, the worker is presumed dead and the slot runs here.
    assert "2 message(s)" in run_slot(ledger.engine, run_id, lease_seconds=0)


@pytest.mark.parametrize(
    ("producer", "error"),
    [
        ("broken", "RuntimeError: the leaderboard database is down"),
        ("returns_a_number", "producer returned int"),
        ("blank", "text is only whitespace"),
    ],
)
def test_a_failing_producer_fails_its_run_only(
    account: str, ledger: Ledger, producer: str, error: str
) -> None:
    define("bad", producer)
    define("good", "hello")
    run_ids = claim_due_slots(ledger.engine, now=a_slot_later(), misfire_grace_seconds=7200)

    summaries = [run_slot(ledger.engine, run_id, lease_seconds=60) for run_id in run_ids]

    assert any("failed" in s for s in summaries)
    by_name = {info.name: info for info in list_briefings()}
    assert by_name["bad"].last_status == "failed"
    assert by_name["bad"].last_error is not None and error in by_name["bad"].last_error
    assert by_name["good"].last_status == "enqueued"
    assert len(messages(ledger)) == 2
