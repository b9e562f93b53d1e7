"""Strict checks of what a client sends: headers, ``base_info`` and endpoint fields.

The simulator accepts what the platform accepts and nothing it would refuse: a
client that forgets a header or sends a wrong field should fail in a test, loudly,
with HTTP 400 and an errmsg naming the problem. Every check raises
:class:`BadRequest`; the functions return typed values the model works on.

The client's version is not one fixed value: any ``iLink-App-ClientVersion`` that
packs ``major.minor.patch`` (a decimal under 2**24) and any non-empty
``base_info.channel_version`` string are accepted, and both are kept in the
request's :class:`~delivery.simulator.records.ClientIdentity`, so a test can see
what a client said it was.

==========================  ===========================================================
request                     checked
==========================  ===========================================================
authenticated POST          Content-Type, AuthorizationType, Bearer token, X-WECHAT-UIN,
                            iLink-App-Id, iLink-App-ClientVersion, ``base_info``
POST ``get_bot_qrcode``     the same without a token; ``local_token_list``, a list of
                            strings; ``base_info`` only if present
GET (QR login)              iLink-App-Id and iLink-App-ClientVersion only if present
                            (older clients send none)
==========================  ===========================================================

Example::

    envelope = check_envelope(headers, body)         # raises BadRequest
    send = parse_sendmessage(envelope.fields)
    envelope.client.client_version                   # '132105'
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from delivery.ilink.protocol import (
    APP_ID,
    HEADER_APP_ID,
    HEADER_CLIENT_VERSION,
    HEADER_ROUTE_TAG,
    ITEM_TYPE_TEXT,
    MESSAGE_STATE_FINISH,
    MESSAGE_TYPE_BOT,
    QR_LOCAL_TOKENS_FIELD,
    ClientVersion,
)
from delivery.simulator.records import ClientIdentity

__all__ = [
    "BadRequest",
    "Envelope",
    "HeaderSource",
    "QrRequest",
    "SendMessage",
    "bearer_token",
    "check_envelope",
    "check_get_headers",
    "check_qrcode_request",
    "parse_getconfig",
    "parse_getupdates",
    "parse_sendmessage",
    "parse_sendtyping",
]

_UINT32_MAX: Final = 2**32 - 1
# Bounds on what a client may call itself; the official client caps bot_agent at 256 bytes.
_CHANNEL_VERSION_MAX_CHARS: Final = 64
_BOT_AGENT_MAX_BYTES: Final = 256
_TYPING_STATUSES: Final = frozenset({1, 2})  # 1 starts the indicator, 2 stops it


class BadRequest(ValueError):
    """A malformed request; the message says what is wrong and never repeats a token."""


class HeaderSource(Protocol):
    """Anything with case-insensitive ``get``, such as ``http.server``'s headers."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class Envelope:
    """A request that passed the envelope checks: the token, the UIN, who sent it, the fields."""

    token: str
    uin: str
    client: ClientIdentity
    fields: dict[str, Any]


@dataclass(frozen=True)
class QrRequest:
    """A POST of ``get_bot_qrcode`` that passed the checks: the tokens the client holds."""

    uin: str
    client: ClientIdentity
    local_tokens: tuple[str, ...] = field(repr=False)


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


def _check_client_version(headers: HeaderSource, *, required: bool) -> str | None:
    value = headers.get(HEADER_CLIENT_VERSION)
    if value is None:
        if required:
            raise BadRequest(f"header {HEADER_CLIENT_VERSION} is missing")
        return None
    # str(int) round-trip refuses signs, spaces and leading zeros; unpack the top byte.
    if not value.isascii() or not value.isdigit() or str(int(value)) != value:
        raise BadRequest(f"header {HEADER_CLIENT_VERSION} is {value[:40]!r}, not a decimal")
    try:
        ClientVersion.unpack(int(value))
    except ValueError as exc:
        raise BadRequest(
            f"header {HEADER_CLIENT_VERSION} is {value[:40]!r}, not a packed major.minor.patch"
        ) from exc
    return value


def _check_app_id(headers: HeaderSource, *, required: bool) -> str | None:
    value = headers.get(HEADER_APP_ID)
    if value is None and not required:
        return None
    _expect_header(headers, HEADER_APP_ID, APP_ID)
    return value


def _identity_headers(headers: HeaderSource, *, required: bool) -> ClientIdentity:
    """The app id, client version and route tag headers; required on every POST."""
    return ClientIdentity(
        app_id=_check_app_id(headers, required=required),
        client_version=_check_client_version(headers, required=required),
        route_tag=headers.get(HEADER_ROUTE_TAG),
    )


def _post_headers(headers: HeaderSource) -> tuple[str, ClientIdentity]:
    """The headers every POST carries, a token aside; returns the UIN and the identity."""
    _check_content_type(headers)
    _expect_header(headers, "AuthorizationType", "ilink_bot_token")
    uin = _check_uin(headers)
    return uin, _identity_headers(headers, required=True)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest("body is not UTF-8 JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("body is not a JSON object")
    return payload


def _with_base_info(client: ClientIdentity, base_info: object) -> ClientIdentity:
    """Check ``base_info`` and add what it says to the identity."""
    if base_info is None:
        raise BadRequest("base_info is missing")
    if not isinstance(base_info, dict):
        raise BadRequest("base_info is not an object")
    channel_version = base_info.get("channel_version")
    if not isinstance(channel_version, str):
        raise BadRequest("base_info.channel_version must be a string")
    if not channel_version.strip() or not channel_version.isprintable():
        raise BadRequest("base_info.channel_version must be printable and not empty")
    if len(channel_version) > _CHANNEL_VERSION_MAX_CHARS:
        raise BadRequest(f"base_info.channel_version is over {_CHANNEL_VERSION_MAX_CHARS} chars")
    bot_agent = base_info.get("bot_agent")
    if bot_agent is not None:
        if not isinstance(bot_agent, str):
            raise BadRequest("base_info.bot_agent must be a string when present")
        if len(bot_agent.encode("utf-8")) > _BOT_AGENT_MAX_BYTES:
            raise BadRequest(f"base_info.bot_agent is over {_BOT_AGENT_MAX_BYTES} bytes")
    return dataclasses.replace(client, channel_version=channel_version, bot_agent=bot_agent)


def check_envelope(headers: HeaderSource, body: bytes) -> Envelope:
    """Check the headers and body every authenticated POST carries.

    Raises:
        BadRequest: naming the first problem.
    """
    uin, client = _post_headers(headers)
    token = bearer_token(headers)
    if token is None:
        raise BadRequest("header Authorization is not 'Bearer <token>'")
    payload = _json_object(body)
    client = _with_base_info(client, payload.pop("base_info", None))
    return Envelope(token=token, uin=uin, client=client, fields=payload)


def check_qrcode_request(headers: HeaderSource, body: bytes) -> QrRequest:
    """Check a POST of ``get_bot_qrcode``: no token, ``{"local_token_list": [str, ...]}``.

    Raises:
        BadRequest: naming the first problem (never a token).
    """
    uin, client = _post_headers(headers)
    if headers.get("Authorization") is not None and bearer_token(headers) is None:
        raise BadRequest("header Authorization is not 'Bearer <token>'")
    payload = _json_object(body)
    if "base_info" in payload:
        client = _with_base_info(client, payload.pop("base_info"))
    tokens = _field(payload, QR_LOCAL_TOKENS_FIELD, list)
    if not all(isinstance(token, str) and token for token in tokens):
        raise BadRequest(f"{QR_LOCAL_TOKENS_FIELD} must hold non-empty strings only")
    return QrRequest(uin=uin, client=client, local_tokens=tuple(tokens))


def check_get_headers(headers: HeaderSource) -> ClientIdentity:
    """Check the identity headers of a GET, which are optional but must be well formed.

    Raises:
        BadRequest: a header is present and malformed.
    """
    return _identity_headers(headers, required=False)


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
