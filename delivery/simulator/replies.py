"""The answers the simulated platform gives, as plain values the HTTP layer writes.

The model decides *what* to answer and returns an :class:`Outcome`; only the server
touches sockets. That keeps every decision testable without HTTP.

Example::

    outcome = Outcome(reply=json_reply({"ret": 0}))
    outcome.reply.status      # 200
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from delivery.ilink.protocol import ERRCODE_SESSION_EXPIRED, RET_FREQUENCY_LIMIT

__all__ = [
    "RET_REFUSED",
    "Outcome",
    "Reply",
    "bad_request",
    "error_reply",
    "html_reply",
    "json_reply",
    "rate_limited",
    "session_expired",
]

# A generic refusal; the platform's own codes for "malformed" or "too long" are unknown,
# and a client must treat any non-zero ret other than -2/-14 as permanent anyway.
RET_REFUSED: Final = -1

JSON_TYPE: Final = "application/json"
HTML_TYPE: Final = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body bytes and content type (``None`` = no header)."""

    status: int
    body: bytes
    content_type: str | None = JSON_TYPE


@dataclass(frozen=True)
class Outcome:
    """What the server does with a request.

    It holds the request ``delay_seconds`` (latency or a hang fault), then writes
    ``reply``, or resets the connection without a word when ``reply`` is ``None``.
    ``delay_seconds`` ends early if the client hangs up or the simulator stops.

    A long poll also has ``ready``: called with a number of seconds, it waits up
    to that long and returns the answer as soon as there is one (``None`` while
    there is not); the server calls it until it answers or ``delay_seconds`` has
    passed, then writes ``ready(0)`` or, failing that, ``reply``.
    """

    reply: Reply | None
    delay_seconds: float = 0.0
    ready: Callable[[float], Reply | None] | None = None


def json_reply(payload: dict[str, Any], *, status: int = 200) -> Reply:
    """JSON the way the platform writes it: compact UTF-8."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status=status, body=body)


def error_reply(*, ret: int, errcode: int | None, errmsg: str | None, status: int = 200) -> Reply:
    """A refusal; ``errcode``/``errmsg`` of ``None`` are left out, as the platform may do."""
    payload: dict[str, Any] = {"ret": ret}
    if errcode is not None:
        payload["errcode"] = errcode
    if errmsg is not None:
        payload["errmsg"] = errmsg
    return json_reply(payload, status=status)


def session_expired() -> Reply:
    """The ``-14`` answer of an unknown or expired token."""
    return error_reply(
        ret=ERRCODE_SESSION_EXPIRED, errcode=ERRCODE_SESSION_EXPIRED, errmsg="session timeout"
    )


def rate_limited(errmsg: str | None) -> Reply:
    """The ``-2`` frequency-limit answer with one of the observed errmsg variants."""
    return error_reply(ret=RET_FREQUENCY_LIMIT, errcode=RET_FREQUENCY_LIMIT, errmsg=errmsg)


def bad_request(what: str) -> Reply:
    """HTTP 400 for a malformed request: a client bug that a test should see at once."""
    return error_reply(
        ret=RET_REFUSED, errcode=RET_REFUSED, errmsg=f"bad request: {what}", status=400
    )


def html_reply(*, status: int, title: str) -> Reply:
    """An HTML page, like the ones gateways in front of the platform answer with."""
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Reply(status=status, body=page.encode("utf-8"), content_type=HTML_TYPE)
