"""The iLink Bot API wire format: every protocol fact lives here, once.

What is known of the API is observed behaviour, not a published specification
(see ``ilink-protocol.md`` beside the project). The client and the simulator both
build and read requests through this module, so a changed fact is changed once.

The client identifies itself by one version, :class:`ClientVersion` (a setting,
``DELIVERY_CLIENT_VERSION``): the ``iLink-App-ClientVersion`` header packs it into a
uint32 and ``base_info.channel_version`` spells it out, as the platform's own newest
client (openclaw-weixin 2.4.9) does. The platform accepts more than one version.

Example::

    version = ClientVersion.parse("2.4.9")
    body = encode_body(sendmessage_fields(to_user_id="u@im.wechat", client_id="dlv-1",
                                          text="hello", context_token=None),
                       client_version=version)
    headers = build_headers(token="secret", client_version=version)
    headers["iLink-App-ClientVersion"]        # '132105'
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "APP_ID",
    "DEFAULT_BASE_URL",
    "DEFAULT_CLIENT_VERSION",
    "ENDPOINT_GETCONFIG",
    "ENDPOINT_GETUPDATES",
    "ENDPOINT_NOTIFYSTART",
    "ENDPOINT_NOTIFYSTOP",
    "ENDPOINT_QRCODE",
    "ENDPOINT_QRCODE_STATUS",
    "ENDPOINT_SENDMESSAGE",
    "ENDPOINT_SENDTYPING",
    "ERRCODE_SESSION_EXPIRED",
    "HEADER_APP_ID",
    "HEADER_CLIENT_VERSION",
    "HEADER_ROUTE_TAG",
    "ITEM_TYPE_TEXT",
    "MESSAGE_ID_FIELD",
    "MESSAGE_ID_MAX",
    "MESSAGE_STATE_FINISH",
    "MESSAGE_TYPE_BOT",
    "QR_BOT_TYPE",
    "QR_LOCAL_TOKENS_FIELD",
    "QR_VERIFY_CODE_PARAM",
    "RET_FREQUENCY_LIMIT",
    "RET_OK",
    "TIMEOUT_GETCONFIG_SECONDS",
    "TIMEOUT_GETUPDATES_SECONDS",
    "TIMEOUT_QRCODE_STATUS_SECONDS",
    "TIMEOUT_SECONDS",
    "ClientVersion",
    "base_info",
    "build_get_headers",
    "build_headers",
    "encode_body",
    "encode_json",
    "endpoint_url",
    "message_id_of",
    "random_uin",
    "sendmessage_fields",
]

# Where every QR login starts, whatever base URL the account later gets.
DEFAULT_BASE_URL: Final = "https://ilinkai.weixin.qq.com"
APP_ID: Final = "bot"
HEADER_APP_ID: Final = "iLink-App-Id"
HEADER_CLIENT_VERSION: Final = "iLink-App-ClientVersion"
HEADER_ROUTE_TAG: Final = "SKRouteTag"  # optional; the official client sends it when configured

ENDPOINT_SENDMESSAGE: Final = "ilink/bot/sendmessage"
ENDPOINT_GETUPDATES: Final = "ilink/bot/getupdates"
ENDPOINT_GETCONFIG: Final = "ilink/bot/getconfig"
ENDPOINT_SENDTYPING: Final = "ilink/bot/sendtyping"
ENDPOINT_QRCODE: Final = "ilink/bot/get_bot_qrcode"
ENDPOINT_QRCODE_STATUS: Final = "ilink/bot/get_qrcode_status"
# Called by the official client around its inbound loop; this project never needs them.
ENDPOINT_NOTIFYSTART: Final = "ilink/bot/msg/notifystart"
ENDPOINT_NOTIFYSTOP: Final = "ilink/bot/msg/notifystop"
QR_BOT_TYPE: Final = 3
QR_LOCAL_TOKENS_FIELD: Final = "local_token_list"  # the POST body of get_bot_qrcode
QR_VERIFY_CODE_PARAM: Final = "verify_code"  # get_qrcode_status, after need_verifycode

RET_OK: Final = 0
RET_FREQUENCY_LIMIT: Final = -2
ERRCODE_SESSION_EXPIRED: Final = -14

# An accepted sendmessage may answer the platform's id of the message: a uint64 sent
# as a JSON number, which a float-based JSON parser would round past 2**53.
MESSAGE_ID_FIELD: Final = "message_id"
MESSAGE_ID_MAX: Final = 2**64 - 1
_DECIMAL: Final = re.compile(r"[0-9]{1,20}")

MESSAGE_TYPE_BOT: Final = 2
MESSAGE_STATE_FINISH: Final = 2
ITEM_TYPE_TEXT: Final = 1

TIMEOUT_SECONDS: Final = 15.0  # ordinary calls, as known clients use
TIMEOUT_GETCONFIG_SECONDS: Final = 10.0
TIMEOUT_GETUPDATES_SECONDS: Final = 35.0  # the long poll; the server may say otherwise
TIMEOUT_QRCODE_STATUS_SECONDS: Final = 35.0  # get_qrcode_status is long-polled too

_VERSION_PART: Final = r"(0|[1-9][0-9]{0,2})"  # no sign, no leading zero
_VERSION_PATTERN: Final = re.compile(rf"{_VERSION_PART}\.{_VERSION_PART}\.{_VERSION_PART}")
_VERSION_PART_MAX: Final = 255  # each part is one byte of the packed header value


@dataclass(frozen=True, order=True)
class ClientVersion:
    """The client's version, ``major.minor.patch``, each part 0..255.

    ``header_value`` is what ``iLink-App-ClientVersion`` carries: the decimal
    string of ``major << 16 | minor << 8 | patch`` (a uint32 whose top byte is 0);
    ``channel_version`` is what ``base_info.channel_version`` carries.

    Example::

        ClientVersion.parse("2.4.9").header_value      # '132105'
        ClientVersion.unpack(131584)                   # ClientVersion(2, 2, 0)
    """

    major: int
    minor: int
    patch: int

    def __post_init__(self) -> None:
        for part in (self.major, self.minor, self.patch):
            if isinstance(part, bool) or not isinstance(part, int):
                raise ValueError(f"a version part must be a whole number, got {part!r}")
            if not 0 <= part <= _VERSION_PART_MAX:
                raise ValueError(f"a version part must be 0..{_VERSION_PART_MAX}, got {part}")

    @classmethod
    def parse(cls, text: str) -> ClientVersion:
        """``"2.4.9"`` as a version.

        Raises:
            ValueError: not three dot-separated whole numbers (no sign, no leading
                zero), or a part over 255.
        """
        match = _VERSION_PATTERN.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"must be major.minor.patch, such as 2.4.9, got {text[:40]!r}")
        major, minor, patch = (int(part) for part in match.groups())
        return cls(major, minor, patch)

    @classmethod
    def unpack(cls, value: int) -> ClientVersion:
        """The version a packed header value stands for; ``ValueError`` past 24 bits."""
        if not 0 <= value < 1 << 24:
            raise ValueError(f"a packed client version is 0..{(1 << 24) - 1}, got {value}")
        return cls(value >> 16, (value >> 8) & 0xFF, value & 0xFF)

    @property
    def packed(self) -> int:
        """``major << 16 | minor << 8 | patch``."""
        return self.major << 16 | self.minor << 8 | self.patch

    @property
    def header_value(self) -> str:
        """The ``iLink-App-ClientVersion`` header: the packed value in decimal."""
        return str(self.packed)

    @property
    def channel_version(self) -> str:
        """The ``base_info.channel_version``: ``major.minor.patch``."""
        return f"{self.major}.{self.minor}.{self.patch}"

    def __str__(self) -> str:
        return self.channel_version


# What the newest known official client (openclaw-weixin 2.4.9) says it is.
DEFAULT_CLIENT_VERSION: Final = ClientVersion(2, 4, 9)


def endpoint_url(base_url: str, endpoint: str) -> str:
    """Join an account's base URL and an endpoint path such as ``ilink/bot/sendmessage``."""
    return f"{base_url.rstrip('/')}/{endpoint}"


def random_uin() -> str:
    """A fresh ``X-WECHAT-UIN``: base64 of the decimal string of a random 32-bit unsigned int."""
    value = secrets.randbits(32)
    return base64.b64encode(str(value).encode("ascii")).decode("ascii")


def build_get_headers(*, client_version: ClientVersion = DEFAULT_CLIENT_VERSION) -> dict[str, str]:
    """The headers of a QR-login GET: the app id and client version, nothing secret."""
    return {HEADER_APP_ID: APP_ID, HEADER_CLIENT_VERSION: client_version.header_value}


def build_headers(
    *,
    token: str | None,
    client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    uin: str | None = None,
) -> dict[str, str]:
    """The headers every POST carries. ``token`` is the bot token (a secret).

    ``token=None`` leaves ``Authorization`` out, as the QR code request does.
    """
    headers = {
        "Content-Type": "application/json",
        "AuthorizationType": "ilink_bot_token",
        "X-WECHAT-UIN": uin if uin is not None else random_uin(),
        **build_get_headers(client_version=client_version),
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def base_info(*, client_version: ClientVersion = DEFAULT_CLIENT_VERSION) -> dict[str, str]:
    """The ``base_info`` object of every authenticated POST body."""
    return {"channel_version": client_version.channel_version}


def encode_json(payload: dict[str, Any]) -> bytes:
    """JSON as the platform's clients write it: compact UTF-8 (the QR code request's body)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_body(
    fields: dict[str, Any], *, client_version: ClientVersion = DEFAULT_CLIENT_VERSION
) -> bytes:
    """The body of an authenticated POST: the endpoint's fields plus ``base_info``."""
    return encode_json({**fields, "base_info": base_info(client_version=client_version)})


def sendmessage_fields(
    *, to_user_id: str, client_id: str, text: str, context_token: str | None
) -> dict[str, Any]:
    """The fields of one ``sendmessage`` call carrying one text chunk."""
    msg: dict[str, Any] = {
        "from_user_id": "",
        "to_user_id": to_user_id,
        "client_id": client_id,
        "message_type": MESSAGE_TYPE_BOT,
        "message_state": MESSAGE_STATE_FINISH,
        "item_list": [{"type": ITEM_TYPE_TEXT, "text_item": {"text": text}}],
    }
    if context_token:
        msg["context_token"] = context_token
    return {"msg": msg}


def message_id_of(body: str) -> str | None:
    """The top-level ``message_id`` of an answer's JSON text, every digit kept, or ``None``.

    The number is read as text (``parse_int=str``), so ``18446744073709551615``
    stays exact; a quoted decimal is accepted too. Anything else (absent, negative,
    fractional, past uint64, not JSON) gives ``None``.

    Example::

        message_id_of('{"ret":0,"message_id":9007199254740993}')    # '9007199254740993'
    """
    try:
        payload = json.loads(body, parse_int=str)
    except ValueError:
        return None
    value = payload.get(MESSAGE_ID_FIELD) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        return None
    return str(int(value)) if int(value) <= MESSAGE_ID_MAX else None
