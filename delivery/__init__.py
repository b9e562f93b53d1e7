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
from delivery.api import (
    ChunkInfo,
    MessageInfo,
    OutboundMessage,
    enqueue,
    enqueue_many,
    get_status,
    record_context_token,
)
from delivery.errors import (
    ConfigError,
    DeliveryError,
    InvalidInput,
    LedgerError,
    LedgerNotReady,
    MessageNotFound,
    UnknownAccount,
)
from delivery.worker.app import app

__all__ = [
    "AccountInfo",
    "ChunkInfo",
    "ConfigError",
    "DeliveryError",
    "InvalidInput",
    "LedgerError",
    "LedgerNotReady",
    "MessageInfo",
    "MessageNotFound",
    "OutboundMessage",
    "UnknownAccount",
    "add_account",
    "app",
    "enqueue",
    "enqueue_many",
    "get_status",
    "list_accounts",
    "record_context_token",
]
