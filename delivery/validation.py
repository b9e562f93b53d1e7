"""Validation of what callers hand the public API: pure functions, clear errors.

Each function returns the value to store or raises a subclass of
:class:`~delivery.errors.InvalidInput` whose message names the problem. Secrets
(bot tokens, context tokens) are never repeated in an error message.

Example::

    validate_text("hello\\x00", max_chars=100)
    # InvalidText: text has a control character U+0000 at index 5
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from delivery.errors import (
    InvalidAccountId,
    InvalidBaseUrl,
    InvalidContextToken,
    InvalidIdempotencyKey,
    InvalidMessageId,
    InvalidRecipient,
    InvalidReplyTo,
    InvalidText,
    InvalidToken,
)

__all__ = [
    "MAX_ACCOUNT_ID_CHARS",
    "MAX_CONTEXT_TOKEN_CHARS",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "MAX_RECIPIENT_CHARS",
    "is_loopback",
    "mask_token",
    "parse_message_id",
    "validate_account_id",
    "validate_base_url",
    "validate_context_token",
    "validate_idempotency_key",
    "validate_recipient",
    "validate_reply_to",
    "validate_text",
    "validate_token",
]

MAX_ACCOUNT_ID_CHARS = 128
MAX_RECIPIENT_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 256
MAX_REPLY_TO_CHARS = 128  # a uint64 has 20 digits; a caller's own ids fit too
MAX_CONTEXT_TOKEN_CHARS = 4096
MAX_TOKEN_CHARS = 1024
MIN_TOKEN_CHARS = 8
_SHOWN_TAIL = 4  # characters of a token an operator sees, to tell tokens apart

# Platform ids seen so far look like "o9cq80...@im.wechat" or "2c1f...@im.bot":
# letters, digits and a little punctuation, never whitespace.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:+=\-]*")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
# C0 controls except tab, LF and CR; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _validate_id(value: object, *, what: str, max_chars: int, error: type[Exception]) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise error(f"{what} is empty")
    if len(value) > max_chars:
        raise error(f"{what} is {len(value)} characters; the maximum is {max_chars}")
    if not _ID.fullmatch(value):
        raise error(
            f"{what} {value[:80]!r} is malformed: use letters, digits and @ . _ : + = -, "
            "starting with a letter or digit"
        )
    return value


def validate_account_id(value: object) -> str:
    """An account id: 1-128 characters of letters, digits and ``@._:+=-``."""
    return _validate_id(
        value, what="account id", max_chars=MAX_ACCOUNT_ID_CHARS, error=InvalidAccountId
    )


def validate_recipient(value: object) -> str:
    """A recipient (``to_user_id``): 1-256 characters of letters, digits and ``@._:+=-``."""
    return _validate_id(
        value, what="recipient id", max_chars=MAX_RECIPIENT_CHARS, error=InvalidRecipient
    )


def validate_text(value: object, *, max_chars: int) -> str:
    """Message text: non-blank, at most ``max_chars`` code points, valid Unicode, no controls.

    Tabs and line breaks are allowed; NUL and the other control characters, and
    lone surrogates (text that is not valid Unicode), are refused with their index.
    """
    if not isinstance(value, str):
        raise InvalidText(f"text must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidText("text is empty")
    if len(value) > max_chars:
        raise InvalidText(
            f"text is {len(value):,} characters; the maximum is {max_chars:,} "
            "(DELIVERY_MAX_TEXT_CHARS)"
        )
    if not value.strip():
        raise InvalidText("text is only whitespace")
    bad = _SURROGATE.search(value)
    if bad:
        raise InvalidText(
            f"text has a lone surrogate U+{ord(bad.group()):04X} at index {bad.start()} "
            "(it is not valid Unicode)"
        )
    bad = _CONTROL.search(value)
    if bad:
        raise InvalidText(
            f"text has a control character U+{ord(bad.group()):04X} at index {bad.start()}"
        )
    return value


def _validate_opaque(
    value: object, *, what: str, max_chars: int, error: type[Exception], secret: bool
) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise error(f"{what} is empty")
    if len(value) > max_chars:
        raise error(f"{what} is {len(value)} characters; the maximum is {max_chars}")
    if not _PRINTABLE_ASCII.fullmatch(value):
        shown = "" if secret else f" {value[:80]!r}"
        raise error(f"{what}{shown} must be printable ASCII without spaces")
    return value


def validate_idempotency_key(value: object, *, what: str = "idempotency key") -> str | None:
    """An optional idempotency (or collapse) key: printable ASCII without spaces, at
    most 256 characters."""
    if value is None:
        return None
    return _validate_opaque(
        value,
        what=what,
        max_chars=MAX_IDEMPOTENCY_KEY_CHARS,
        error=InvalidIdempotencyKey,
        secret=False,
    )


def validate_reply_to(value: object) -> str | None:
    """An optional reference to the inbound message a reply answers: the platform's
    message id (a number or its digits) or another printable ASCII id, at most 128
    characters. Returned as text."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _validate_opaque(
        value, what="reply_to", max_chars=MAX_REPLY_TO_CHARS, error=InvalidReplyTo, secret=False
    )


def validate_context_token(value: object) -> str | None:
    """An optional context token, as the platform handed it over with an inbound message."""
    if value is None:
        return None
    return _validate_opaque(
        value,
        what="context token",
        max_chars=MAX_CONTEXT_TOKEN_CHARS,
        error=InvalidContextToken,
        secret=True,
    )


def validate_token(value: object) -> str:
    """A bot token: 8-1024 printable ASCII characters. Never echoed in an error."""
    token = _validate_opaque(
        value, what="token", max_chars=MAX_TOKEN_CHARS, error=InvalidToken, secret=True
    )
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidToken(f"token is {len(token)} characters; the minimum is {MIN_TOKEN_CHARS}")
    return token


def mask_token(token: str) -> str:
    """``••••`` and the last four characters (none at all for a short token): what an
    operator may see of a token, to tell tokens apart."""
    if len(token) < 3 * _SHOWN_TAIL:
        return "••••"
    return "••••" + token[-_SHOWN_TAIL:]


def validate_base_url(value: object) -> str:
    """A platform base URL: absolute ``http`` or ``https`` with a host; a trailing / is dropped."""
    if not isinstance(value, str) or not value:
        raise InvalidBaseUrl("base URL is empty")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidBaseUrl(f"base URL {value[:200]!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidBaseUrl(
            f"base URL {parts.scheme}://{parts.hostname} must not carry credentials, "
            "a query or a fragment"
        )
    return value.rstrip("/")


def parse_message_id(value: object) -> int:
    """A message id as :func:`delivery.enqueue` returns it (a decimal string) to its row id."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessageId(f"message id must be a str, not {type(value).__name__}")
    text = str(value)
    if not text.isascii() or not text.isdigit() or text.startswith("0") or len(text) > 19:
        raise InvalidMessageId(f"message id {text[:40]!r} is not a message id")
    return int(text)


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` serves this machine alone: ``localhost`` or a
    loopback IP address. Names are not resolved: any other one counts as remote, as
    do ``0.0.0.0`` and ``""`` (every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
