"""Readers: what the platform will deliver to them, and what a bare refusal means.

Pure functions; the pipeline and the views apply them.

**State.** A reader is ``open`` within ``window_seconds`` of their last message
and while sends are left of ``budget`` per message; ``window_closed`` or
``budget_spent`` otherwise, or when the platform refused a send as theirs since
they last wrote (``closed_reason`` "refused"; a "suspected" refusal the probe
has not decided leaves the state as it was); ``dropping`` when the platform took
their last sends without a ``message_id`` (silent drops, ``dropping_since``) and
they have not written since; ``unknown`` when they never wrote (the pipeline only
sends).

**A bare ``{"ret": -2}``** is the account's rate limit *or* this reader's closed
window or spent budget. :func:`judge_refusal` decides from evidence:

====================================================  ==========================
evidence                                              verdict
====================================================  ==========================
the reader is known closed (our own count says so)    reader: the chat waits for them
the account is in a rate-limit streak already         rate limit (the lockout goes on)
the reader is known open (wrote, budget left)         rate limit: they can receive
otherwise (unknown reader)                            suspect: hold the chat, pause
                                                      the account briefly, let the
                                                      next send of another reader
                                                      decide
... that send accepted                                the suspects were readers'
... refused by an open reader, or by a second        rate limit: the suspects'
    unknown one (``suspects_for_rate_limit``)         chats stay held until the
                                                      account's next accepted send
a reader released by that send, refused again         theirs: the account had just
                                                      proved it can send
====================================================  ==========================

Why two unknown readers make a rate limit, not three: every send made during a
lockout makes it longer, so the cheapest safe reading spends at most one more send
on the question. Two unknown readers refused back to back, with nothing accepted
between, are far likelier one lockout than two closed windows; a known-open reader
decides at once. The suspects' chats do not go again when the cooldown ends (one
of them would be the probe, and a closed window would pass for the lockout going
on, cooldown after cooldown): they wait for the account's next accepted send, and
are judged afresh then: refused again, right after the account proved it can send,
they are the readers' (and what the verdict would have taught is dropped).

A chat held as a suspect is looked at again after ``recheck_seconds`` if nothing
decided (one reader only: no other send to probe with).

Example::

    reader_state(last_inbound_at=None, sends_since_inbound=0, closed_reason=None,
                 now=now, window_seconds=86400, budget=10)      # ReaderState.UNKNOWN
"""

from __future__ import annotations

import datetime as dt
import enum

from delivery.ledger.states import ClosedReason, ReaderState

__all__ = [
    "SUSPECTS_FOR_RATE_LIMIT",
    "Refusal",
    "judge_refusal",
    "notice_for",
    "reader_state",
    "sends_left",
]

# Distinct unknown readers refused in a row (none accepted between) that make a rate limit.
SUSPECTS_FOR_RATE_LIMIT = 2


class Refusal(enum.StrEnum):
    """What a bare refusal was judged to be."""

    READER = "reader"  # this reader's window or budget: the chat waits for them
    SUSPECT = "suspect"  # not known yet: hold the chat, probe with another reader
    RATE_LIMIT = "rate_limit"  # the account's limit: cooldown (and learning), as ever


def reader_state(
    *,
    last_inbound_at: dt.datetime | None,
    sends_since_inbound: int,
    closed_reason: str | None,
    now: dt.datetime,
    window_seconds: float,
    budget: int,
    dropping_since: dt.datetime | None = None,
) -> ReaderState:
    """The reader's state at ``now``; see the module docstring."""
    if dropping_since is not None and (last_inbound_at is None or last_inbound_at < dropping_since):
        return ReaderState.DROPPING
    if last_inbound_at is not None:
        if (now - last_inbound_at).total_seconds() >= window_seconds:
            return ReaderState.WINDOW_CLOSED
        if sends_since_inbound >= budget:
            return ReaderState.BUDGET_SPENT
    if closed_reason == ClosedReason.REFUSED:
        return ReaderState.WINDOW_CLOSED
    # A suspect is not known closed: its held chat is tried again at its recheck.
    return ReaderState.OPEN if last_inbound_at is not None else ReaderState.UNKNOWN


def sends_left(
    *, last_inbound_at: dt.datetime | None, sends_since_inbound: int, budget: int
) -> int | None:
    """How many more sends the reader may get, or None when it is not known."""
    if last_inbound_at is None:
        return None
    return max(0, budget - sends_since_inbound)


def judge_refusal(
    *,
    reader: ReaderState,
    rate_limit_streak: bool,
    other_suspects: int,
    released: bool = False,
    suspects_for_rate_limit: int = SUSPECTS_FOR_RATE_LIMIT,
) -> Refusal:
    """What a bare refusal of a send to a reader in state ``reader`` means.

    ``rate_limit_streak``: the account's last verdict was a rate limit and no send
    was accepted since. ``other_suspects``: other readers held as suspects since
    the last accepted send. ``released``: this reader was a suspect that a rate limit
    released, and the account has accepted a send since.
    """
    if reader in (ReaderState.WINDOW_CLOSED, ReaderState.BUDGET_SPENT, ReaderState.DROPPING):
        return Refusal.READER
    if released and not rate_limit_streak:
        return Refusal.READER
    if rate_limit_streak or reader == ReaderState.OPEN:
        return Refusal.RATE_LIMIT
    if other_suspects + 1 >= suspects_for_rate_limit:
        return Refusal.RATE_LIMIT
    return Refusal.SUSPECT


def notice_for(template: str, *, remaining: int) -> str:
    """The notice that ends the last part a reader's budget allows."""
    return template.replace("{remaining}", str(remaining))
