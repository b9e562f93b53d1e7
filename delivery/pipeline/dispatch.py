"""Handing chunks to their account's line, always after the ledger has committed them.

An armed chunk (:class:`~delivery.ledger.outbox.Armed`) is *offered* to its
account's line in Redis (:meth:`~delivery.ratelimit.gate.AccountGate.offer`); when
the account's next slot is free, the line reserves it for the first part due and
that part's send task is published to run at the slot's time (:class:`TaskPublisher`).
A part that waits for its turn has no task: nothing polls.

An offer or a publish is a hint, never the record: if it fails (Redis down, the
broker down, Redis flushed), the chunk is still pending in SQL and the reconciler
offers it again once its lease has run out. With the line unreachable, each chunk
is published as its own task instead (it meets the gate when it runs).

Each task carries the chunk's generation (see :mod:`delivery.ledger.outbox`), and
its task id is derived from both, so the reconciler can tell a task that is merely
late in the queue from one that is lost.

Example::

    with session_scope(engine) as db:
        armed = outbox.arm_conversations(db, [("bot-1", "u@im.wechat")], now=now)
    publisher(armed)            # after the commit: offered to the line, a slot's task published
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from sqlalchemy import Engine

from delivery.errors import LedgerError, LimiterUnavailable
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.outbox import Armed
from delivery.ledger.queries import Conversation
from delivery.ledger.states import ParkReason
from delivery.ledger.types import utcnow
from delivery.ratelimit.gate import AccountGate, Offer, Pick

__all__ = [
    "SEND_TASK",
    "LineDispatcher",
    "Publisher",
    "TaskPublisher",
    "publish_all",
    "send_task_id",
    "wake_conversations",
    "wake_new_messages",
    "wake_parked",
]

log = logging.getLogger(__name__)

SEND_TASK = "delivery.send_chunk"


def send_task_id(chunk_id: int, generation: int) -> str:
    """The task id of a chunk's send task of one generation (kept across retries)."""
    return f"send-{chunk_id}-{generation}"


class TaskPublisher(Protocol):
    """Publishes the send task of a part that got a slot; False (logged) when refused."""

    def __call__(self, pick: Pick, account_id: str) -> bool: ...


class Publisher(Protocol):
    """Offers armed chunks to their lines, publishing the tasks of the slots that
    were reserved; returns how many tasks were published."""

    def __call__(self, armed: Sequence[Armed]) -> int: ...


def offers_of(armed: Iterable[Armed]) -> list[Offer]:
    """The offers of armed chunks (of one account) to its line."""
    return [
        Offer(str(item.chunk_id), item.generation, item.order, item.countdown_seconds)
        for item in armed
    ]


class LineDispatcher:
    """The :class:`Publisher` the pipeline, the API and the relay are handed."""

    def __init__(self, gate: AccountGate, tasks: TaskPublisher) -> None:
        self._gate = gate
        self._tasks = tasks

    def __call__(self, armed: Sequence[Armed]) -> int:
        by_account: dict[str, list[Armed]] = {}
        for item in armed:
            by_account.setdefault(item.account_id, []).append(item)
        published = 0
        for account_id, items in by_account.items():
            try:
                pick = self._gate.offer(account_id, offers_of(items))
            except LimiterUnavailable as exc:
                log.warning(
                    "account %s: its line is unreachable (%s); %d chunk(s) published as tasks "
                    "of their own",
                    account_id,
                    exc,
                    len(items),
                )
                published += self.publish_each(items)
                continue
            if pick is not None and self._tasks(pick, account_id):
                published += 1
        return published

    def in_line(self, account_id: str, chunk_ids: Collection[int]) -> set[int]:
        """Which of the account's chunks wait in its line (or hold its next slot)."""
        found = self._gate.in_line(account_id, {str(chunk_id) for chunk_id in chunk_ids})
        return {int(ticket) for ticket in found}

    def kick(self, account_id: str) -> bool:
        """Reserve the account's next slot if nobody holds it (its task was lost), and
        publish its task. True when one was published."""
        try:
            pick = self._gate.kick(account_id)
        except LimiterUnavailable as exc:
            log.warning("account %s: its line is unreachable (%s)", account_id, exc)
            return False
        return self.publish(pick, account_id)

    def publish(self, pick: Pick | None, account_id: str) -> bool:
        """Publish the task of a slot reserved for ``pick`` (nothing when None)."""
        return pick is not None and self._tasks(pick, account_id)

    def publish_each(self, armed: Iterable[Armed]) -> int:
        """Publish each chunk's task directly, giving up at the first refusal (a broker
        that refused one is down; the reconciler publishes the rest)."""
        pending = list(armed)
        for done, item in enumerate(pending):
            pick = Pick(str(item.chunk_id), item.generation, item.countdown_seconds)
            if not self._tasks(pick, item.account_id):
                if len(pending) - done > 1:
                    log.warning(
                        "the broker refused a publish; %d more chunk(s) are left to the "
                        "reconciler (they stay pending in the ledger)",
                        len(pending) - done - 1,
                    )
                return done
        return len(pending)


def publish_all(publisher: Publisher, armed: Iterable[Armed]) -> int:
    """Offer each armed chunk to its account's line (see :class:`LineDispatcher`)."""
    items = list(armed)
    return publisher(items) if items else 0


def wake_conversations(
    engine: Engine, publisher: Publisher, conversations: Collection[Conversation]
) -> list[Armed]:
    """Arm and offer the head of each conversation; return what was armed.

    Call after the transaction that changed the conversations has committed: a
    head computed after both commits cannot be missed by both sides (the sender
    finishing a message, and the enqueuer adding one).
    """
    if not conversations:
        return []
    with session_scope(engine) as db:
        armed = outbox.arm_conversations(db, conversations, now=utcnow())
    publish_all(publisher, armed)
    return armed


def wake_new_messages(
    engine: Engine, publisher: Publisher, messages: Mapping[int, Conversation]
) -> list[Armed]:
    """Arm and offer each new message (id to its chat) that is its chat's head;
    call after the insert committed. One statement in one transaction (two on
    PostgreSQL: it first waits for a send that is ending the chat's message, which
    arms the next head itself): an older head is in its line already, a head parked
    at enqueue waits for its event."""
    if not messages:
        return []
    # A hint: lost in a database crash, the heads are armed again by the reconciler
    # (their leases ran out at the enqueue), and a task of the lost generation exits.
    with session_scope(engine, hint=True) as db:
        outbox.lock_chat_senders(db, set(messages.values()))
        armed = outbox.arm_new_heads(db, messages, now=utcnow())
    publish_all(publisher, armed)
    return armed


def wake_parked(
    engine: Engine,
    publisher: Publisher,
    account_id: str,
    *,
    reason: ParkReason,
    peer_id: str | None = None,
) -> list[Armed]:
    """Arm and offer the account's heads parked on ``reason`` (one peer's, if
    given); call after the commit that cleared the reason. Returns what was armed.

    Never raises for the ledger: the reason is cleared already, so the
    reconciler wakes them if this cannot (it logs that).
    """
    try:
        with session_scope(engine) as db:
            armed = outbox.arm_parked(
                db,
                account_id=account_id,
                reason=reason,
                now=utcnow(),
                peer_id=peer_id,
            )
    except LedgerError as exc:
        log.warning(
            "account %s: chats parked on their %s not woken (%s); the reconciler will",
            account_id,
            reason,
            exc,
        )
        return []
    if armed:
        log.info("account %s: %d chat(s) parked on their %s resume", account_id, len(armed), reason)
    publish_all(publisher, armed)
    return armed
