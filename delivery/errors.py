"""The one error tree of ``delivery``.

Every exception the package raises on purpose derives from :class:`DeliveryError`.
Third-party exceptions (requests, SQLAlchemy, redis, pydantic) are translated at
exactly one boundary each and chained with ``raise ... from exc``; none of them
carries a token or a message text in its ``str()``.

::

    DeliveryError
    ├── ConfigError                  a setting is missing or makes no sense (start-up)
    ├── InvalidInput (ValueError)    bad input at the public API; nothing was written
    │   ├── UnknownAccount
    │   ├── InvalidAccountId
    │   ├── InvalidRecipient
    │   ├── InvalidText
    │   ├── InvalidIdempotencyKey
    │   ├── InvalidContextToken
    │   ├── InvalidToken
    │   ├── InvalidBaseUrl
    │   ├── InvalidMessageId
    │   ├── InvalidInboundTime       an inbound message's time: naive, or in the future
    │   ├── InvalidReplyTo           what enqueue(reply_to=...) names is no message id
    │   └── NotReplayable            only a dead message can be replayed
    ├── MessageNotFound (LookupError)
    ├── LedgerError                  the SQL ledger cannot be used
    │   └── LedgerNotReady           no schema / not at the migration head
    ├── LoginError                   the QR login did not end with a token
    ├── BriefingError                a briefing definition or producer is unusable
    └── PlatformError                the platform or the way to it failed
        ├── RetryableError           try again later; the chunk stays pending
        │   ├── TransportError       timeout, connection reset, DNS, TLS
        │   └── LimiterUnavailable   Redis (limiter, lock, cooldown) unreachable
        └── PermanentError           do not try again

Example::

    try:
        delivery.enqueue("bot-1", "", "")
    except delivery.InvalidInput as exc:
        print(exc)          # text is empty
"""

from __future__ import annotations

__all__ = [
    "BriefingError",
    "ConfigError",
    "DeliveryError",
    "InvalidAccountId",
    "InvalidBaseUrl",
    "InvalidContextToken",
    "InvalidIdempotencyKey",
    "InvalidInboundTime",
    "InvalidInput",
    "InvalidMessageId",
    "InvalidRecipient",
    "InvalidReplyTo",
    "InvalidText",
    "InvalidToken",
    "LedgerError",
    "LedgerNotReady",
    "LimiterUnavailable",
    "LoginError",
    "MessageNotFound",
    "NotReplayable",
    "PermanentError",
    "PlatformError",
    "RetryableError",
    "TransportError",
    "UnknownAccount",
]


class DeliveryError(Exception):
    """Root of every error ``delivery`` raises on purpose."""


class ConfigError(DeliveryError):
    """A setting is missing or nonsensical; the message names the variable."""


class InvalidInput(DeliveryError, ValueError):
    """Input to the public API was refused before anything was written."""


class UnknownAccount(InvalidInput):
    """The account id names no account in the ledger."""


class InvalidAccountId(InvalidInput):
    """An account id is empty, too long or has characters outside the allowed set."""


class InvalidRecipient(InvalidInput):
    """A recipient (``to_user_id``) is empty, too long or malformed."""


class InvalidText(InvalidInput):
    """Message text is empty, too long, or holds control characters or lone surrogates."""


class InvalidIdempotencyKey(InvalidInput):
    """An idempotency key is empty, too long or not printable."""


class InvalidContextToken(InvalidInput):
    """A context token is empty, too long or not printable."""


class InvalidToken(InvalidInput):
    """A bot token is empty or malformed. The message never repeats the token."""


class InvalidBaseUrl(InvalidInput):
    """A platform base URL is not an absolute http(s) URL."""


class InvalidMessageId(InvalidInput):
    """A message id is not of the form ``enqueue`` returns."""


class InvalidInboundTime(InvalidInput):
    """An inbound message's time is naive or lies in the future."""


class InvalidReplyTo(InvalidInput):
    """``reply_to`` is not the id of an inbound message (digits, or printable ASCII)."""


class NotReplayable(InvalidInput):
    """The message is not dead (queued, sending or delivered): there is nothing to replay."""


class MessageNotFound(DeliveryError, LookupError):
    """No message has this id."""


class LedgerError(DeliveryError):
    """The SQL ledger could not be read or written."""


class LedgerNotReady(LedgerError):
    """The database has no schema or is behind the migration head."""


class LoginError(DeliveryError):
    """The QR login failed: expired too often, timed out, or the platform refused."""


class BriefingError(DeliveryError):
    """A briefing cannot be defined or run (bad schedule, producer not importable)."""


class PlatformError(DeliveryError):
    """The platform, or the way to it, failed."""


class RetryableError(PlatformError):
    """A failure that may pass; the work stays pending and is tried again."""


class TransportError(RetryableError):
    """The HTTP exchange failed (timeout, reset, refused). It may or may not have arrived."""


class LimiterUnavailable(RetryableError):
    """Redis, which holds the rate limiter, the send lock and the cooldowns, is unreachable."""


class PermanentError(PlatformError):
    """The platform refused the request for good."""
