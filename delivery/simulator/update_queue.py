"""Inbound messages waiting for ``getupdates``, in the platform's message shape.

**The cursor model.** Every inbound message gets the next number of a sequence.
The cursor (``get_updates_buf``) the simulator answers is opaque to the client and
names the last number it handed out. A ``getupdates`` *acknowledges* everything
up to the cursor it carries: those messages are dropped for good, for every
client. It is answered with every message past the account's acknowledged point
and a cursor naming the last of them. So:

- a client that polls again with the cursor it was given moves on;
- a client that re-sends an older cursor (it died before saving the new one) gets
  again what it has not acknowledged, and never what someone acknowledged since;
- a second client polling the same account steals: what the first acknowledges is
  gone for the second, which is the hazard the protocol notes warn about;
- an empty or unreadable cursor acknowledges nothing.

A message is sent as known clients read it: ``seq``, ``message_id`` (a uint64 as a
JSON number), ``from_user_id``, ``to_user_id``, ``client_id``, ``create_time_ms``
(wall-clock milliseconds), ``message_type`` 1, ``message_state`` 2,
``context_token`` and ``item_list`` with one text item. A test may also queue any
JSON value as an item (a malformed one), and re-send a message under a new id, as
the platform has been seen to do.

Example::

    inbox = Inbox()
    sent = inbox.add(account_id="bot-1", from_user_id="u@im.wechat", text="hi", now_ms=0)
    msgs, cursor = inbox.take("bot-1", cursor="")      # [the message], its cursor
    msgs, cursor = inbox.take("bot-1", cursor=cursor)  # [] (acknowledged)
"""

from __future__ import annotations

import base64
import binascii
import copy
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from delivery.ilink.protocol import ITEM_TYPE_TEXT, MESSAGE_STATE_FINISH
from delivery.simulator.rules import new_message_id

__all__ = ["MESSAGE_TYPE_USER", "Inbox", "Injected"]

# A message a person sent (bots send type 2); as known clients read it.
MESSAGE_TYPE_USER: Final = 1
_CURSOR_PREFIX: Final = "sim:"


@dataclass(frozen=True)
class Injected:
    """A queued inbound message: its platform id (a uint64 in decimal) and context token."""

    message_id: str
    context_token: str


@dataclass
class _Queued:
    seq: int
    item: Any  # a message in the platform's shape, or whatever a test queued


@dataclass
class _AccountInbox:
    queued: list[_Queued] = field(default_factory=list)
    acknowledged: int = 0
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # by message_id


def encode_cursor(seq: int) -> str:
    """The opaque cursor naming ``seq``."""
    return base64.b64encode(f"{_CURSOR_PREFIX}{seq}".encode("ascii")).decode("ascii")


def decode_cursor(cursor: str) -> int:
    """The sequence number a cursor names; 0 (nothing) for an empty or unreadable one."""
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return 0
    number = text.removeprefix(_CURSOR_PREFIX)
    return int(number) if text.startswith(_CURSOR_PREFIX) and number.isdigit() else 0


@dataclass
class Inbox:
    """Inbound messages per account, with the cursor model above. Not thread-safe: the
    model locks it."""

    _accounts: dict[str, _AccountInbox] = field(default_factory=dict)
    _seq: int = 0

    def _box(self, account_id: str) -> _AccountInbox:
        return self._accounts.setdefault(account_id, _AccountInbox())

    def _queue(self, account_id: str, item: Any) -> None:
        self._seq += 1
        self._box(account_id).queued.append(_Queued(seq=self._seq, item=item))

    def add(
        self,
        *,
        account_id: str,
        from_user_id: str,
        text: str,
        now_ms: int,
        context_token: str | None = None,
    ) -> Injected:
        """Queue a message from ``from_user_id`` to the bot, written at ``now_ms``.

        A fresh context token is made up when none is given, as the platform does
        for every inbound message.
        """
        if not from_user_id or not text:
            raise ValueError("from_user_id and text must not be empty")
        token = context_token or f"simctx-{secrets.token_urlsafe(12)}"
        message_id = new_message_id()
        message = {
            "seq": self._seq + 1,
            "message_id": int(message_id),  # a JSON number, as the platform sends it
            "from_user_id": from_user_id,
            "to_user_id": account_id,
            "client_id": f"simin-{secrets.token_hex(6)}",
            "create_time_ms": now_ms,
            "message_type": MESSAGE_TYPE_USER,
            "message_state": MESSAGE_STATE_FINISH,
            "context_token": token,
            "item_list": [{"type": ITEM_TYPE_TEXT, "text_item": {"text": text}}],
        }
        self._box(account_id).sent[message_id] = message
        self._queue(account_id, message)
        return Injected(message_id=message_id, context_token=token)

    def resend(self, *, account_id: str, message_id: str, now_ms: int) -> Injected:
        """Queue message ``message_id`` again under a new id (same sender, text and
        context token), as the platform has been seen to do.

        Raises:
            KeyError: the account never got a message with that id.
        """
        original = self._box(account_id).sent.get(message_id)
        if original is None:
            raise KeyError(f"{account_id} message {message_id}")
        copied = copy.deepcopy(original)
        new_id = new_message_id()
        copied.update(seq=self._seq + 1, message_id=int(new_id), create_time_ms=now_ms)
        self._box(account_id).sent[new_id] = copied
        self._queue(account_id, copied)
        return Injected(message_id=new_id, context_token=str(copied["context_token"]))

    def add_raw(self, *, account_id: str, item: Any) -> None:
        """Queue ``item`` as it is, malformed or not (a test of the client's checks)."""
        self._queue(account_id, copy.deepcopy(item))

    def pending(self, account_id: str) -> int:
        """How many messages wait past the account's acknowledged point."""
        box = self._accounts.get(account_id)
        return 0 if box is None else len(box.queued)

    def take(self, account_id: str, *, cursor: str) -> tuple[list[Any], str]:
        """Acknowledge up to ``cursor``; return what is left and the cursor naming it."""
        box = self._box(account_id)
        box.acknowledged = max(box.acknowledged, decode_cursor(cursor))
        box.queued = [q for q in box.queued if q.seq > box.acknowledged]
        last = box.queued[-1].seq if box.queued else box.acknowledged
        return [copy.deepcopy(q.item) for q in box.queued], encode_cursor(last)

    def clear(self) -> None:
        """Forget every message and cursor."""
        self._accounts.clear()
        self._seq = 0
