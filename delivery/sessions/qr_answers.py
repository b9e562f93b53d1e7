"""What the platform's QR-login answers mean: pure functions and the values they return.

:func:`read_qrcode` reads a ``get_bot_qrcode`` answer, :func:`read_status` one
``get_qrcode_status`` answer, :func:`qrcode_post_refused` tells a platform that
does not take the POST form from one that had trouble. None of them touches the
network; the flow in :mod:`delivery.sessions.login` acts on what they return.

==========================  ==================================================
status                      outcome
==========================  ==================================================
``wait`` / ``scaned``       :class:`Pending`
``scaned_but_redirect``     :class:`Redirected` (poll at ``redirect_host``)
``need_verifycode``         :class:`NeedsCode` (type the number on the phone)
``verify_code_blocked``     :class:`~delivery.errors.LoginError`
``binded_redirect``         :class:`AlreadyBound` (no new token is issued)
``expired``                 :class:`Expired`
``confirmed``               :class:`Confirmed`
no JSON, 5xx, 429, -2       :class:`Trouble` (try again at the next poll)
a refusal, another status   :class:`~delivery.errors.LoginError`
==========================  ==================================================

The bot token is a secret: no value here shows it in a ``repr`` and no message
holds it.

Example::

    read_status(answer=answer, payload={"status": "need_verifycode"}, base_url=url)
    # NeedsCode()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from delivery.errors import LoginError, TransportError
from delivery.ilink import protocol
from delivery.ilink.classify import Answer

__all__ = [
    "BLOCKED_MESSAGE",
    "AlreadyBound",
    "Confirmed",
    "Expired",
    "LoginResult",
    "NeedsCode",
    "Pending",
    "PollOutcome",
    "QrCode",
    "Redirected",
    "Trouble",
    "qrcode_post_refused",
    "read_qrcode",
    "read_status",
    "redirected_base_url",
]

_STATUS_CHARS: Final = 40  # of an unknown status, quoted in the error
# A platform that does not take get_bot_qrcode by POST answers one of these.
_POST_REFUSED_STATUSES: Final = frozenset({404, 405})
BLOCKED_MESSAGE: Final = (
    "the platform blocked this login after too many wrong numbers (verify_code_blocked); "
    "wait a while, then log in again"
)


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
class NeedsCode:
    """``need_verifycode``: scanned; the person must type the number the phone shows.

    The next poll carries it as ``verify_code``; this status again means it was wrong.
    """


@dataclass(frozen=True)
class AlreadyBound:
    """``binded_redirect``: the bot is already bound to this client; no new token comes.

    The platform recognises the bot by the tokens the QR request said this client
    holds, so the token stored before stays the one to use.
    """


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


PollOutcome = Pending | Redirected | NeedsCode | AlreadyBound | Expired | Confirmed | Trouble


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


def qrcode_post_refused(answer: Answer) -> bool:
    """Whether a POST of ``get_bot_qrcode`` was refused as a form the platform lacks.

    HTTP 404 or 405, or a body that is not JSON below HTTP 500 (a gateway's page):
    ask again by GET. A 5xx is trouble, not a refusal of the form.
    """
    if answer.http_status in _POST_REFUSED_STATUSES:
        return True
    return not answer.json_ok and answer.http_status < 500


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


def _confirmed(payload: dict[str, Any], *, base_url: str) -> Confirmed:
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


def read_status(*, answer: Answer, payload: dict[str, Any], base_url: str) -> PollOutcome:
    """What one ``get_qrcode_status`` answer, polled at ``base_url``, means.

    A confirmed login's base URL is its ``baseurl``, else ``base_url`` (the host
    that confirmed it).

    Raises:
        LoginError: the platform refused; blocked the login
            (``verify_code_blocked``); the status is missing or unknown; or a
            ``confirmed`` answer lacks ``bot_token`` or ``ilink_bot_id``. The
            message never holds the token.
    """
    trouble = _trouble(answer)
    if trouble is not None:
        return trouble
    _check_accepted(answer, what="the QR status poll")
    status = payload.get("status")
    match status:
        case "wait":
            return Pending(scanned=False)
        case "scaned":
            return Pending(scanned=True)
        case "scaned_but_redirect":
            host = _text(payload, "redirect_host")
            if host is None:
                # Nowhere to go: stay where we are rather than give up on a scanned code.
                return Pending(scanned=True)
            return Redirected(redirected_base_url(current_base_url=base_url, redirect_host=host))
        case "need_verifycode":
            return NeedsCode()
        case "verify_code_blocked":
            raise LoginError(BLOCKED_MESSAGE)
        case "binded_redirect":
            return AlreadyBound()
        case "expired":
            return Expired()
        case "confirmed":
            return _confirmed(payload, base_url=base_url)
        case None:
            raise LoginError("the platform's QR status answer has no status")
    raise LoginError(f"unknown QR login status {str(status)[:_STATUS_CHARS]!r}")
