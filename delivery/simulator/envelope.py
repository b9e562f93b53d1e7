"""Strict checks of what a client sends: headers, ``base_info`` and endpoint fields.

The real platform may be lenient, but the simulator is not: a client that forgets a
header or sends a wrong field should fail in a test, loudly, with HTTP 400 and an
errmsg naming the problem. Every check raises :class:`BadRequest`; the functions
return typed values the model works on.

Example::

    envelope = check_envelope(headers, body)         # raises BadRequest
    send = parse_sendmessage(envelope.fields)
    send.client_id
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

from delivery.ilink.protocol import (
    APP_ID,
    CHANNEL_VERSION,
    CLIENT_VERSION,
    ITEM_TYPE_TEXT,
    MESSAGE_STATE_FINISH,
    MESSAGE_TYPE_BOT,
)

__all__ = [
    "BadRequest",
    "Envelope",
    "HeaderSource",
    "SendMessage",
    "bearer_token",
    "check_envelope",
    "parse_getconfig",
    "parse_getupdates",
    "parse_sendmessage",
    "parse_sendtyping",
]

_UINT32_MAX: Final = 2**32 - 1
_TYPING_STATUSES: Final = frozenset({1, 2})  # 1 starts the indicator, 2 stops it


class BadRequest(ValueError):
    """A malformed request; the message says what is wrong and never repeats a token."""


class HeaderSource(Protocol):
    """Anything with case-insensitive ``get``, such as ``http.server``'s headers."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class Envelope:
    """A request that passed the envelope checks: the token, the UIN and the fields."""

    token: str
    uin: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class SendMessage:
    """The parts of a ``sendmessage`` the platform acts on."""

    to_user_id: str
    client_id: str
    text: str
    context_token: str | None


def bearer_token(headers: HeaderSource) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or ``None`` if there is none."""
    value = headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme != "Bearer" or not token.strip():
        return None
    return token.strip()


def _expect_header(headers: HeaderSource, name: str, expected: str) -> None:
    value = headers.get(name)
    if value is None:
        raise BadRequest(f"header {name} is missing")
    if value != expected:
        raise BadRequest(f"header {name} is {value[:40]!r}, expected {expected!r}")


def _check_content_type(headers: HeaderSource) -> None:
    value = headers.get("Content-Type")
    if value is None:
        raise BadRequest("header Content-Type is missing")
    media_type, _, parameters = value.partition(";")
    # A charset parameter is harmless if it says UTF-8; anything else is a client bug.
    charset_ok = parameters.strip().lower() in ("", "charset=utf-8")
    if media_type.strip().lower() != "application/json" or not charset_ok:
        raise BadRequest(f"header Content-Type is {value[:60]!r}, expected 'application/json'")


def _check_uin(headers: HeaderSource) -> str:
    value = headers.get("X-WECHAT-UIN")
    if value is None:
        raise BadRequest("header X-WECHAT-UIN is missing")
    try:
        decimal = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("header X-WECHAT-UIN is not base64 of ASCII") from exc
    # str(int) round-trip refuses signs, spaces and leading zeros the client never sends.
    if not decimal.isdigit() or str(int(decimal)) != decimal or int(decimal) > _UINT32_MAX:
        raise BadRequest("header X-WECHAT-UIN is not base64 of a decimal uint32")
    return value


def check_envelope(headers: HeaderSource, body: bytes) -> Envelope:
    """Check the headers and body every POST carries; return the token, UIN and fields."""
    _check_content_type(headers)
    _expect_header(headers, "AuthorizationType", "ilink_bot_token")
    token = bearer_token(headers)
    if token is None:
        raise BadRequest("header Authorization is not 'Bearer <token>'")
    uin = _check_uin(headers)
    _expect_header(headers, "iLink-App-Id", APP_ID)
    _expect_header(headers, "iLink-App-ClientVersion", str(CLIENT_VERSION))
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest("body is not UTF-8 JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("body is not a JSON object")
    base_info = payload.pop("base_info", None)
    if not isinstance(base_info, dict):
        raise BadRequest("base_info is missing")
    if base_info.get("channel_version") != CHANNEL_VERSION:
        raise BadRequest(f"base_info.channel_version is not {CHANNEL_VERSION!r}")
    return Envelope(token=token, uin=uin, fields=payload)


def _field(fields: dict[str, Any], name: str, kind: type, *, where: str = "") -> Any:
    if name not in fields:
        raise BadRequest(f"{where}{name} is missing")
    value = fields[name]
    # bool is an int in Python, but a message_type of true is a client bug.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{where}{name} must be a {kind.__name__}")
    return value


def _optional_token(fields: dict[str, Any], *, where: str) -> str | None:
    if "context_token" not in fields:
        return None
    value = fields["context_token"]
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}context_token must be a non-empty string when present")
    return value


def parse_sendmessage(fields: dict[str, Any]) -> SendMessage:
    """Check the ``msg`` of a ``sendmessage``: one text item, bot type, finished state."""
    msg = _field(fields, "msg", dict)
    where = "msg."
    if not isinstance(msg.get("from_user_id", ""), str):
        raise BadRequest("msg.from_user_id must be a string")
    to_user_id = _field(msg, "to_user_id", str, where=where)
    client_id = _field(msg, "client_id", str, where=where)
    if not to_user_id or not client_id:
        raise BadRequest("msg.to_user_id and msg.client_id must not be empty")
    if _field(msg, "message_type", int, where=where) != MESSAGE_TYPE_BOT:
        raise BadRequest(f"msg.message_type must be {MESSAGE_TYPE_BOT}")
    if _field(msg, "message_state", int, where=where) != MESSAGE_STATE_FINISH:
        raise BadRequest(f"msg.message_state must be {MESSAGE_STATE_FINISH}")
    items = _field(msg, "item_list", list, where=where)
    if len(items) != 1 or not isinstance(items[0], dict):
        raise BadRequest("msg.item_list must hold exactly one item")
    item = items[0]
    if _field(item, "type", int, where="msg.item_list[0].") != ITEM_TYPE_TEXT:
        raise BadRequest(f"msg.item_list[0].type must be {ITEM_TYPE_TEXT} (text)")
    text_item = _field(item, "text_item", dict, where="msg.item_list[0].")
    text = _field(text_item, "text", str, where="msg.item_list[0].text_item.")
    if not text:
        raise BadRequest("msg.item_list[0].text_item.text is empty")
    return SendMessage(
        to_user_id=to_user_id,
        client_id=client_id,
        text=text,
        context_token=_optional_token(msg, where=where),
    )


def parse_getconfig(fields: dict[str, Any]) -> str | None:
    """Check a ``getconfig``; return its ``context_token``, if any."""
    _field(fields, "ilink_user_id", str)
    return _optional_token(fields, where="")


def parse_sendtyping(fields: dict[str, Any]) -> None:
    """Check a ``sendtyping``: user id, the ticket from ``getconfig``, status 1 or 2."""
    _field(fields, "ilink_user_id", str)
    if not _field(fields, "typing_ticket", str):
        raise BadRequest("typing_ticket is empty")
    if _field(fields, "status", int) not in _TYPING_STATUSES:
        raise BadRequest("status must be 1 (start) or 2 (stop)")


def parse_getupdates(fields: dict[str, Any]) -> str:
    """Check a ``getupdates``; return the cursor (``""`` on the first call)."""
    value: str = _field(fields, "get_updates_buf", str)
    return value
