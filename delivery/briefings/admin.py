"""Defining briefings: add (or change), remove, list. Stored in SQL.

Example::

    add_briefing("daily", account_id="bot-1", recipients=["u1@im.wechat"],
                 producer="delivery.briefings.examples:daily_briefing",
                 schedule="0 8 * * *", timezone="Asia/Shanghai")
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from delivery import runtime
from delivery.briefings.producers import load_producer
from delivery.briefings.schedule import next_slot, parse_schedule, zone
from delivery.errors import BriefingError, UnknownAccount
from delivery.ledger.briefings import delete_briefing, store_briefing
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Briefing, BriefingRun
from delivery.ledger.types import utcnow
from delivery.validation import validate_account_id, validate_recipient

__all__ = ["BriefingInfo", "add_briefing", "list_briefings", "remove_briefing"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class BriefingInfo:
    """A briefing as ``delivery briefings`` shows it."""

    name: str
    account_id: str
    recipients: tuple[str, ...]
    producer: str
    schedule: str
    timezone: str
    enabled: bool
    next_slot_at: dt.datetime | None
    last_slot_at: dt.datetime | None
    last_status: str | None
    last_error: str | None


def add_briefing(
    name: str,
    *,
    account_id: str,
    recipients: Iterable[str],
    producer: str,
    schedule: str,
    timezone: str = "UTC",
    enabled: bool = True,
) -> BriefingInfo:
    """Create the briefing, or change it if ``name`` exists.

    The producer is imported now, so a typo fails here rather than at 08:00.

    Raises:
        BriefingError: bad name, schedule, time zone, or producer.
        InvalidInput: unknown account or malformed recipient.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BriefingError(f"briefing name {name!r} must be 1-128 of letters, digits . _ -")
    validate_account_id(account_id)
    people = tuple(validate_recipient(r) for r in recipients)
    if not people:
        raise BriefingError(f"briefing {name!r} has no recipients")
    parse_schedule(schedule)
    zone(timezone)
    load_producer(producer)
    with session_scope(runtime.current().engine) as session:
        if session.get(Account, account_id) is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        briefing = store_briefing(
            session,
            name,
            account_id=account_id,
            recipients=people,
            producer=producer,
            schedule=schedule,
            timezone=timezone,
            enabled=enabled,
            now=utcnow(),
        )
        return _info(briefing, None)


def remove_briefing(name: str) -> bool:
    """Delete the briefing and its run history; False if there was none."""
    with session_scope(runtime.current().engine) as session:
        return delete_briefing(session, name)


def list_briefings() -> list[BriefingInfo]:
    """Every briefing with its next slot and its last run."""
    with session_scope(runtime.current().engine, readonly=True) as session:
        result = []
        for briefing in session.scalars(select(Briefing).order_by(Briefing.name)):
            last = session.scalars(
                select(BriefingRun)
                .where(BriefingRun.briefing_id == briefing.id)
                .order_by(BriefingRun.slot_at.desc())
                .limit(1)
            ).one_or_none()
            result.append(_info(briefing, last))
        return result


def _info(briefing: Briefing, last: BriefingRun | None) -> BriefingInfo:
    try:
        upcoming: dt.datetime | None = next_slot(
            parse_schedule(briefing.schedule), now=utcnow(), timezone=briefing.timezone
        )
    except BriefingError:
        upcoming = None
    return BriefingInfo(
        name=briefing.name,
        account_id=briefing.account_id,
        recipients=tuple(json.loads(briefing.recipients)),
        producer=briefing.producer,
        schedule=briefing.schedule,
        timezone=briefing.timezone,
        enabled=briefing.enabled,
        next_slot_at=upcoming if briefing.enabled else None,
        last_slot_at=last.slot_at if last else None,
        last_status=last.status if last else None,
        last_error=last.error if last else None,
    )
