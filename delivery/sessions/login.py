"""The iLink QR login: show a code, poll until the phone confirms, hand back the token.

The flow takes its effects as arguments: the HTTP session, ``show`` (draw a code),
``say`` (one line for the person at the terminal), ``sleep`` and ``clock``. What an
answer means is decided by the pure functions :func:`read_qrcode`,
:func:`read_status` and :func:`redirected_base_url`, which tests call directly.

Per poll of ``get_qrcode_status`` (about once a second):

==========================  ===============================================
status                      what the flow does
==========================  ===============================================
``wait``                    keep polling
``scaned``                  say once that it was scanned; keep polling
``scaned_but_redirect``     as ``scaned``, and poll at ``redirect_host`` on
``expired``                 show a new code (at most ``max_refreshes`` times)
``confirmed``               return the token, bot id, base URL and user id
no answer, not JSON, 5xx    try again at the next poll (``timeout_seconds``
                            still bounds the whole login)
a refusal, another status   :class:`~delivery.errors.LoginError`
==========================  ===============================================

The bot token is a secret: it is never logged, said, shown in a ``repr`` or put in
an exception message.

Example::

    result = qr_login(base_url=DEFAULT_BASE_URL, session=requests.Session(),
                      show=lambda code: print(code.url), say=print)
    add_account(result.ilink_bot_id, token=result.token, base_url=result.base_url,
                ilink_user_id=result.ilink_user_id)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from delivery.errors import LoginError, TransportError
from delivery.ilink import protocol
from delivery.ilink.classify import Answer
from delivery.ilink.client import fetch_qrcode, poll_qrcode_status

__all__ = [
    "DEFAULT_MAX_REFRESHES",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "SCANNED_MESSAGE",
    "Confirmed",
    "Expired",
    "LoginResult",
    "Pending",
    "PollOutcome",
    "QrCode",
    "Redirected",
    "Trouble",
    "qr_login",
    "read_qrcode",
    "read_status",
    "redirected_base_url",
]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS: Final = 1.0  # known clients poll about once a second
DEFAULT_MAX_REFRESHES: Final = 3  # new codes after the first one expires
DEFAULT_TIMEOUT_SECONDS: Final = 480.0  # the whole login, scanning included
SCANNED_MESSAGE: Final = "scanned — confirm on the phone"
_STATUS_CHARS: Final = 40  # of an unknown status, quoted in the error


@dataclass(frozen=True)
class QrCode:
    """A login code: ``qrcode`` is the id to poll with, ``url`` what the phone scans.

    ``number`` counts the codes of one login from 1 (a refresh shows number 2).
    """

    qrcode: str
    url: str
    number: int = 1


@dataclass(frozen=True)
class LoginResult:
    """A confirmed login. ``token`` is the bot token and never appears in the repr."""

    ilink_bot_id: str
    token: str = field(repr=False)
    base_url: str
    ilink_user_id: str | None


@dataclass(frozen=True)
class Pending:
    """``wait`` or ``scaned``: nobody has confirmed yet."""

    scanned: bool


@dataclass(frozen=True)
class Redirected:
    """``scaned_but_redirect``: scanned; poll at ``base_url`` from now on."""

    base_url: str


@dataclass(frozen=True)
class Expired:
    """``expired``: the code is dead; a new one is needed."""


@dataclass(frozen=True)
class Confirmed:
    """``confirmed``: the login is done."""

    result: LoginResult


@dataclass(frozen=True)
class Trouble:
    """A transient failure (no JSON, 5xx, 429, frequency limit): try again next poll.

    ``cause`` is the transport error behind it, if any, for ``raise ... from``.
    """

    reason: str
    cause: TransportError | None = field(default=None, repr=False, compare=False)


PollOutcome = Pending | Redirected | Expired | Confirmed | Trouble


def redirected_base_url(*, current_base_url: str, redirect_host: str) -> str:
    """The base URL to poll at after ``scaned_but_redirect``.

    ``redirect_host`` is normally a bare ``host[:port]``; known clients build
    ``https://{redirect_host}``, which cannot reach a plain-HTTP platform, so the
    current scheme is kept unless ``redirect_host`` carries its own.

    Example::

        redirected_base_url(current_base_url="http://127.0.0.1:8765",
                            redirect_host="localhost:8765")   # 'http://localhost:8765'
    """
    host = redirect_host.strip().rstrip("/")
    if "://" in host:
        return host
    scheme = urlsplit(current_base_url).scheme or "https"
    return f"{scheme}://{host}"


def _trouble(answer: Answer) -> Trouble | None:
    if not answer.json_ok:
        return Trouble(f"HTTP {answer.http_status}, an answer that is not JSON")
    if answer.http_status >= 500 or answer.http_status == 429:
        return Trouble(f"HTTP {answer.http_status}")
    if protocol.RET_FREQUENCY_LIMIT in (answer.ret, answer.errcode):
        return Trouble(f"frequency limit (ret {answer.ret}, errcode {answer.errcode})")
    return None


def _check_accepted(answer: Answer, *, what: str) -> None:
    refused = answer.http_status >= 400 or answer.ret not in (None, protocol.RET_OK)
    if refused or answer.errcode not in (None, protocol.RET_OK):
        errmsg = f" {answer.errmsg[:120]!r}" if answer.errmsg else ""
        raise LoginError(
            f"the platform refused {what}: HTTP {answer.http_status}, "
            f"ret {answer.ret}, errcode {answer.errcode}{errmsg}"
        )


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def read_qrcode(*, answer: Answer, payload: dict[str, Any], number: int = 1) -> QrCode | Trouble:
    """A ``get_bot_qrcode`` answer as a code to show, or the transient trouble it was.

    Raises:
        LoginError: the platform refused, or the answer lacks ``qrcode`` or
            ``qrcode_img_content``.
    """
    trouble = _trouble(answer)
    if trouble is not None:
        return trouble
    _check_accepted(answer, what="a new QR code")
    qrcode, url = _text(payload, "qrcode"), _text(payload, "qrcode_img_content")
    if qrcode is None or url is None:
        missing = "qrcode" if qrcode is None else "qrcode_img_content"
        raise LoginError(f"the platform's QR code answer has no {missing}")
    return QrCode(qrcode=qrcode, url=url, number=number)


def read_status(*, answer: Answer, payload: dict[str, Any], base_url: str) -> PollOutcome:
    """What one ``get_qrcode_status`` answer, polled at ``base_url``, means.

    A confirmed login's base URL is its ``baseurl``, else ``base_url`` (the host
    that confirmed it).

    Raises:
        LoginError: the platform refused; the status is missing or unknown; or a
            ``confirmed`` answer lacks ``bot_token`` or ``ilink_bot_id``. The
            message never holds the token.
    """
    trouble = _trouble(answer)
    if trouble is not None:
        return trouble
    _check_accepted(answer, what="the QR status poll")
    status = payload.get("status")
    if status == "wait":
        return Pending(scanned=False)
    if status == "scaned":
        return Pending(scanned=True)
    if status == "scaned_but_redirect":
        host = _text(payload, "redirect_host")
        if host is None:
            # Nowhere to go: stay where we are rather than give up on a scanned code.
            return Pending(scanned=True)
        return Redirected(redirected_base_url(current_base_url=base_url, redirect_host=host))
    if status == "expired":
        return Expired()
    if status == "confirmed":
        token, bot_id = _text(payload, "bot_token"), _text(payload, "ilink_bot_id")
        if token is None or bot_id is None:
            missing = "bot_token" if token is None else "ilink_bot_id"
            raise LoginError(f"the platform confirmed the login but sent no {missing}")
        result = LoginResult(
            ilink_bot_id=bot_id,
            token=token,
            base_url=(_text(payload, "baseurl") or base_url).rstrip("/"),
            ilink_user_id=_text(payload, "ilink_user_id"),
        )
        return Confirmed(result)
    if status is None:
        raise LoginError("the platform's QR status answer has no status")
    raise LoginError(f"unknown QR login status {str(status)[:_STATUS_CHARS]!r}")


def _fetch(
    session: requests.Session, *, base_url: str, number: int, timeout_seconds: float
) -> QrCode | Trouble:
    """Ask for a new code; a transport failure comes back as trouble."""
    try:
        reply = fetch_qrcode(session, base_url=base_url, timeout_seconds=timeout_seconds)
    except TransportError as exc:
        return Trouble(str(exc), cause=exc)
    return read_qrcode(answer=reply.answer, payload=reply.payload, number=number)


def _poll(
    session: requests.Session, *, base_url: str, qrcode: str, timeout_seconds: float
) -> PollOutcome:
    """Poll a code once; a transport failure comes back as trouble."""
    try:
        reply = poll_qrcode_status(
            session, base_url=base_url, qrcode=qrcode, timeout_seconds=timeout_seconds
        )
    except TransportError as exc:
        return Trouble(str(exc), cause=exc)
    return read_status(answer=reply.answer, payload=reply.payload, base_url=base_url)


def qr_login(
    *,
    base_url: str,
    session: requests.Session,
    show: Callable[[QrCode], None],
    say: Callable[[str], None],
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    max_refreshes: int = DEFAULT_MAX_REFRESHES,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> LoginResult:
    """Run the QR login at ``base_url`` until a phone confirms it.

    ``show`` is called with every code to scan (the first, then one per refresh);
    ``say`` with short progress lines. The first code must come at once, so that a
    wrong base URL fails fast; trouble after that is tried again every
    ``poll_interval_seconds`` until ``timeout_seconds`` have passed in all.

    Raises:
        LoginError: no first code, more than ``max_refreshes`` codes expired,
            ``timeout_seconds`` passed, or the platform refused or answered
            something unknown.
        ValueError: a non-positive interval or timeout, or negative refreshes.
    """
    if poll_interval_seconds <= 0 or timeout_seconds <= 0 or max_refreshes < 0:
        raise ValueError("poll interval and timeout must be > 0, max_refreshes >= 0")
    deadline = clock() + timeout_seconds

    def request_timeout() -> float:
        # No request may outlive the login's own deadline.
        return max(min(protocol.TIMEOUT_SECONDS, deadline - clock()), 0.001)

    first = _fetch(session, base_url=base_url, number=1, timeout_seconds=request_timeout())
    if isinstance(first, Trouble):
        raise LoginError(f"cannot get a QR code from {base_url}: {first.reason}") from first.cause
    show(first)
    code: QrCode | None = first
    poll_base_url = base_url
    expired = 0
    scanned = False
    trouble: Trouble | None = None
    while True:
        sleep(max(min(poll_interval_seconds, deadline - clock()), 0.0))
        if clock() >= deadline:
            raise LoginError(_timeout_message(timeout_seconds, scanned=scanned, trouble=trouble))
        outcome: QrCode | PollOutcome
        if code is None:
            outcome = _fetch(
                session, base_url=base_url, number=expired + 1, timeout_seconds=request_timeout()
            )
        else:
            outcome = _poll(
                session,
                base_url=poll_base_url,
                qrcode=code.qrcode,
                timeout_seconds=request_timeout(),
            )
        if isinstance(outcome, Trouble):
            log.warning("QR login: %s; trying again at the next poll", outcome.reason)
            if trouble is None:
                say(f"platform trouble ({outcome.reason}); still trying")
            trouble = outcome
            continue
        trouble = None
        match outcome:
            case Confirmed(result):
                log.info("QR login confirmed: bot %s at %s", result.ilink_bot_id, result.base_url)
                return result
            case QrCode():
                code, poll_base_url, scanned = outcome, base_url, False
                show(code)
            case Expired():
                expired += 1
                if expired > max_refreshes:
                    raise LoginError(
                        f"{expired} QR codes expired before a login was confirmed "
                        f"(at most {max_refreshes} refreshes); run the login again"
                    )
                say(
                    f"the QR code expired; a new one follows ({expired + 1} of {max_refreshes + 1})"
                )
                code = None
            case Pending(scanned=False):
                pass
            case Pending() | Redirected():
                if not scanned:
                    scanned = True
                    say(SCANNED_MESSAGE)
                if isinstance(outcome, Redirected) and outcome.base_url != poll_base_url:
                    log.info("QR login: polling moves to %s", outcome.base_url)
                    poll_base_url = outcome.base_url


def _timeout_message(timeout_seconds: float, *, scanned: bool, trouble: Trouble | None) -> str:
    stage = "scanned but not confirmed" if scanned else "not scanned"
    text = f"no QR login confirmed within {timeout_seconds:g}s (the code was {stage}"
    if trouble is not None:
        text += f"; last trouble: {trouble.reason}"
    return text + ")"
