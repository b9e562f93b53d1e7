"""What ``getupdates`` handed out, read: pure functions, no I/O.

An answer carries ``msgs`` (a list), the next cursor ``get_updates_buf`` and how
long the platform holds a poll (``longpolling_timeout_ms``). Each message is read
as known clients read it:

========================  =============================================================
field                     what it becomes
========================  =============================================================
``message_id``            the platform's id: a uint64 (number or decimal text); without
                          one, ``c:`` and the ``client_id``; neither: malformed
``from_user_id``          the reader (a malformed id: malformed)
``message_type`` 2        the bot's own message, echoed: not inbound, skipped
``item_list``             text items (type 1) and voice transcriptions (type 3) joined
                          by newlines; every item's type kept; none, or not a list:
                          malformed
``create_time_ms``        when the reader wrote (never later than its receipt); absent
                          or nonsense: the receipt
``context_token``         kept for the reader's replies; a malformed one is dropped
========================  =============================================================

The fingerprint names sender and text (whitespace collapsed), for the copies the
platform re-sends under a new id; a message without text has none.

Example::

    read_item({"message_id": 7, "from_user_id": "u@im.wechat",
               "item_list": [{"type": 1, "text_item": {"text": "hi"}}]}, received_at=now)
    # InboundItem(platform_message_id='7', peer_id='u@im.wechat', text='hi', ...)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from delivery.errors import InvalidInput
from delivery.ilink.protocol import ITEM_TYPE_TEXT, MESSAGE_ID_MAX, MESSAGE_TYPE_BOT
from delivery.validation import validate_context_token, validate_recipient

__all__ = [
    "InboundItem",
    "Malformed",
    "NotInbound",
    "Updates",
    "fingerprint",
    "read_item",
    "read_updates",
]

ITEM_TYPE_VOICE: Final = 3  # its voice_item.text is the platform's transcription
_CLIENT_ID_PREFIX: Final = "c:"
_MAX_CLIENT_ID_CHARS: Final = 120
_EXCERPT_CHARS: Final = 2000
# Before this a create_time_ms is no date a platform would stamp (2001-09-09).
_EARLIEST_MS: Final = 10**12


@dataclass(frozen=True)
class Updates:
    """One ``getupdates`` answer: its items as they came, the next cursor (``None``:
    keep the one sent) and the platform's long-poll time (``None``: not said)."""

    items: list[Any]
    cursor: str | None
    longpolling_timeout_ms: int | None


@dataclass(frozen=True)
class InboundItem:
    """A reader's message, read."""

    platform_message_id: str
    peer_id: str
    text: str
    item_types: tuple[int, ...]
    written_at: dt.datetime
    context_token: str | None = field(default=None, repr=False)
    dropped_token: bool = False  # it came with a context token that was malformed

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(peer_id=self.peer_id, text=self.text)


@dataclass(frozen=True)
class Malformed:
    """An item that is no message this service can read, and why."""

    reason: str
    raw_excerpt: str
    platform_message_id: str | None = None
    peer_id: str | None = None


@dataclass(frozen=True)
class NotInbound:
    """An item that is not a reader's message (the bot's own, echoed)."""

    reason: str


def read_updates(payload: dict[str, Any]) -> Updates:
    """The parts of an accepted ``getupdates`` answer.

    Raises:
        ValueError: ``msgs`` is there but not a list (nothing in it can be trusted).
    """
    msgs = payload.get("msgs")
    if msgs is None:
        msgs = []
    if not isinstance(msgs, list):
        raise ValueError(f"msgs is a {type(msgs).__name__}, not a list")
    cursor = payload.get("get_updates_buf")
    timeout = payload.get("longpolling_timeout_ms")
    return Updates(
        items=msgs,
        cursor=cursor if isinstance(cursor, str) and cursor else None,
        longpolling_timeout_ms=timeout if _is_int(timeout) and timeout > 0 else None,
    )


def fingerprint(*, peer_id: str, text: str) -> str | None:
    """A short name for (sender, text), whitespace collapsed; ``None`` without text."""
    normalized = " ".join(text.split())
    if not normalized:
        return None
    return hashlib.sha256(f"{peer_id}\n{normalized}".encode()).hexdigest()[:32]


def read_item(raw: Any, *, received_at: dt.datetime) -> InboundItem | Malformed | NotInbound:
    """Read one item of ``msgs``; never raises."""
    if not isinstance(raw, dict):
        return Malformed(f"not a JSON object but {_kind(raw)}", _excerpt(raw))
    if _is_int(raw.get("message_type")) and raw["message_type"] == MESSAGE_TYPE_BOT:
        return NotInbound("the bot's own message")
    message_id, id_problem = _message_id(raw)
    peer = raw.get("from_user_id")
    if id_problem is not None:
        return Malformed(id_problem, _excerpt(raw), peer_id=peer if isinstance(peer, str) else None)
    try:
        peer_id = validate_recipient(peer)
    except InvalidInput as exc:
        return Malformed(f"from_user_id: {exc}", _excerpt(raw), platform_message_id=message_id)
    texts, types, item_problem = _items(raw.get("item_list"))
    if item_problem is not None:
        return Malformed(item_problem, _excerpt(raw), message_id, peer_id)
    token, dropped = _context_token(raw.get("context_token"))
    assert message_id is not None
    return InboundItem(
        platform_message_id=message_id,
        peer_id=peer_id,
        text="\n".join(texts),
        item_types=types,
        written_at=_written_at(raw.get("create_time_ms"), received_at=received_at),
        context_token=token,
        dropped_token=dropped,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: object) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _excerpt(raw: Any) -> str:
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except ValueError:  # a circular structure cannot come from JSON; be safe anyway
        text = repr(raw)
    return text[:_EXCERPT_CHARS]


def _message_id(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """The message's id and, if it has none that can be used, why."""
    value = raw.get("message_id")
    if value is None:
        client_id = raw.get("client_id")
        if isinstance(client_id, str) and 0 < len(client_id) <= _MAX_CLIENT_ID_CHARS:
            return _CLIENT_ID_PREFIX + client_id, None
        return None, "no message_id and no client_id"
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not _is_int(value) or not 0 <= value <= MESSAGE_ID_MAX:
        return None, f"message_id {str(value)[:40]!r} is not a uint64"
    return str(value), None


def _items(item_list: Any) -> tuple[list[str], tuple[int, ...], str | None]:
    """The texts and types of the items, or why they cannot be read."""
    if not isinstance(item_list, list):
        return [], (), f"item_list is {_kind(item_list)}, not a list"
    if not item_list:
        return [], (), "item_list is empty"
    texts: list[str] = []
    types: list[int] = []
    for index, item in enumerate(item_list):
        kind = item.get("type") if isinstance(item, dict) else None
        if not _is_int(kind):
            return [], (), f"item_list[{index}] is not an object with a whole-number type"
        assert isinstance(item, dict) and isinstance(kind, int)
        types.append(kind)
        holder = {ITEM_TYPE_TEXT: "text_item", ITEM_TYPE_VOICE: "voice_item"}.get(kind)
        body = item.get(holder) if holder else None
        text = body.get("text") if isinstance(body, dict) else None
        if isinstance(text, str) and text.strip():
            texts.append(text)
    return texts, tuple(types), None


def _context_token(value: Any) -> tuple[str | None, bool]:
    if value is None or value == "":
        return None, False
    try:
        return validate_context_token(value), False
    except InvalidInput:
        return None, True


def _written_at(value: Any, *, received_at: dt.datetime) -> dt.datetime:
    if not _is_int(value) or value < _EARLIEST_MS:
        return received_at
    try:
        written = dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return received_at
    return min(written, received_at)
