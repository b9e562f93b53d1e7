"""Producers: the importable callables that write a briefing's text.

A producer is named by its import path, ``package.module:callable``. It receives
a :class:`BriefingSlot` and returns either one text for every recipient or a
mapping of recipient to text (a leaderboard that greets each reader). It runs in
a worker, once per slot; if it raises, the run is recorded as failed with the
error and other briefings go on.

Example::

    def daily(slot: BriefingSlot) -> str:
        return f"Good morning — {slot.local_time:%A %d %B}"
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from delivery.errors import BriefingError

__all__ = ["BriefingSlot", "Producer", "load_producer", "texts_for"]

_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class BriefingSlot:
    """What a producer is told: which briefing, which slot, for whom."""

    name: str
    slot_at: dt.datetime  # UTC
    local_time: dt.datetime  # the slot in the briefing's time zone
    account_id: str
    recipients: tuple[str, ...]


Producer = Callable[[BriefingSlot], "str | Mapping[str, str]"]


def load_producer(path: str) -> Producer:
    """Import ``package.module:callable``.

    Raises:
        BriefingError: malformed path, module not importable, or not callable.
    """
    if not _PATH.fullmatch(path):
        raise BriefingError(f"producer {path!r} is not of the form package.module:callable")
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BriefingError(f"producer {path!r}: cannot import {module_name} ({exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise BriefingError(f"producer {path!r}: {module_name} has no callable {attribute}")
    return function  # type: ignore[no-any-return]


def texts_for(output: object, recipients: tuple[str, ...]) -> dict[str, str]:
    """The text for each recipient from a producer's return value.

    A string goes to every recipient; a mapping names its own recipients (those
    of the briefing not in it get nothing).

    Raises:
        BriefingError: the value is neither, or a text is not a string.
    """
    if isinstance(output, str):
        return dict.fromkeys(recipients, output)
    if isinstance(output, Mapping):
        result = {}
        for recipient, text in output.items():
            if not isinstance(recipient, str) or not isinstance(text, str):
                raise BriefingError(
                    f"producer returned a mapping with {type(recipient).__name__} -> "
                    f"{type(text).__name__}; expected str -> str"
                )
            result[recipient] = text
        return result
    raise BriefingError(
        f"producer returned {type(output).__name__}; expected a str or a mapping of "
        "recipient to str"
    )
