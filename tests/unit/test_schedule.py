"""Briefing schedules: pure slot arithmetic, every N and crontab, in time zones."""

from __future__ import annotations

import datetime as dt

import pytest

from delivery.briefings.schedule import Every, latest_slot, next_slot, parse_schedule
from delivery.errors import BriefingError

NOW = dt.datetime(2026, 11, 24, 10, 5, 30, tzinfo=dt.UTC)  # a Tuesday


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("every 90", 90),
        ("every 90s", 90),
        ("every 5m", 300),
        ("every 2h", 7200),
        ("every 1d", 86400),
    ],
)
def test_every_accepts_units(text: str, seconds: float) -> None:
    assert parse_schedule(text) == Every(seconds)


def test_every_slots_are_multiples_of_the_period_since_the_epoch() -> None:
    schedule = parse_schedule("every 1h")
    assert latest_slot(schedule, now=NOW) == utc(2026, 11, 24, 10, 0)
    assert next_slot(schedule, now=NOW) == utc(2026, 11, 24, 11, 0)


@pytest.mark.parametrize(
    ("cron", "latest", "upcoming"),
    [
        ("0 8 * * *", utc(2026, 11, 24, 8, 0), utc(2026, 11, 25, 8, 0)),
        ("*/15 * * * *", utc(2026, 11, 24, 10, 0), utc(2026, 11, 24, 10, 15)),
        ("30 10 * * *", utc(2026, 11, 23, 10, 30), utc(2026, 11, 24, 10, 30)),
        ("0 9 * * 1-5", utc(2026, 11, 24, 9, 0), utc(2026, 11, 25, 9, 0)),
        ("0 9 * * 6,0", utc(2026, 11, 22, 9, 0), utc(2026, 11, 28, 9, 0)),
        ("0 0 1 * *", utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0)),
        ("0 0 29 2 *", utc(2024, 2, 29, 0, 0), utc(2028, 2, 29, 0, 0)),
    ],
)
def test_crontab_latest_and_next(cron: str, latest: dt.datetime, upcoming: dt.datetime) -> None:
    schedule = parse_schedule(cron)
    assert latest_slot(schedule, now=NOW) == latest
    assert next_slot(schedule, now=NOW) == upcoming


def test_a_slot_exactly_now_is_due_now() -> None:
    assert latest_slot(parse_schedule("5 10 * * *"), now=utc(2026, 11, 24, 10, 5)) == utc(
        2026, 11, 24, 10, 5
    )


def test_crontab_in_a_time_zone() -> None:
    # 08:00 in Shanghai is 00:00 UTC
    schedule = parse_schedule("0 8 * * *")
    assert latest_slot(schedule, now=NOW, timezone="Asia/Shanghai") == utc(2026, 11, 24, 0, 0)


def test_restricted_day_of_month_and_week_match_either_as_in_cron() -> None:
    # the 1st of the month, or any Monday
    schedule = parse_schedule("0 6 1 * 1")
    assert latest_slot(schedule, now=NOW) == utc(2026, 11, 23, 6, 0)  # Monday the 23rd


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("every 0", "at least 0.5 s"),
        ("every 0.1s", "at least 0.5 s"),
        ("61 * * * *", "61"),
        ("* 25 * * *", "25"),
        ("sometimes", "neither"),
        ("* * *", "neither"),
    ],
)
def test_bad_schedules_say_why(text: str, words: str) -> None:
    with pytest.raises(BriefingError, match=words):
        parse_schedule(text)


def test_a_crontab_that_never_matches_is_refused_when_used() -> None:
    with pytest.raises(BriefingError, match="no day"):
        latest_slot(parse_schedule("0 0 31 2 *"), now=NOW)


def test_a_slot_in_a_spring_forward_gap_is_never_in_the_future() -> None:
    # 02:30 does not exist in New York on 2026-03-08; at 03:05 local (07:05 UTC) it is
    # not due yet: the latest slot is the day before's.
    now = utc(2026, 3, 8, 7, 5)
    slot = latest_slot(parse_schedule("30 2 * * *"), now=now, timezone="America/New_York")
    assert slot <= now
    assert slot == utc(2026, 3, 7, 7, 30)
