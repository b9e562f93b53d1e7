"""The SQL ledger: the durable truth about accounts, messages, chunks and attempts.

The schema is made only by the Alembic migrations in ``migrations/``; these models
describe it, and a test proves the two agree. Every send attempt is a row in
``attempts``, written before the platform is called and completed in the same
transaction that moves its chunk and message.

::

    accounts 1──* messages 1──* chunks 1──* attempts
    accounts 1──* readers (per peer: last inbound, budget, context token)
    accounts 1──* inbound_messages 1──* inbound_handovers (per channel) 1──* inbound_attempts
    accounts 1──1 inbound_cursors (the getupdates cursor of an account that owns its inbound)
    ledger_counters (running totals of outcomes, for metrics: see delivery.ledger.counters)

Example::

    with session_scope(engine) as session:
        message = session.get(Message, 42)
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from delivery.ledger.states import (
    ChunkStatus,
    HandoverStatus,
    InboundStatus,
    MessageStatus,
    SessionState,
)
from delivery.ledger.types import UTCDateTime, utcnow

__all__ = [
    "Account",
    "Attempt",
    "Base",
    "Briefing",
    "BriefingRun",
    "Chunk",
    "Counter",
    "Handover",
    "HandoverAttempt",
    "InboundCursor",
    "InboundMessage",
    "Message",
    "Reader",
]

# Deterministic constraint names, so migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A bot account on the platform, with its secret token and session state."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(512))
    token: Mapped[str] = mapped_column(String(1024))
    # Bumped on every rotation; a worker rebuilds its HTTP session when it changes.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    token_updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    session_state: Mapped[str] = mapped_column(String(16), default=SessionState.UNKNOWN)
    session_expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_validated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Only the owner of the inbound side may call getupdates (it consumes messages).
    owns_inbound: Mapped[bool] = mapped_column(Boolean, default=False)
    # The user the bot was logged in with (QR login); getconfig validates with it.
    ilink_user_id: Mapped[str | None] = mapped_column(String(256))
    # When the operator was alerted of the current expiry; cleared when it heals.
    session_alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The platform's limit as learned from a refusal (``delivery.ratelimit.learning``):
    # the account sends at most this fast until it is forgotten or reset.
    learned_rate_per_minute: Mapped[float | None] = mapped_column(Float)
    learned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    learned_from: Mapped[str | None] = mapped_column(Text)
    # The latest word on the account's pace: what a refusal taught, or why it taught
    # nothing, or that the ceiling rose again on evidence (``delivery status`` shows it).
    pace_note: Mapped[str | None] = mapped_column(Text)
    # A rate the account sent at for a long run without a refusal, once its ceiling
    # rose from it: a refusal above it falls back to it, not below.
    pace_proven_per_minute: Mapped[float | None] = mapped_column(Float)
    # A rate-limit cooldown in force, kept here so that losing Redis never sends into a
    # lockout; ``cooldown_strikes`` counts the cooldowns of the streak (each failed probe).
    cooldown_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cooldown_strikes: Mapped[int] = mapped_column(Integer, server_default="0")
    # The platform answers this account's accepted sends with a message_id: an accepted
    # answer without one is a silent drop (accepted, unconfirmed).
    confirms_sends: Mapped[bool] = mapped_column(Boolean, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, base_url={self.base_url!r}, session={self.session_state})"


class Message(Base):
    """One outbound text to one recipient, split into chunks at enqueue time."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        # The head-of-line query: the oldest open message of a conversation.
        Index("ix_messages_conversation", "account_id", "to_user_id", "status", "id"),
        # Superseding: the open messages of a chat with the same collapse key.
        Index("ix_messages_collapse", "account_id", "to_user_id", "collapse_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    to_user_id: Mapped[str] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED, index=True)
    source: Mapped[str | None] = mapped_column(String(128))
    text_sha256: Mapped[str] = mapped_column(String(64))
    text_chars: Mapped[int] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # When the message ended (delivered; dead or superseded): retention selects by these.
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    dead_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    dead_reason: Mapped[str | None] = mapped_column(Text)
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    # Of several undelivered messages to a reader with one key, only the newest goes.
    collapse_key: Mapped[str | None] = mapped_column(String(256))
    # Its place among the account's first parts: a reply (1) goes before a push (2).
    priority: Mapped[int] = mapped_column(Integer, server_default="2")
    # The inbound message it answers, as the caller named it (a platform message id).
    reply_to: Mapped[str | None] = mapped_column(String(128))

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="message", order_by="Chunk.seq", cascade="all, delete-orphan"
    )


class Chunk(Base):
    """One platform-sized piece of a message; ``client_id`` is fixed at creation."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("message_id", "seq"),
        Index("ix_chunks_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1-based position in the message
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Transient failures spent from the budget; waits and rate limits spend none.
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    # The lease (see delivery.ledger.outbox): every publish bumps the generation,
    # a task carries the one it was published with, and a stale task exits.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # By when the live task must have run or re-armed; past it, it is taken for lost.
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What a parked head waits for (a ParkReason); no task holds a parked chunk.
    parked_on: Mapped[str | None] = mapped_column(String(16))

    message: Mapped[Message] = relationship(back_populates="chunks")
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="chunk", order_by="Attempt.attempt_no", cascade="all, delete-orphan"
    )


class Attempt(Base):
    """One call to the platform for one chunk, with the raw answer kept as it came."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("chunk_id", "attempt_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    ret: Mapped[int | None] = mapped_column(Integer)
    errcode: Mapped[int | None] = mapped_column(Integer)
    errmsg: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    used_context_token: Mapped[bool] = mapped_column(Boolean, default=False)
    # A short fingerprint of the context token sent, never the token itself.
    context_token_fingerprint: Mapped[str | None] = mapped_column(String(16))
    worker_host: Mapped[str | None] = mapped_column(String(255))
    # The platform's id of an accepted message (a uint64, kept as its decimal text).
    platform_message_id: Mapped[str | None] = mapped_column(String(32))

    chunk: Mapped[Chunk] = relationship(back_populates="attempts")


class Reader(Base):
    """A peer of an account, as a reader: when they last wrote, what they may get.

    The platform delivers a bot's messages to a reader only within a reply window
    after the reader's last message, and only so many per inbound message. An
    inbound message (``record_inbound``) sets ``last_inbound_at``, resets
    ``sends_since_inbound`` and clears ``closed_reason``; each accepted send
    counts one. ``closed_reason`` records that the platform refused a send as this
    reader's since then (``suspected`` while a probe decides, ``refused`` once it
    did). The replies' context token is kept here too (the latest one, and when
    a send with it failed as stale). The state an operator reads is derived, by
    :func:`delivery.policy.reader_rules.reader_state`.
    """

    __tablename__ = "readers"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    peer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sends_since_inbound: Mapped[int] = mapped_column(Integer, default=0)
    closed_reason: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    context_token: Mapped[str | None] = mapped_column(Text)
    context_token_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set when a send with this token failed as stale; sends then go without it.
    context_token_stale_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Accepted sends in a row answered without a message_id (silent drops), and since
    # when the reader is held as dropping: their messages wait until they write.
    unconfirmed_in_row: Mapped[int] = mapped_column(Integer, server_default="0")
    dropping_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(Base):
    """One item ``getupdates`` handed out: a reader's message, a re-sent copy of one,
    or something malformed, kept with the reason.

    ``platform_message_id`` is the platform's id (a uint64 in decimal; ``c:`` and the
    ``client_id`` when it sent none): unique per account, so a message handed out
    again is recorded once. ``fingerprint`` names sender and text, for the copies
    the platform re-sends under a new id. ``written_at`` is when the reader wrote
    (the platform's time, never later than ``received_at``).
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("account_id", "platform_message_id"),
        Index("ix_inbound_messages_fingerprint", "account_id", "fingerprint", "written_at"),
        Index("ix_inbound_messages_peer", "account_id", "peer_id", "id"),
        # Retention: the oldest received first (see delivery.ledger.retention).
        Index("ix_inbound_messages_received_at", "received_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    peer_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default=InboundStatus.RECEIVED)
    # Why it is not handed over: malformed, or the duplicate of which message.
    reason: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    item_types: Mapped[str | None] = mapped_column(String(64))  # e.g. "1,2"
    fingerprint: Mapped[str | None] = mapped_column(String(32))
    written_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Of a malformed item: its first characters as JSON, for the operator.
    raw_excerpt: Mapped[str | None] = mapped_column(Text)

    handovers: Mapped[list[Handover]] = relationship(
        back_populates="message", cascade="all, delete-orphan"
    )


class InboundCursor(Base):
    """The ``getupdates`` cursor of an account; moved only in the transaction that
    records what the poll it came with handed out, and only from the cursor that
    poll was sent with (a compare-and-set: it never moves back)."""

    __tablename__ = "inbound_cursors"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    advanced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Handover(Base):
    """Handing one inbound message to the agent by one channel, until it is done.

    A claim (``claimed_until``) keeps two relays from handing it over at once; a
    claim that ran out belongs to a relay that died, and the next one hands it
    over again, with the same idempotency key. The attempt whose number is
    ``attempt_count`` holds the claim, and only it may finish the hand-over.
    """

    __tablename__ = "inbound_handovers"
    __table_args__ = (Index("ix_inbound_handovers_due", "status", "next_attempt_at"),)

    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=HandoverStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    # The broker (Redis run id) a task was published to; a restarted one lost it.
    broker_run_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)

    message: Mapped[InboundMessage] = relationship(back_populates="handovers")


class HandoverAttempt(Base):
    """One attempt to hand a message over by one channel, written before the call."""

    __tablename__ = "inbound_attempts"
    __table_args__ = (UniqueConstraint("inbound_id", "channel", "attempt_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"))
    channel: Mapped[str] = mapped_column(String(16))
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    worker_host: Mapped[str | None] = mapped_column(String(255))


class Briefing(Base):
    """A named schedule that produces text for recipients of an account.

    ``producer`` is an import path (``package.module:callable``); the callable
    gets a :class:`delivery.briefings.BriefingSlot` and returns the text, or a
    mapping of recipient to text. ``schedule`` is ``every <seconds>`` or a
    five-field crontab evaluated in ``timezone``.
    """

    __tablename__ = "briefings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    recipients: Mapped[str] = mapped_column(Text)  # JSON list of recipient ids
    producer: Mapped[str] = mapped_column(String(256))
    schedule: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    runs: Mapped[list[BriefingRun]] = relationship(
        back_populates="briefing", cascade="all, delete-orphan"
    )


class BriefingRun(Base):
    """One due slot of a briefing. Unique per (briefing, slot): a slot runs once."""

    __tablename__ = "briefing_runs"
    __table_args__ = (UniqueConstraint("briefing_id", "slot_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    briefing_id: Mapped[int] = mapped_column(ForeignKey("briefings.id"))
    slot_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    briefing: Mapped[Briefing] = relationship(back_populates="runs")


class Counter(Base):
    """A running total of outcomes, written only by :mod:`delivery.ledger.counters`.

    A total is the sum of its ``shard`` rows (concurrent writers spread over them);
    ``total`` sums a measured value (seconds of latency) where one is kept.
    """

    __tablename__ = "ledger_counters"

    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
