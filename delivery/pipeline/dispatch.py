"""Handing chunks to the broker, always after the ledger has committed them.

A publish is a hint, never the record: if it fails (broker down, Redis flushed),
the chunk is still pending in SQL and the reconciler publishes it again once its
lease has run out. The pipeline only knows the :class:`Publisher` protocol; the
one that talks to Celery is built by :mod:`delivery.runtime` and injected, so
nothing here imports the worker.

Each publish carries the chunk's generation (see :mod:`delivery.ledger.outbox`),
and its task id is derived from both, so the reconciler can tell a task that is
merely late in the queue from one that is lost.

Example::

    with session_scope(engine) as db:
        armed = outbox.arm_conversations(db, [("bot-1", "u@im.wechat")], now=now)
    publish_all(publisher, armed)            # after the commit
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from sqlalchemy import Engine

from delivery.errors import LedgerError
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.outbox import Armed
from delivery.ledger.queries import Conversation
from delivery.ledger.states import ParkReason
from delivery.ledger.types import utcnow

__all__ = [
    "SEND_TASK",
    "Publisher",
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


class Publisher(Protocol):
    """Publishes one armed chunk's send task; False (logged) when the broker refused."""

    def __call__(self, armed: Armed) -> bool: ...


def publish_all(publisher: Publisher, armed: Iterable[Armed]) -> int:
    """Publish each armed chunk, giving up on the rest at the first refusal.

    A broker that refused one publish is down: trying each of the others would
    block the caller for the broker's timeout every time, and the reconciler
    publishes them anyway once their leases run out. Returns how many went.
    """
    pending = list(armed)
    for done, item in enumerate(pending):
        if not publisher(item):
            left = len(pending) - done
            if left > 1:
                log.warning(
                    "the broker refused a publish; %d more chunk(s) are left to the "
                    "reconciler (they stay pending in the ledger)",
                    left - 1,
                )
            return done
    return len(pending)


def wake_conversations(
    engine: Engine, publisher: Publisher, conversations: Collection[Conversation]
) -> list[Armed]:
    """Arm and publish the head of each conversation; return what was armed.

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
    """Arm and publish each new message (id to its chat) that is its chat's head;
    call after the insert committed. One statement in one transaction: an older
    head already has its task, a head parked at enqueue waits for its event."""
    if not messages:
        return []
    # A hint: lost in a database crash, the heads are armed again by the reconciler
    # (their leases ran out at the enqueue), and a task of the lost generation exits.
    with session_scope(engine, hint=True) as db:
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
    """Arm and publish the account's heads parked on ``reason`` (one peer's, if
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
