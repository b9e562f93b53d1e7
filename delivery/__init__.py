"""delivery: durable delivery of outbound chat messages through rate-limited platform APIs.

Nothing lost, nothing duplicated, in order, as fast as the platform allows.

Example::

    import delivery
    delivery.add_account("bot-1", token="...", base_url="https://ilinkai.weixin.qq.com")
    message_id = delivery.enqueue("bot-1", "o9cq8@im.wechat", "Good morning!")
    delivery.get_status(message_id).status
    delivery.record_inbound("bot-1", "o9cq8@im.wechat", context_token=ctx)  # they wrote
    delivery.list_inbox("bot-1")  # what the relay received for an account that owns its inbound

``delivery.app`` is the Celery application (``celery -A delivery worker``).
"""

from __future__ import annotations

from delivery.api.account_admin import AccountInfo, add_account, list_accounts
from delivery.api.replay import ReplayResult, replay, replay_dead_since
from delivery.api.sending import (
    OutboundMessage,
    clear_dropping,
    enqueue,
    enqueue_many,
    record_context_token,
    record_inbound,
)
from delivery.errors import (
    ConfigError,
    DeliveryError,
    InvalidInput,
    LedgerError,
    LedgerNotReady,
    MessageNotFound,
    NotReplayable,
    UnknownAccount,
)
from delivery.inbound.event import InboundEvent
from delivery.read.inbox_views import InboxEntry, list_inbox
from delivery.read.message_views import (
    AttemptInfo,
    ChunkInfo,
    MessageInfo,
    get_attempts,
    get_status,
    list_messages,
)
from delivery.read.reader_views import ReaderInfo, list_readers
from delivery.worker.app import app

__all__ = [
    "AccountInfo",
    "AttemptInfo",
    "ChunkInfo",
    "ConfigError",
    "DeliveryError",
    "InboundEvent",
    "InboxEntry",
    "InvalidInput",
    "LedgerError",
    "LedgerNotReady",
    "MessageInfo",
    "MessageNotFound",
    "NotReplayable",
    "OutboundMessage",
    "ReaderInfo",
    "ReplayResult",
    "UnknownAccount",
    "add_account",
    "app",
    "clear_dropping",
    "enqueue",
    "enqueue_many",
    "get_attempts",
    "get_status",
    "list_accounts",
    "list_inbox",
    "list_messages",
    "list_readers",
    "record_context_token",
    "record_inbound",
    "replay",
    "replay_dead_since",
]
