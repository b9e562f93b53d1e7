"""The readers' rules, pure: state, the verdict on a bare refusal, the notice."""

from __future__ import annotations

import datetime as dt

import pytest

from delivery.ledger.states import ReaderState
from delivery.pipeline.reader_verdicts import ReaderView, text_with_notice
from delivery.policy.reader_rules import Refusal, judge_refusal, reader_state, sends_left

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
DAY = 86_400.0


def state(
    *, wrote_hours_ago: float | None, sends: int = 0, closed: str | None = None
) -> ReaderState:
    last = None if wrote_hours_ago is None else NOW - dt.timedelta(hours=wrote_hours_ago)
    return reader_state(
        last_inbound_at=last,
        sends_since_inbound=sends,
        closed_reason=closed,
        now=NOW,
        window_seconds=DAY,
        budget=10,
    )


@pytest.mark.parametrize(
    ("wrote_hours_ago", "sends", "closed", "want"),
    [
        (None, 0, None, ReaderState.UNKNOWN),  # never wrote: the pipeline only sends
        (None, 4, None, ReaderState.UNKNOWN),
        (None, 0, "suspected", ReaderState.UNKNOWN),  # held on a refusal not decided yet
        (None, 0, "refused", ReaderState.WINDOW_CLOSED),  # decided: theirs
        (1, 0, None, ReaderState.OPEN),
        (1, 9, None, ReaderState.OPEN),
        (1, 10, None, ReaderState.BUDGET_SPENT),
        (23.9, 0, None, ReaderState.OPEN),
        (24, 0, None, ReaderState.WINDOW_CLOSED),
        (30, 10, None, ReaderState.WINDOW_CLOSED),
        (1, 0, "refused", ReaderState.WINDOW_CLOSED),  # refused since they wrote
    ],
)
def test_reader_state(
    wrote_hours_ago: float | None, sends: int, closed: str | None, want: ReaderState
) -> None:
    assert state(wrote_hours_ago=wrote_hours_ago, sends=sends, closed=closed) == want


def test_sends_left_is_known_only_for_a_reader_who_wrote() -> None:
    assert sends_left(last_inbound_at=None, sends_since_inbound=3, budget=10) is None
    assert sends_left(last_inbound_at=NOW, sends_since_inbound=7, budget=10) == 3
    assert sends_left(last_inbound_at=NOW, sends_since_inbound=12, budget=10) == 0


@pytest.mark.parametrize(
    ("reader", "streak", "others", "want"),
    [
        # known closed by our own count: theirs
        (ReaderState.WINDOW_CLOSED, False, 0, Refusal.READER),
        (ReaderState.BUDGET_SPENT, True, 2, Refusal.READER),
        # a reader who wrote and has budget left can receive: the account's limit
        (ReaderState.OPEN, False, 0, Refusal.RATE_LIMIT),
        # the lockout goes on: nothing was accepted since the last rate limit
        (ReaderState.UNKNOWN, True, 0, Refusal.RATE_LIMIT),
        # an unknown reader: held while the next send of another reader decides
        (ReaderState.UNKNOWN, False, 0, Refusal.SUSPECT),
        # the second unknown reader refused in a row, none accepted between: a rate limit
        # (every send during a lockout makes it longer: one more send decides, not two)
        (ReaderState.UNKNOWN, False, 1, Refusal.RATE_LIMIT),
        (ReaderState.UNKNOWN, False, 2, Refusal.RATE_LIMIT),
        # a reader whose sends are dropped silently: theirs
        (ReaderState.DROPPING, False, 0, Refusal.READER),
    ],
)
def test_judging_a_bare_refusal(
    reader: ReaderState, streak: bool, others: int, want: Refusal
) -> None:
    assert judge_refusal(reader=reader, rate_limit_streak=streak, other_suspects=others) == want


NOTICE = "… {remaining} more parts: reply to get them"


def view(left: int | None) -> ReaderView:
    return ReaderView(state=ReaderState.OPEN, left=left, hold_until=NOW)


def test_the_last_part_a_budget_allows_ends_with_the_notice() -> None:
    text = text_with_notice("part three", view=view(1), parts_after=3, template=NOTICE)
    assert text == "part three\n\n… 3 more parts: reply to get them"


@pytest.mark.parametrize(("left", "after"), [(2, 3), (None, 3), (1, 0), (5, 0)])
def test_no_notice_when_the_rest_fits_or_nothing_follows(left: int | None, after: int) -> None:
    assert text_with_notice("part", view=view(left), parts_after=after, template=NOTICE) == "part"


def test_a_notice_added_on_an_earlier_try_comes_off_when_the_reader_wrote_meanwhile() -> None:
    marked = text_with_notice("part", view=view(1), parts_after=2, template=NOTICE)
    assert text_with_notice(marked, view=view(10), parts_after=2, template=NOTICE) == "part"
    assert text_with_notice(marked, view=view(1), parts_after=2, template=NOTICE) == marked
