"""The states a message, a chunk, an attempt and a reader can be in, and what they mean.

A message is ``queued`` until its first chunk is accepted, ``sending`` while some
but not all chunks are, then ``delivered``; or ``unconfirmed`` when every chunk was
accepted but some without the ``message_id`` the account's accepted answers carry
(the platform's silent drop: it took the send and may never deliver it); or
``dead`` with a reason; or ``superseded`` by a newer message with the same collapse key. A dead or
superseded message's chunks are ``sent`` (accepted before it ended), ``failed``
(the one that killed it) or ``unsent`` (never tried, or given up on): nothing is
silently dropped. An open message whose chat waits for its reader (the reply
window closed, or the reader's budget spent) is *shown* as ``awaiting_reader``;
its stored state stays ``queued`` or ``sending``.

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
    "ClosedReason",
    "HandoverChannel",
    "HandoverOutcome",
    "HandoverStatus",
    "InboundStatus",
    "MessageStatus",
    "ParkReason",
    "Priority",
    "ReaderState",
    "SessionState",
]


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    # Every chunk accepted, but some without a message_id: possibly dropped silently.
    UNCONFIRMED = "unconfirmed"
    DEAD = "dead"
    SUPERSEDED = "superseded"  # a newer message with the same collapse key replaced it
    # Shown, never stored: an open message whose chat waits for its reader.
    AWAITING_READER = "awaiting_reader"


OPEN_MESSAGE_STATES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})
FINAL_MESSAGE_STATES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNCONFIRMED,
        MessageStatus.DEAD,
        MessageStatus.SUPERSEDED,
    }
)


class Priority(enum.IntEnum):
    """A message's place among its account's first parts (``messages.priority``): a
    reply to a reader's message goes before every push not yet started."""

    REPLY = 1
    PUSH = 2


class ChunkStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNSENT = "unsent"


class ParkReason(enum.StrEnum):
    """What a parked head waits for. No task holds it: the event that ends the wait
    publishes it (and the reconciler does, should that publish be lost)."""

    SESSION = "session"  # the account's session expired; a healed session wakes it
    READER = "reader"  # the reader's window closed or budget spent; their message wakes it


class AttemptOutcome(enum.StrEnum):
    """The class of one send attempt, as :func:`delivery.ilink.classify.classify` decides."""

    IN_FLIGHT = "in_flight"  # written before the call; replaced by the answer's class
    LOST = "lost"  # the worker died mid-call: nobody knows whether it arrived
    ACCEPTED = "accepted"
    # ret 0 without the message_id this account's accepted answers carry: the API took
    # it, and the platform may have dropped it silently.
    UNCONFIRMED = "unconfirmed"
    RATE_LIMITED = "rate_limited"
    # A bare -2: the account's limit or this reader's closed window; a probe decides,
    # and then the attempt reads rate_limited or reader_refused.
    REFUSED = "refused"
    READER_REFUSED = "reader_refused"  # this reader's window closed or budget spent
    SESSION_EXPIRED = "session_expired"
    STALE_CONTEXT = "stale_context"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class ReaderState(enum.StrEnum):
    """What is known of a reader (a peer of an account): see ``delivery.policy.reader_rules``."""

    OPEN = "open"  # wrote within the reply window, and sends are left of their budget
    WINDOW_CLOSED = "window_closed"  # last wrote longer ago than the window (or refused)
    BUDGET_SPENT = "budget_spent"  # the sends allowed per inbound message are spent
    # The platform accepts sends to them without a message_id and delivers none: their
    # messages wait until they write (or an operator clears it).
    DROPPING = "dropping"
    UNKNOWN = "unknown"  # never heard from: the pipeline only sends


class ClosedReason(enum.StrEnum):
    """Why a reader is held closed since their last message (``readers.closed_reason``)."""

    SUSPECTED = "suspected"  # a bare refusal the pipeline's probe has not decided yet
    REFUSED = "refused"  # the platform refused a send as this reader's
    # Held as a suspect, judged the account's rate limit, and freed by the account's next
    # accepted send: a bare refusal now (the account just proved it can send) is theirs.
    RELEASED = "released"


class SessionState(enum.StrEnum):
    UNKNOWN = "unknown"  # never validated: sends go ahead and find out
    OK = "ok"
    EXPIRED = "expired"


class InboundStatus(enum.StrEnum):
    """What became of one item ``getupdates`` handed out (``inbound_messages.status``)."""

    RECEIVED = "received"  # a reader's message: their state updated, handed to the agent
    DUPLICATE = "duplicate"  # the same text from the same sender again, under a new id
    MALFORMED = "malformed"  # not a message this service can read; kept with the reason


class HandoverChannel(enum.StrEnum):
    """How an inbound message reaches the agent (each configured one gets it)."""

    TASK = "task"  # a Celery task the agent's workers consume (DELIVERY_INBOUND_TASK)
    WEBHOOK = "webhook"  # a signed POST (DELIVERY_INBOUND_WEBHOOK_URL)
    CALLBACK = "callback"  # a Python function in the relay (DELIVERY_INBOUND_CALLBACK)


class HandoverStatus(enum.StrEnum):
    PENDING = "pending"  # not handed over yet (or to be handed over again)
    DONE = "done"  # the channel took it: the broker, a 2xx, the callback returned


class HandoverOutcome(enum.StrEnum):
    """One attempt to hand a message over (``inbound_attempts.outcome``)."""

    IN_FLIGHT = "in_flight"  # written before the call; replaced by what happened
    LOST = "lost"  # the relay died mid-call: handed over again, with the same key
    DELIVERED = "delivered"
    FAILED = "failed"
