"""What the agent gets for each inbound message, by whichever channel.

The same fields reach a Celery task (its one argument, as JSON), a webhook (the
POST body) and a callback (this object). ``idempotency_key`` is the platform's
message id qualified by the account: a message handed over twice (a relay that
died mid-call, a broker that restarted) comes with the same key, so the agent
handles it once. No context token travels: replies through ``delivery.enqueue``
carry the reader's latest one by themselves.

Example (JSON)::

    {"idempotency_key": "bot-1:9223372036854775809", "account_id": "bot-1",
     "peer_id": "o9cq80...@im.wechat", "text": "what's on today?", "item_types": [1],
     "platform_message_id": "9223372036854775809", "inbound_id": 42,
     "written_at": "2026-11-30T08:00:01.250000+00:00",
     "received_at": "2026-11-30T08:00:01.262000+00:00"}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["InboundEvent", "idempotency_key"]


def idempotency_key(*, account_id: str, platform_message_id: str) -> str:
    """The key an inbound message is handed over with, every time."""
    return f"{account_id}:{platform_message_id}"


@dataclass(frozen=True)
class InboundEvent:
    """One reader's message to the bot, for the agent."""

    idempotency_key: str
    account_id: str
    peer_id: str
    text: str  # text items and voice transcriptions, joined by newlines ("" for none)
    item_types: tuple[int, ...]  # 1 text, 2 image, 3 voice, 4 file, 5 video
    platform_message_id: str
    inbound_id: int  # the ledger's row (``delivery inbox``)
    written_at: dt.datetime  # when the reader wrote (the platform's time)
    received_at: dt.datetime  # when the relay recorded it

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["item_types"] = list(self.item_types)
        payload["written_at"] = self.written_at.isoformat()
        payload["received_at"] = self.received_at.isoformat()
        return payload
