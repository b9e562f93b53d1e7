"""The public enqueue API: validate, chunk, write the ledger, then publish.

``enqueue`` writes the message and its chunks in one transaction and hands the
message to the pipeline only after the commit. If the broker cannot be reached
the message simply stays queued in SQL, and the reconciler publishes it later:
a publish failure loses nothing. Bad input raises an
:class:`~delivery.errors.InvalidInput` and writes nothing.

Example::

    from delivery import enqueue, get_status
    message_id = enqueue("bot-1", "o9cq8@im.wechat", "Good morning!", idempotency_key="brief-0601")
    get_status(message_id).status        # "queued", then "sending", then "delivered"
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from delivery import runtime
from delivery.chunking import split_text
from delivery.errors import InvalidInput, LedgerError, UnknownAccount
from delivery.inbound.heard import record_heard, release_dropping
from delivery.ledger import outbox, readers
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Message
from delivery.ledger.queries import IN_LIST_BATCH
from delivery.ledger.readers import remember_context_token
from delivery.ledger.states import ParkReason, Priority, SessionState
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import wake_conversations, wake_new_messages
from delivery.settings import Settings
from delivery.validation import (
    validate_account_id,
    validate_context_token,
    validate_idempotency_key,
    validate_recipient,
    validate_reply_to,
    validate_text,
)

__all__ = [
    "OutboundMessage",
    "clear_dropping",
    "enqueue",
    "enqueue_many",
    "record_context_token",
    "record_inbound",
]

log = logging.getLogger(__name__)

# A concurrent enqueue with the same idempotency key makes our insert fail;
# the next try finds the other's row. More than a few tries means a real fault.
_MAX_WRITE_TRIES = 3


@dataclass(frozen=True)
class OutboundMessage:
    """One message for :func:`enqueue_many`; the fields mean what :func:`enqueue`'s do."""

    account_id: str
    to_user_id: str
    text: str
    idempotency_key: str | None = None
    context_token: str | None = None
    source: str | None = None  # who produced it, e.g. "briefing:daily"; shown by the CLI
    collapse_key: str | None = None  # of several undelivered with one key, only the newest goes
    reply_to: str | None = None  # the inbound message it answers: it goes before pushes
    push: bool = False  # never a reply, even just after the reader wrote (a briefing)


@dataclass(frozen=True)
class _Prepared:
    message: OutboundMessage
    chunks: list[str]
    sha256: str


def enqueue(
    account_id: str,
    to_user_id: str,
    text: str,
    *,
    idempotency_key: str | None = None,
    context_token: str | None = None,
    collapse_key: str | None = None,
    reply_to: str | int | None = None,
) -> str:
    """Queue ``text`` for delivery to ``to_user_id`` through ``account_id``; return its id.

    The text is split into platform-sized chunks (at paragraph, line, then word
    boundaries). The same ``idempotency_key`` for the same account returns the
    first message's id and creates nothing. ``context_token`` is the peer's latest
    context token (from an inbound message); it is stored and used for the send.
    ``collapse_key``: of several undelivered messages to this reader with the same
    key, only the newest is sent; the older ones end as ``superseded`` (yesterday's
    leaderboard is worth nothing today). ``reply_to``: the inbound message this
    answers (the platform's message id, or any id of the caller's): a reply goes
    before every push of the account not yet started, still in order within its
    chat; a message enqueued within ``DELIVERY_REPLY_WINDOW_SECONDS`` of its
    reader's last message is a reply too.

    Raises:
        InvalidInput: unknown account, empty/whitespace/oversized text, control
            characters or lone surrogates, malformed ids. Nothing is written.
        LedgerError: the database is unreachable. Nothing is written.
    """
    message = OutboundMessage(
        account_id=account_id,
        to_user_id=to_user_id,
        text=text,
        idempotency_key=idempotency_key,
        context_token=context_token,
        collapse_key=collapse_key,
        reply_to=None if reply_to is None else str(reply_to),
    )
    return _enqueue([message], numbered=False)[0]


def enqueue_many(messages: Iterable[OutboundMessage]) -> list[str]:
    """Queue many messages in one transaction; return their ids in the same order.

    All messages are validated before anything is written: one bad message
    refuses the whole batch, and the error says which (``message 3: text is empty``).

    Raises:
        InvalidInput, LedgerError: as :func:`enqueue`.
    """
    return _enqueue(list(messages), numbered=True)


def _enqueue(messages: Sequence[OutboundMessage], *, numbered: bool) -> list[str]:
    process = runtime.current()
    settings = process.settings
    prepared = []
    for index, message in enumerate(messages):
        try:
            prepared.append(_prepare(message, settings))
        except InvalidInput as exc:
            if not numbered:
                raise
            raise type(exc)(f"message {index}: {exc}") from None
    if not prepared:
        return []
    engine = process.engine
    ids, created, promoted = _write_with_retry(engine, prepared, settings)
    if created:
        chats = {message_id: (m.account_id, m.to_user_id) for message_id, m in created.items()}
        try:
            wake_new_messages(engine, process.publisher, chats)
            if promoted:
                # a reply carries its chat's earlier messages before the pushes with it
                wake_conversations(engine, process.publisher, promoted)
        except LedgerError as exc:
            # Committed already: raising now would make a caller retry and queue it twice.
            log.warning(
                "%d message(s) enqueued; publishing them waits for the reconciler (%s)",
                len(created),
                exc,
            )
    return [str(message_id) for message_id in ids]


def _prepare(message: OutboundMessage, settings: Settings) -> _Prepared:
    validate_account_id(message.account_id)
    validate_recipient(message.to_user_id)
    text = validate_text(message.text, max_chars=settings.max_text_chars)
    validate_idempotency_key(message.idempotency_key)
    validate_context_token(message.context_token)
    validate_idempotency_key(message.collapse_key, what="collapse key")
    validate_reply_to(message.reply_to)
    # Every part of a long text keeps room for the notice that may end the last one
    # a reader's budget allows ("... 3 more parts: reply to get them").
    reserve = settings.reader_notice_chars if settings.reader_limits else 0
    chunks = split_text(text, max_chars=settings.chunk_max_chars, reserve=reserve)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _Prepared(message=message, chunks=chunks, sha256=digest)


_Written = tuple[list[int], dict[int, OutboundMessage], set[tuple[str, str]]]


def _write_with_retry(engine: Engine, prepared: list[_Prepared], settings: Settings) -> _Written:
    for attempt in range(1, _MAX_WRITE_TRIES + 1):
        try:
            with session_scope(engine) as session:
                return _write(session, prepared, settings)
        except IntegrityError as exc:
            if attempt == _MAX_WRITE_TRIES:
                raise LedgerError(
                    f"the ledger refused the messages {_MAX_WRITE_TRIES} times "
                    f"({type(exc.orig).__name__}); nothing was written"
                ) from exc
            log.info("idempotency key taken by a concurrent enqueue; reading it back")
    raise AssertionError("unreachable")


def _write(session: Session, prepared: list[_Prepared], settings: Settings) -> _Written:
    """Insert what is new; return every message's id, the new ones by id, and the
    chats whose earlier messages a new reply promoted."""
    account_ids = {p.message.account_id for p in prepared}
    states: dict[str, str] = {
        account_id: state
        for account_id, state in session.execute(
            select(Account.id, Account.session_state).where(Account.id.in_(account_ids))
        )
    }
    for account_id in sorted(account_ids - states.keys()):
        raise UnknownAccount(
            f"unknown account {account_id!r}; add it with `delivery account add {account_id}`"
        )
    existing = _existing_keys(session, prepared)
    now = utcnow()
    deadline = now + dt.timedelta(seconds=settings.delivery_deadline_seconds)
    in_batch: dict[tuple[str, str], int] = {}  # key -> index in `new`
    new: list[_Prepared] = []
    picks: list[tuple[bool, int]] = []  # per input: (is new, its index in `new` or its id)
    for item in prepared:
        msg = item.message
        key = (msg.account_id, msg.idempotency_key) if msg.idempotency_key else None
        if key is not None and key in existing:
            message_id, to_user_id, sha = existing[key]
            _warn_if_different(item, message_id, to_user_id, sha)
            picks.append((False, message_id))
            continue
        if key is not None and key in in_batch:
            # The same key twice in one batch means the same message.
            first = new[in_batch[key]]
            _warn_if_different(item, None, first.message.to_user_id, first.sha256)
            picks.append((True, in_batch[key]))
            continue
        if key is not None:
            in_batch[key] = len(new)
        picks.append((True, len(new)))
        new.append(item)
    expired = {a for a, state in states.items() if state == SessionState.EXPIRED}
    replies = _replies(session, new, now=now, window_seconds=settings.reply_window_seconds)
    ids = outbox.insert_messages(
        session,
        [
            _new_message(item, parked=item.message.account_id in expired, reply=reply)
            for item, reply in zip(new, replies, strict=True)
        ],
        now=now,
        deadline=deadline,
    )
    promoted = outbox.promote_before_replies(
        session,
        [
            (item.message.account_id, item.message.to_user_id, message_id)
            for item, message_id, reply in zip(new, ids, replies, strict=True)
            if reply
        ],
    )
    for item in new:
        msg = item.message
        if msg.context_token:
            remember_context_token(
                session,
                account_id=msg.account_id,
                peer_id=msg.to_user_id,
                token=msg.context_token,
                now=now,
            )
    _supersede(session, new, ids, now=now)
    created = {message_id: item.message for message_id, item in zip(ids, new, strict=True)}
    parked = sum(1 for item in new if item.message.account_id in expired)
    _log_enqueued(new, ids, len(prepared), parked=parked)
    return [ids[n] if is_new else n for is_new, n in picks], created, promoted


def _replies(
    session: Session, new: list[_Prepared], *, now: dt.datetime, window_seconds: float
) -> list[bool]:
    """Which new messages are replies: those naming the message they answer, and those
    enqueued within ``window_seconds`` of their reader's last message (pushes never)."""
    unsure = {
        (item.message.account_id, item.message.to_user_id)
        for item in new
        if item.message.reply_to is None and not item.message.push
    }
    heard: dict[tuple[str, str], dt.datetime] = {}
    if unsure and window_seconds > 0:
        heard = readers.last_heard(
            session, unsure, since=now - dt.timedelta(seconds=window_seconds)
        )
    return [
        item.message.reply_to is not None
        or (not item.message.push and (item.message.account_id, item.message.to_user_id) in heard)
        for item in new
    ]


def _supersede(session: Session, new: list[_Prepared], ids: list[int], *, now: dt.datetime) -> None:
    """Of the undelivered messages to a reader with one collapse key, only the
    newest goes: the older ones (queued before, or earlier in this batch) end as
    superseded."""
    newest: dict[tuple[str, str, str], int] = {}
    for item, message_id in zip(new, ids, strict=True):
        msg = item.message
        if msg.collapse_key is not None:
            newest[(msg.account_id, msg.to_user_id, msg.collapse_key)] = message_id
    for (account_id, to_user_id, key), message_id in newest.items():
        gone = outbox.supersede(
            session,
            account_id=account_id,
            to_user_id=to_user_id,
            collapse_key=key,
            before_id=message_id,
            now=now,
        )
        if gone:
            log.info(
                "message(s) %s to %s superseded by message %s (collapse key %r)",
                ", ".join(map(str, gone)),
                to_user_id,
                message_id,
                key,
            )


def _new_message(item: _Prepared, *, parked: bool, reply: bool) -> outbox.NewMessage:
    msg = item.message
    return outbox.NewMessage(
        priority=Priority.REPLY if reply else Priority.PUSH,
        reply_to=msg.reply_to,
        account_id=msg.account_id,
        to_user_id=msg.to_user_id,
        idempotency_key=msg.idempotency_key,
        source=msg.source,
        text_sha256=item.sha256,
        text_chars=len(msg.text),
        chunks=item.chunks,
        parked_on=ParkReason.SESSION if parked else None,
        collapse_key=msg.collapse_key,
    )


def _existing_keys(
    session: Session, prepared: list[_Prepared]
) -> dict[tuple[str, str], tuple[int, str, str]]:
    keys = {
        (p.message.account_id, p.message.idempotency_key)
        for p in prepared
        if p.message.idempotency_key
    }
    if not keys:
        return {}
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), IN_LIST_BATCH):
        batch = ordered[start : start + IN_LIST_BATCH]
        rows = session.execute(
            select(
                Message.account_id,
                Message.idempotency_key,
                Message.id,
                Message.to_user_id,
                Message.text_sha256,
            ).where(tuple_(Message.account_id, Message.idempotency_key).in_(batch))
        )
        for account_id, key, message_id, to_user_id, sha in rows:
            assert key is not None
            found[(account_id, key)] = (message_id, to_user_id, sha)
    return found


def _warn_if_different(item: _Prepared, message_id: int | None, to_user_id: str, sha: str) -> None:
    if to_user_id != item.message.to_user_id or sha != item.sha256:
        log.warning(
            "idempotency key %r of account %s was first used%s with a different recipient "
            "or text; the first message stands and nothing new is queued",
            item.message.idempotency_key,
            item.message.account_id,
            f" for message {message_id}" if message_id is not None else " earlier in the batch",
        )


def _log_enqueued(new: list[_Prepared], ids: list[int], total: int, *, parked: int) -> None:
    for item, message_id in zip(new, ids, strict=True):
        log.log(
            logging.INFO if total == 1 else logging.DEBUG,
            "enqueued message %s from %s to %s: %d chunk(s), %d characters",
            message_id,
            item.message.account_id,
            item.message.to_user_id,
            len(item.chunks),
            len(item.message.text),
        )
    if total > 1:
        log.info(
            "enqueued %d message(s) in one batch (%d already known by idempotency key)",
            len(new),
            total - len(new),
        )
    if parked:
        log.warning(
            "%d new message(s) wait for an expired session: they go once a good token "
            "is stored (delivery login ACCOUNT, or delivery account add ACCOUNT --token -)",
            parked,
        )


def record_context_token(account_id: str, peer_id: str, token: str) -> None:
    """Deprecated: use :func:`delivery.record_inbound`, which this now calls.

    A context token comes with an inbound message, so storing it records that
    message (now): the reader's window reopens and their budget starts again.
    """
    warnings.warn(
        "record_context_token is deprecated; call record_inbound(account_id, peer_id, "
        "context_token=token)",
        DeprecationWarning,
        stacklevel=2,
    )
    record_inbound(account_id, peer_id, context_token=token)


def record_inbound(
    account_id: str,
    peer_id: str,
    *,
    context_token: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    """``peer_id`` wrote to ``account_id`` at ``at`` (now, by default).

    The reader's reply window reopens and their send budget starts again; the
    context token (from that message), when given, becomes the one replies carry;
    the chat's message that waited for the reader is published at once. An
    inbound message older than one already recorded changes nothing but a
    missing token. See :mod:`delivery.inbound.heard`.

    Raises:
        InvalidInput: unknown account, malformed peer or token (never echoed), or
            an ``at`` that is naive or in the future. Nothing is written.
        LedgerError: the database is unreachable. Nothing is written.
    """
    process = runtime.current()
    record_heard(
        process.engine,
        process.publisher,
        account_id,
        peer_id,
        context_token=context_token,
        at=at,
        deadline_seconds=process.settings.delivery_deadline_seconds,
    )


def clear_dropping(account_id: str, peer_id: str) -> bool:
    """An operator says ``peer_id`` no longer drops the account's sends silently (they
    were told, or the platform's protective measure ended): their messages that waited
    go now. Returns False when the reader was not held as dropping.

    Raises:
        InvalidInput: unknown account or a malformed peer. Nothing is written.
        LedgerError: the database is unreachable.
    """
    process = runtime.current()
    return release_dropping(process.engine, process.publisher, account_id, peer_id)
