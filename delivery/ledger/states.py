"""The states a message, a chunk and an attempt can be in, and what they mean.

A message is ``queued`` until its first chunk is accepted, ``sending`` while some
but not all chunks are, then ``delivered``; or ``dead`` with a reason. A dead
message's chunks are ``sent`` (accepted before it died), ``failed`` (the one that
killed it) or ``unsent`` (never tried, or given up on): nothing is silently dropped.

Example::

    MessageStatus.DELIVERED in FINAL_MESSAGE_STATES    # True
"""

from __future__ import annotations

import enum

__all__ = [
    "FINAL_MESSAGE_STATES",
    "OPEN_MESSAGE_STATES",
    "AttemptOutcome",
    "ChunkStatus",
    "MessageStatus",
    "ParkReason",
    "SessionState",
]


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"


OPEN_MESSAGE_STATES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})
FINAL_MESSAGE_STATES = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.DEAD, MessageStatus.SUPERSEDED}
)


class ChunkStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNSENT = "unsent"


class ParkReason(enum.StrEnum):
    """What a parked head waits for. No task holds it: the event that ends the wait
    publishes it (and the reconciler does, should that publish be lost)."""

    SESSION = "session"  # the account's session expired; a healed session wakes it


class AttemptOutcome(enum.StrEnum):
    """The class of one send attempt, as :func:`delivery.ilink.classify.classify` decides."""

    IN_FLIGHT = "in_flight"  # written before the call; replaced by the answer's class
    LOST = "lost"  # the worker died mid-call: nobody knows whether it arrived
    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"
    SESSION_EXPIRED = "session_expired"
    STALE_CONTEXT = "stale_context"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class SessionState(enum.StrEnum):
    UNKNOWN = "unknown"  # never validated: sends go ahead and find out
    OK = "ok"
    EXPIRED = "expired"
