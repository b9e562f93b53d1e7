"""Inbound messages waiting for ``getupdates``, in the platform's message shape.

``getupdates`` *consumes*: each call hands out every message not handed out before,
whatever cursor the client sends, so a second poller steals messages from the
first, which is the hazard the protocol notes warn about. The cursor the simulator
returns is opaque and only counts what was handed out.

Example::

    inbox = Inbox()
    token = inbox.add(account_id="bot-1", from_user_id="u@im.wechat", text="hi")
    msgs, cursor = inbox.take("bot-1")
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from delivery.ilink.protocol import ITEM_TYPE_TEXT, MESSAGE_STATE_FINISH

__all__ = ["MESSAGE_TYPE_USER", "Inbox"]

# A message a person sent (bots send type 2); as known clients read it.
MESSAGE_TYPE_USER: Final = 1


@dataclass
class Inbox:
    """Pending inbound messages per account. Not thread-safe: the model locks it."""

    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _handed_out: int = 0

    def add(
        self, *, account_id: str, from_user_id: str, text: str, context_token: str | None = None
    ) -> str:
        """Queue a message from ``from_user_id`` to the bot; return its context token.

        A fresh context token is made up when none is given, as the platform does
        for every inbound message.
        """
        if not from_user_id or not text:
            raise ValueError("from_user_id and text must not be empty")
        token = context_token or f"simctx-{secrets.token_urlsafe(12)}"
        self._pending.setdefault(account_id, []).append(
            {
                "from_user_id": from_user_id,
                "to_user_id": account_id,
                "client_id": f"simin-{secrets.token_hex(6)}",
                "message_type": MESSAGE_TYPE_USER,
                "message_state": MESSAGE_STATE_FINISH,
                "context_token": token,
                "item_list": [{"type": ITEM_TYPE_TEXT, "text_item": {"text": text}}],
            }
        )
        return token

    def take(self, account_id: str) -> tuple[list[dict[str, Any]], str]:
        """Hand out (and forget) the account's pending messages, with the next cursor."""
        msgs = self._pending.pop(account_id, [])
        self._handed_out += len(msgs)
        cursor = base64.b64encode(f"sim:{self._handed_out}".encode("ascii")).decode("ascii")
        return msgs, cursor

    def clear(self) -> None:
        """Forget every pending message."""
        self._pending.clear()
        self._handed_out = 0
