"""The iLink Bot API client: requests in, raw answers out.

The client takes an injected ``requests.Session`` (tests hand it a session aimed
at the simulator; a worker keeps one per account). It never decides what an
answer means: :func:`delivery.ilink.classify.classify` does. Exceptions from
requests are translated here, and only here, into
:class:`~delivery.errors.TransportError`, whose text never holds the token.

The client version it announces (``iLink-App-ClientVersion`` and
``base_info.channel_version``) is a keyword argument, read once from the settings
by whoever builds the client.

Example::

    client = ILinkClient(base_url="https://ilinkai.weixin.qq.com", token=token,
                         session=requests.Session(),
                         client_version=ClientVersion.parse(settings.client_version))
    reply = client.send_text(to_user_id="u@im.wechat", client_id="dlv-1", text="hi",
                             context_token=None)
    reply.answer.message_id     # '7318...' when the platform names the message
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from delivery.errors import TransportError
from delivery.ilink import protocol
from delivery.ilink.classify import Answer
from delivery.ilink.protocol import DEFAULT_CLIENT_VERSION, ClientVersion

__all__ = ["ILinkClient", "Reply", "fetch_qrcode", "fetch_qrcode_by_get", "poll_qrcode_status"]

_EXCERPT_CHARS = 200  # of a non-JSON body, kept for the operator


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: the raw facts for the ledger, the parsed JSON, the time taken."""

    answer: Answer
    payload: dict[str, Any]
    elapsed_ms: int


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _reply(response: requests.Response, started: float) -> Reply:
    elapsed_ms = int((time.monotonic() - started) * 1000)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        excerpt = response.text[:_EXCERPT_CHARS]
        answer = Answer(response.status_code, None, None, None, json_ok=False, excerpt=excerpt)
        return Reply(answer=answer, payload={}, elapsed_ms=elapsed_ms)
    errmsg = payload.get("errmsg")
    # Parsed again as text only when present: json() would round a uint64 past 2**53.
    has_id = protocol.MESSAGE_ID_FIELD in payload
    answer = Answer(
        http_status=response.status_code,
        ret=_int_or_none(payload.get("ret")),
        errcode=_int_or_none(payload.get("errcode")),
        errmsg=errmsg if isinstance(errmsg, str) else None,
        message_id=protocol.message_id_of(response.text) if has_id else None,
    )
    return Reply(answer=answer, payload=payload, elapsed_ms=elapsed_ms)


@contextmanager
def _translated(what: str, timeout_seconds: float) -> Iterator[None]:
    """Turn requests' exceptions into TransportError, saying whether it may have arrived."""
    try:
        yield
    except requests.ConnectTimeout as exc:
        raise TransportError(f"{what}: no connection within {timeout_seconds:g}s") from exc
    except requests.ReadTimeout as exc:
        raise TransportError(
            f"{what}: no answer within {timeout_seconds:g}s (it may have arrived)"
        ) from exc
    except requests.ConnectionError as exc:
        arrived = "may have arrived" if _after_sending(exc) else "not sent"
        raise TransportError(f"{what}: connection failed ({_reason(exc)}; {arrived})") from exc
    except requests.RequestException as exc:
        raise TransportError(f"{what}: {type(exc).__name__} ({_reason(exc)})") from exc


def _after_sending(exc: requests.ConnectionError) -> bool:
    text = str(exc)
    refused = ("NewConnectionError", "Failed to establish", "Name or service", "getaddrinfo")
    return not any(marker in text for marker in refused)


def _reason(exc: Exception) -> str:
    # The innermost cause names what happened (reset, refused) without the request.
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause).split("\n")[0][:160]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


class ILinkClient:
    """One bot account's calls to the platform. Not thread-safe across threads."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        session: requests.Session,
        timeout_seconds: float = protocol.TIMEOUT_SECONDS,
        client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = session
        self.timeout_seconds = timeout_seconds
        self.client_version = client_version

    def __repr__(self) -> str:
        return f"ILinkClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._session.close()

    def _post(self, endpoint: str, fields: dict[str, Any], *, timeout_seconds: float) -> Reply:
        url = protocol.endpoint_url(self.base_url, endpoint)
        body = protocol.encode_body(fields, client_version=self.client_version)
        headers = protocol.build_headers(token=self._token, client_version=self.client_version)
        started = time.monotonic()
        with _translated(f"POST {endpoint}", timeout_seconds):
            response = self._session.post(url, data=body, headers=headers, timeout=timeout_seconds)
        return _reply(response, started)

    def send_text(
        self, *, to_user_id: str, client_id: str, text: str, context_token: str | None
    ) -> Reply:
        """``sendmessage`` with one text item. The same ``client_id`` on every retry.

        An accepted answer may name the message: ``reply.answer.message_id``.

        Raises:
            TransportError: no HTTP answer; the text may or may not have arrived.
        """
        fields = protocol.sendmessage_fields(
            to_user_id=to_user_id, client_id=client_id, text=text, context_token=context_token
        )
        return self._post(
            protocol.ENDPOINT_SENDMESSAGE, fields, timeout_seconds=self.timeout_seconds
        )

    def get_config(self, *, ilink_user_id: str, context_token: str | None = None) -> Reply:
        """``getconfig``: a cheap call that proves the session without consuming inbound."""
        fields: dict[str, Any] = {"ilink_user_id": ilink_user_id}
        if context_token:
            fields["context_token"] = context_token
        timeout = min(self.timeout_seconds, protocol.TIMEOUT_GETCONFIG_SECONDS)
        return self._post(protocol.ENDPOINT_GETCONFIG, fields, timeout_seconds=timeout)

    def send_typing(self, *, ilink_user_id: str, typing_ticket: str, typing: bool) -> Reply:
        """``sendtyping``: show (``typing=True``) or hide the typing indicator."""
        fields = {
            "ilink_user_id": ilink_user_id,
            "typing_ticket": typing_ticket,
            "status": 1 if typing else 2,
        }
        return self._post(
            protocol.ENDPOINT_SENDTYPING, fields, timeout_seconds=self.timeout_seconds
        )

    def get_updates(
        self, *, cursor: str, timeout_seconds: float = protocol.TIMEOUT_GETUPDATES_SECONDS
    ) -> Reply:
        """``getupdates``, the inbound long poll. It CONSUMES inbound messages: only the
        owner of an account's inbound side may call it (``delivery.inbound.poller``).

        ``timeout_seconds`` should exceed how long the platform holds a poll
        (``longpolling_timeout_ms`` of its last answer).

        Raises:
            TransportError: no HTTP answer.
        """
        return self._post(
            protocol.ENDPOINT_GETUPDATES,
            {"get_updates_buf": cursor},
            timeout_seconds=timeout_seconds,
        )


def _get(
    session: requests.Session,
    url: str,
    what: str,
    *,
    client_version: ClientVersion,
    timeout_seconds: float,
) -> Reply:
    headers = protocol.build_get_headers(client_version=client_version)
    started = time.monotonic()
    with _translated(what, timeout_seconds):
        response = session.get(url, headers=headers, timeout=timeout_seconds)
    return _reply(response, started)


def _qrcode_url(base_url: str) -> str:
    url = protocol.endpoint_url(base_url, protocol.ENDPOINT_QRCODE)
    return f"{url}?bot_type={protocol.QR_BOT_TYPE}"


def fetch_qrcode(
    session: requests.Session,
    *,
    base_url: str,
    local_tokens: Sequence[str],
    client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    timeout_seconds: float = protocol.TIMEOUT_SECONDS,
) -> Reply:
    """``get_bot_qrcode`` by POST, as the official client asks: a new login QR code.

    ``local_tokens`` are the bot tokens this client already holds (secrets, sent in
    the body only), so the platform can tell a bot that is already bound. No
    ``Authorization`` header and no ``base_info``, as the official client sends it.

    Raises:
        TransportError: no HTTP answer.
    """
    body = protocol.encode_json({protocol.QR_LOCAL_TOKENS_FIELD: list(local_tokens)})
    headers = protocol.build_headers(token=None, client_version=client_version)
    started = time.monotonic()
    with _translated("POST get_bot_qrcode", timeout_seconds):
        response = session.post(
            _qrcode_url(base_url), data=body, headers=headers, timeout=timeout_seconds
        )
    return _reply(response, started)


def fetch_qrcode_by_get(
    session: requests.Session,
    *,
    base_url: str,
    client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    timeout_seconds: float = protocol.TIMEOUT_SECONDS,
) -> Reply:
    """``get_bot_qrcode`` by GET, the older form: a new login QR code.

    Raises:
        TransportError: no HTTP answer.
    """
    return _get(
        session,
        _qrcode_url(base_url),
        "GET get_bot_qrcode",
        client_version=client_version,
        timeout_seconds=timeout_seconds,
    )


def poll_qrcode_status(
    session: requests.Session,
    *,
    base_url: str,
    qrcode: str,
    verify_code: str | None = None,
    client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
    timeout_seconds: float = protocol.TIMEOUT_QRCODE_STATUS_SECONDS,
) -> Reply:
    """``get_qrcode_status``: where the login stands (``wait``, ``scaned``, ``confirmed``...).

    ``verify_code`` is the number the person typed after ``need_verifycode``.

    Raises:
        TransportError: no HTTP answer.
    """
    url = protocol.endpoint_url(base_url, protocol.ENDPOINT_QRCODE_STATUS)
    params = {"qrcode": qrcode}
    if verify_code is not None:
        params[protocol.QR_VERIFY_CODE_PARAM] = verify_code
    prepared_url = requests.Request("GET", url, params=params).prepare().url
    assert prepared_url is not None
    return _get(
        session,
        prepared_url,
        "GET get_qrcode_status",
        client_version=client_version,
        timeout_seconds=timeout_seconds,
    )
