"""delivery: durable delivery of outbound chat messages through rate-limited platform APIs.

Nothing lost, nothing duplicated, in order, as fast as the platform allows.

Example::

    import delivery
    delivery.add_account("bot-1", token="...", base_url="https://ilinkai.weixin.qq.com")
    message_id = delivery.enqueue("bot-1", "o9cq8@im.wechat", "Good morning!")
    delivery.get_status(message_id).status

``delivery.app`` is the Celery application (``celery -A delivery worker``).
"""

from __future__ import annotations

from delivery.accounts import AccountInfo, add_account, list_accounts
from delivery.api import OutboundMessage, enqueue, enqueue_many, record_context_token
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
from delivery.replay import ReplayResult, replay, replay_dead_since
from delivery.views import (
    AttemptInfo,
    ChunkInfo,
    MessageInfo,
    get_attempts,
    get_status,
    list_messages,
)
from delivery.worker.app import app

__all__ = [
    "AccountInfo",
    "AttemptInfo",
    "ChunkInfo",
    "ConfigError",
    "DeliveryError",
    "InvalidInput",
    "LedgerError",
    "LedgerNotReady",
    "MessageInfo",
    "MessageNotFound",
    "NotReplayable",
    "OutboundMessage",
    "ReplayResult",
    "UnknownAccount",
    "add_account",
    "app",
    "enqueue",
    "enqueue_many",
    "get_attempts",
    "get_status",
    "list_accounts",
    "list_messages",
    "record_context_token",
    "replay",
    "replay_dead_since",
]
