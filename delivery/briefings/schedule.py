"""When a briefing is due: pure slot arithmetic for ``every N`` and crontab schedules.

A *slot* is the instant a run is due, in UTC. ``latest_slot`` gives the newest
slot at or before now; its run happens once (claimed in SQL), so a beat that was
down catches up with the latest missed slot only, never with a backlog.

* ``every 90`` / ``every 90s`` / ``every 5m`` / ``every 2h`` / ``every 1d``:
  slots on multiples of the period since the Unix epoch (UTC), so every beat on
  every host computes the same ones.
* A five-field crontab (``minute hour day-of-month month day-of-week``, e.g.
  ``0 8 * * 1-5``) in the briefing's time zone. As in cron, when both day fields
  are restricted a day matching either is due.

Example::

    latest_slot(parse_schedule("0 8 * * *"), now=now, timezone="Asia/Shanghai")
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab_parser

from delivery.errors import BriefingError

__all__ = ["Cron", "Every", "Schedule", "latest_slot", "next_slot", "parse_schedule", "zone"]

_EVERY = re.compile(r"every\s+(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MIN_PERIOD_SECONDS = 0.5  # shorter is a busy loop, not a briefing
_SEARCH_DAYS = 366 * 8  # a Feb 29 schedule may wait this long


@dataclass(frozen=True)
class Every:
    seconds: float


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday, as in cron
    dom_restricted: bool
    dow_restricted: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days_of_month
        in_week = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return in_month or in_week
        return in_month and in_week


Schedule = Every | Cron


def parse_schedule(text: str) -> Schedule:
    """``every <n>[smhd]`` or a five-field crontab.

    Raises:
        BriefingError: the text is neither, naming what is wrong.
    """
    spec = text.strip()
    match = _EVERY.fullmatch(spec)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        if seconds < _MIN_PERIOD_SECONDS:
            raise BriefingError(f"schedule {text!r}: the period must be at least 0.5 s")
        return Every(seconds)
    fields = spec.split()
    if len(fields) != 5:
        raise BriefingError(
            f"schedule {text!r} is neither 'every <n>[s|m|h|d]' nor a five-field crontab"
        )
    minute, hour, dom, month, dow = fields
    try:
        return Cron(
            minutes=frozenset(crontab_parser(60).parse(minute)),
            hours=frozenset(crontab_parser(24).parse(hour)),
            days_of_month=frozenset(crontab_parser(31, 1).parse(dom)),
            months=frozenset(crontab_parser(12, 1).parse(month)),
            days_of_week=frozenset(d % 7 for d in crontab_parser(7).parse(dow.replace("7", "0"))),
            dom_restricted=dom != "*",
            dow_restricted=dow != "*",
        )
    except (ValueError, crontab_parser.ParseException) as exc:
        raise BriefingError(f"schedule {text!r}: {exc}") from None


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA, e.g. ``Asia/Shanghai``).

    Raises:
        BriefingError: no such zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BriefingError(f"unknown time zone {name!r}") from None


def latest_slot(schedule: Schedule, *, now: dt.datetime, timezone: str = "UTC") -> dt.datetime:
    """The newest slot at or before ``now`` (aware), in UTC.

    Raises:
        BriefingError: a crontab that matches no day in eight years (``0 0 31 2 *``).
    """
    now = now.astimezone(dt.UTC)
    if isinstance(schedule, Every):
        epoch_seconds = now.timestamp()
        return dt.datetime.fromtimestamp(epoch_seconds - epoch_seconds % schedule.seconds, dt.UTC)
    local = now.astimezone(zone(timezone)).replace(second=0, microsecond=0)
    for back in range(_SEARCH_DAYS):
        day = local.date() - dt.timedelta(days=back)
        if not schedule.day_matches(day):
            continue
        for hour in sorted(schedule.hours, reverse=True):
            if back == 0 and hour > local.hour:
                continue
            for minute in sorted(schedule.minutes, reverse=True):
                if back == 0 and hour == local.hour and minute > local.minute:
                    continue
                naive = dt.datetime.combine(day, dt.time(hour, minute))
                candidate = naive.replace(tzinfo=zone(timezone)).astimezone(dt.UTC)
                # A local time inside a clock change's gap maps past now: not due yet.
                if candidate <= now:
                    return candidate
    raise BriefingError("the crontab matches no day in eight years")


def next_slot(schedule: Schedule, *, now: dt.datetime, timezone: str = "UTC") -> dt.datetime:
    """The first slot after ``now``, in UTC (for display).

    Raises:
        BriefingError: a crontab that matches no day in eight years.
    """
    if isinstance(schedule, Every):
        return latest_slot(schedule, now=now) + dt.timedelta(seconds=schedule.seconds)
    now = now.astimezone(dt.UTC)
    local = now.astimezone(zone(timezone))
    for ahead in range(_SEARCH_DAYS):
        day = local.date() + dt.timedelta(days=ahead)
        if not schedule.day_matches(day):
            continue
        for hour in sorted(schedule.hours):
            for minute in sorted(schedule.minutes):
                naive = dt.datetime.combine(day, dt.time(hour, minute))
                slot = naive.replace(tzinfo=zone(timezone)).astimezone(dt.UTC)
                if slot > now:
                    return slot
    raise BriefingError("the crontab matches no day in eight years")
