"""The iLink QR login: show a code, poll until the phone confirms, hand back the token.

The flow takes its effects as arguments: the HTTP session, ``show`` (draw a code),
``say`` (one line for the person at the terminal), ``ask_code`` (read the number
the phone shows), ``sleep`` and ``clock``. What an answer means is decided by the
pure functions of :mod:`delivery.sessions.qr_answers`.

It asks for codes as the platform's newest official client does: a POST of
``get_bot_qrcode`` naming the tokens this client already holds for the bot
(``local_tokens``), at the fixed base URL; when a platform refuses the POST form
(HTTP 404 or 405, or an answer that is not JSON), by GET from then on.

Per poll of ``get_qrcode_status`` (about once a second):

==========================  ===============================================
status                      what the flow does
==========================  ===============================================
``wait``                    keep polling
``scaned``                  say once that it was scanned; keep polling
``scaned_but_redirect``     as ``scaned``, and poll at ``redirect_host`` on
``need_verifycode``         ask for the number on the phone, poll again at
                            once with it; asked again, it was wrong: say so
                            and ask again
``verify_code_blocked``     :class:`~delivery.errors.LoginError` (too many
                            wrong numbers; try again later)
``binded_redirect``         return :class:`AlreadyBound`: the bot is bound
                            to this client already, no new token is issued
``expired``                 show a new code (at most ``max_refreshes`` times)
``confirmed``               return the token, bot id, base URL and user id
no answer, not JSON, 5xx    try again at the next poll (``timeout_seconds``
                            still bounds the whole login)
a refusal, another status   :class:`~delivery.errors.LoginError`
==========================  ===============================================

Tokens are secrets: the bot token and the local tokens are never logged, said,
shown in a ``repr`` or put in an exception message.

Example::

    outcome = qr_login(base_url=DEFAULT_BASE_URL, session=requests.Session(),
                       show=lambda code: print(code.url), say=print, ask_code=input,
                       local_tokens=[stored_token])
    if isinstance(outcome, LoginResult):
        add_account(outcome.ilink_bot_id, token=outcome.token, base_url=outcome.base_url,
                    ilink_user_id=outcome.ilink_user_id)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import requests

from delivery.errors import LoginError, TransportError
from delivery.ilink import protocol
from delivery.ilink.client import fetch_qrcode, fetch_qrcode_by_get, poll_qrcode_status
from delivery.ilink.protocol import DEFAULT_CLIENT_VERSION, ClientVersion
from delivery.sessions.qr_answers import (
    AlreadyBound,
    Confirmed,
    Expired,
    LoginResult,
    NeedsCode,
    Pending,
    PollOutcome,
    QrCode,
    Redirected,
    Trouble,
    qrcode_post_refused,
    read_qrcode,
    read_status,
)

# What a caller of qr_login needs; the answers' own vocabulary is in qr_answers.
__all__ = [
    "ASK_CODE_PROMPT",
    "DEFAULT_MAX_REFRESHES",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "SCANNED_MESSAGE",
    "WRONG_CODE_MESSAGE",
    "AlreadyBound",
    "LoginResult",
    "QrCode",
    "qr_login",
]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS: Final = 1.0  # known clients poll about once a second
DEFAULT_MAX_REFRESHES: Final = 3  # new codes after the first one expires
DEFAULT_TIMEOUT_SECONDS: Final = 480.0  # the whole login, scanning included
SCANNED_MESSAGE: Final = "scanned — confirm on the phone"
ASK_CODE_PROMPT: Final = "Type the number shown on the phone"
WRONG_CODE_MESSAGE: Final = "that number does not match the one on the phone; try again"


@dataclass
class _CodeSource:
    """Where new codes come from: POST with the local tokens, or GET once POST is refused."""

    session: requests.Session
    base_url: str
    client_version: ClientVersion
    local_tokens: tuple[str, ...] = field(repr=False)
    by_post: bool = True

    def fetch(self, *, number: int, timeout_seconds: float) -> QrCode | Trouble:
        """Ask for a new code; a transport failure comes back as trouble."""
        try:
            if self.by_post:
                reply = fetch_qrcode(
                    self.session,
                    base_url=self.base_url,
                    local_tokens=self.local_tokens,
                    client_version=self.client_version,
                    timeout_seconds=timeout_seconds,
                )
                if not qrcode_post_refused(reply.answer):
                    return read_qrcode(answer=reply.answer, payload=reply.payload, number=number)
                status = reply.answer.http_status
                log.info("QR login: get_bot_qrcode by POST refused (HTTP %d); by GET now", status)
                self.by_post = False
            reply = fetch_qrcode_by_get(
                self.session,
                base_url=self.base_url,
                client_version=self.client_version,
                timeout_seconds=timeout_seconds,
            )
        except TransportError as exc:
            return Trouble(str(exc), cause=exc)
        return read_qrcode(answer=reply.answer, payload=reply.payload, number=number)


def _poll(
    session: requests.Session,
    *,
    base_url: str,
    qrcode: str,
    verify_code: str | None,
    client_version: ClientVersion,
    timeout_seconds: float,
) -> PollOutcome:
    """Poll a code once; a transport failure comes back as trouble."""
    try:
        reply = poll_qrcode_status(
            session,
            base_url=base_url,
            qrcode=qrcode,
            verify_code=verify_code,
            client_version=client_version,
            timeout_seconds=timeout_seconds,
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
    ask_code: Callable[[str], str] | None = None,
    local_tokens: Sequence[str] = (),
    client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    max_refreshes: int = DEFAULT_MAX_REFRESHES,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> LoginResult | AlreadyBound:
    """Run the QR login at ``base_url`` until a phone confirms it.

    ``show`` is called with every code to scan (the first, then one per refresh);
    ``say`` with short progress lines; ``ask_code`` with a prompt when the platform
    wants the number the phone shows (``None``: there is nobody to ask, and such a
    login fails). ``local_tokens`` are the bot tokens already held for this bot
    (secrets; sent in the code request's body only). The first code must come at
    once, so that a wrong base URL fails fast; trouble after that is tried again
    every ``poll_interval_seconds`` until ``timeout_seconds`` have passed in all.

    Returns the confirmed login, or :class:`AlreadyBound` when the platform says
    the bot is bound to this client already (the token held before stays valid).

    Raises:
        LoginError: no first code, more than ``max_refreshes`` codes expired,
            ``timeout_seconds`` passed, the login was blocked after wrong
            numbers, a number was wanted and ``ask_code`` is ``None``, or the
            platform refused or answered something unknown.
        ValueError: a non-positive interval or timeout, or negative refreshes.
    """
    if poll_interval_seconds <= 0 or timeout_seconds <= 0 or max_refreshes < 0:
        raise ValueError("poll interval and timeout must be > 0, max_refreshes >= 0")
    deadline = clock() + timeout_seconds

    def request_timeout(longest: float = protocol.TIMEOUT_SECONDS) -> float:
        # No request may outlive the login's own deadline.
        return max(min(longest, deadline - clock()), 0.001)

    source = _CodeSource(session, base_url, client_version, tuple(local_tokens))
    first = source.fetch(number=1, timeout_seconds=request_timeout())
    if isinstance(first, Trouble):
        raise LoginError(f"cannot get a QR code from {base_url}: {first.reason}") from first.cause
    show(first)
    code: QrCode | None = first
    poll_base_url = base_url
    expired = 0
    scanned = False
    trouble: Trouble | None = None
    verify_code: str | None = None
    wait = True
    while True:
        if wait:
            sleep(max(min(poll_interval_seconds, deadline - clock()), 0.0))
        wait = True
        if clock() >= deadline:
            raise LoginError(_timeout_message(timeout_seconds, scanned=scanned, trouble=trouble))
        outcome: QrCode | PollOutcome
        if code is None:
            outcome = source.fetch(number=expired + 1, timeout_seconds=request_timeout())
        else:
            outcome = _poll(
                session,
                base_url=poll_base_url,
                qrcode=code.qrcode,
                verify_code=verify_code,
                client_version=client_version,
                timeout_seconds=request_timeout(protocol.TIMEOUT_QRCODE_STATUS_SECONDS),
            )
        if isinstance(outcome, Trouble):
            log.warning("QR login: %s; trying again at the next poll", outcome.reason)
            if trouble is None:
                say(f"platform trouble ({outcome.reason}); still trying")
            trouble = outcome
            continue
        trouble = None
        if not isinstance(outcome, NeedsCode):
            verify_code = None  # taken (or moot): the next poll goes without it
        match outcome:
            case Confirmed(result):
                log.info("QR login confirmed: bot %s at %s", result.ilink_bot_id, result.base_url)
                return result
            case AlreadyBound():
                log.info("QR login: the platform says the bot is bound to this client already")
                return outcome
            case NeedsCode():
                scanned = True
                verify_code = _ask(ask_code, wrong=verify_code is not None, say=say)
                wait = False  # the number goes to the platform at once
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


def _ask(ask_code: Callable[[str], str] | None, *, wrong: bool, say: Callable[[str], None]) -> str:
    """The number the phone shows, from the person; said to be wrong when asked again."""
    if ask_code is None:
        raise LoginError(
            "the platform asks for the number shown on the phone (need_verifycode), "
            "and this login has nobody to ask: run it in a terminal"
        )
    if wrong:
        say(WRONG_CODE_MESSAGE)
    return ask_code(ASK_CODE_PROMPT).strip()


def _timeout_message(timeout_seconds: float, *, scanned: bool, trouble: Trouble | None) -> str:
    stage = "scanned but not confirmed" if scanned else "not scanned"
    text = f"no QR login confirmed within {timeout_seconds:g}s (the code was {stage}"
    if trouble is not None:
        text += f"; last trouble: {trouble.reason}"
    return text + ")"
