"""The iLink Bot API wire format: every protocol fact lives here, once.

What is known of the API is observed behaviour, not a published specification
(see ``ilink-protocol.md`` beside the project). The client and the simulator both
build and read requests through this module, so a changed fact is changed once.

Example::

    body = encode_body(sendmessage_fields(to_user_id="u@im.wechat", client_id="dlv-1",
                                          text="hello", context_token=None))
    headers = build_headers(token="secret")
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Final

__all__ = [
    "APP_ID",
    "CHANNEL_VERSION",
    "CLIENT_VERSION",
    "DEFAULT_BASE_URL",
    "ENDPOINT_GETCONFIG",
    "ENDPOINT_GETUPDATES",
    "ENDPOINT_QRCODE",
    "ENDPOINT_QRCODE_STATUS",
    "ENDPOINT_SENDMESSAGE",
    "ENDPOINT_SENDTYPING",
    "ERRCODE_SESSION_EXPIRED",
    "ITEM_TYPE_TEXT",
    "MESSAGE_STATE_FINISH",
    "MESSAGE_TYPE_BOT",
    "QR_BOT_TYPE",
    "RET_FREQUENCY_LIMIT",
    "RET_OK",
    "TIMEOUT_GETCONFIG_SECONDS",
    "TIMEOUT_GETUPDATES_SECONDS",
    "TIMEOUT_SECONDS",
    "build_headers",
    "encode_body",
    "endpoint_url",
    "random_uin",
    "sendmessage_fields",
]

DEFAULT_BASE_URL: Final = "https://ilinkai.weixin.qq.com"
CHANNEL_VERSION: Final = "2.2.0"
APP_ID: Final = "bot"
# (2 << 16) | (2 << 8) | 0: the client version 2.2.0 packed the way known clients send it.
CLIENT_VERSION: Final = (2 << 16) | (2 << 8) | 0

ENDPOINT_SENDMESSAGE: Final = "ilink/bot/sendmessage"
ENDPOINT_GETUPDATES: Final = "ilink/bot/getupdates"
ENDPOINT_GETCONFIG: Final = "ilink/bot/getconfig"
ENDPOINT_SENDTYPING: Final = "ilink/bot/sendtyping"
ENDPOINT_QRCODE: Final = "ilink/bot/get_bot_qrcode"
ENDPOINT_QRCODE_STATUS: Final = "ilink/bot/get_qrcode_status"
QR_BOT_TYPE: Final = 3

RET_OK: Final = 0
RET_FREQUENCY_LIMIT: Final = -2
ERRCODE_SESSION_EXPIRED: Final = -14

MESSAGE_TYPE_BOT: Final = 2
MESSAGE_STATE_FINISH: Final = 2
ITEM_TYPE_TEXT: Final = 1

TIMEOUT_SECONDS: Final = 15.0  # ordinary calls, as known clients use
TIMEOUT_GETCONFIG_SECONDS: Final = 10.0
TIMEOUT_GETUPDATES_SECONDS: Final = 35.0  # the long poll; the server may say otherwise


def endpoint_url(base_url: str, endpoint: str) -> str:
    """Join an account's base URL and an endpoint path such as ``ilink/bot/sendmessage``."""
    return f"{base_url.rstrip('/')}/{endpoint}"


def random_uin() -> str:
    """A fresh ``X-WECHAT-UIN``: base64 of the decimal string of a random 32-bit unsigned int."""
    value = secrets.randbits(32)
    return base64.b64encode(str(value).encode("ascii")).decode("ascii")


def build_headers(*, token: str, uin: str | None = None) -> dict[str, str]:
    """The headers every POST carries. ``token`` is the bot token (a secret)."""
    return {
        "Content-Type": "application/json",
        "AuthorizationType": "ilink_bot_token",
        "Authorization": f"Bearer {token}",
        "X-WECHAT-UIN": uin if uin is not None else random_uin(),
        "iLink-App-Id": APP_ID,
        "iLink-App-ClientVersion": str(CLIENT_VERSION),
    }


def encode_body(fields: dict[str, Any]) -> bytes:
    """The JSON body: the endpoint's fields plus ``base_info``, compact UTF-8."""
    payload = dict(fields)
    payload["base_info"] = {"channel_version": CHANNEL_VERSION}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
