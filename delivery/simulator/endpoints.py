"""The iLink endpoints of the simulator, as a function from request to outcome.

The server hands over the method, the path below ``/ilink/bot/``, the query, the
headers and the body; this module checks them (:mod:`~delivery.simulator.envelope`),
asks the model, and notes every request that passed the checks with the client
identity it carried (``Snapshot.seen``). It never touches a socket.

===============================================  =========================================
``POST sendmessage``, ``getupdates``,            authenticated: token, headers and
``getconfig``, ``sendtyping``,                   ``base_info`` checked, then the model
``msg/notifystart``, ``msg/notifystop``          answers
``POST get_bot_qrcode?bot_type=3``               ``{"local_token_list": [...]}``, no token
``GET  get_bot_qrcode?bot_type=3``               the older form
``GET  get_qrcode_status?qrcode=[&verify_code]`` the scripted login (``QrFlow``)
===============================================  =========================================

Example::

    outcome = handle_ilink(model, method="POST", endpoint="getconfig", query={},
                           headers=headers, body=body, host="127.0.0.1:8000")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from delivery.ilink.protocol import QR_BOT_TYPE, QR_VERIFY_CODE_PARAM
from delivery.simulator.envelope import (
    BadRequest,
    Envelope,
    HeaderSource,
    check_envelope,
    check_get_headers,
    check_qrcode_request,
    parse_getconfig,
    parse_getupdates,
    parse_sendmessage,
    parse_sendtyping,
)
from delivery.simulator.faults import SENDMESSAGE, endpoint_name
from delivery.simulator.model import PlatformModel
from delivery.simulator.records import ClientIdentity, SeenRequest
from delivery.simulator.replies import Outcome

__all__ = ["ENDPOINTS", "handle_ilink"]

QRCODE: Final = "get_bot_qrcode"
QRCODE_STATUS: Final = "get_qrcode_status"
_AUTHENTICATED: Final = frozenset(
    {SENDMESSAGE, "getupdates", "getconfig", "sendtyping", "msg/notifystart", "msg/notifystop"}
)
# Every endpoint and the methods it answers; anything else is a 404.
ENDPOINTS: Final[Mapping[str, frozenset[str]]] = {
    **{endpoint: frozenset({"POST"}) for endpoint in _AUTHENTICATED},
    QRCODE: frozenset({"GET", "POST"}),
    QRCODE_STATUS: frozenset({"GET"}),
}


def handle_ilink(
    model: PlatformModel,
    *,
    method: str,
    endpoint: str,
    query: Mapping[str, str],
    headers: HeaderSource,
    body: bytes,
    host: str,
) -> Outcome:
    """Serve one request to a known ``endpoint`` (a key of :data:`ENDPOINTS`).

    ``host`` is where the request came in (its ``Host`` header): QR codes point
    there, and a confirmed login's ``baseurl`` is ``http://{host}``.
    """
    name = endpoint_name(endpoint)
    try:
        if method == "POST" and endpoint in _AUTHENTICATED:
            return _authenticated(model, name, check_envelope(headers, body))
        if method == "POST":
            request = check_qrcode_request(headers, body)
            _check_bot_type(query)
            _see(model, method, name, request.client)
            return model.get_bot_qrcode(
                scan_base_url=f"http://{host}", method=method, local_tokens=request.local_tokens
            )
        client = check_get_headers(headers)
        if endpoint == QRCODE:
            _check_bot_type(query)
            _see(model, method, name, client)
            return model.get_bot_qrcode(scan_base_url=f"http://{host}")
        qrcode = query.get("qrcode")
        if not qrcode:
            raise BadRequest("qrcode is missing")
        _see(model, method, name, client)
        return model.get_qrcode_status(
            qrcode=qrcode,
            host=host,
            base_url=f"http://{host}",
            verify_code=query.get(QR_VERIFY_CODE_PARAM),
        )
    except BadRequest as exc:
        return Outcome(reply=model.note_bad_request(name, str(exc)))


def _see(model: PlatformModel, method: str, name: str, client: ClientIdentity) -> None:
    model.note_seen(SeenRequest(method=method, endpoint=name, client=client))


def _check_bot_type(query: Mapping[str, str]) -> None:
    if query.get("bot_type") != str(QR_BOT_TYPE):
        raise BadRequest(f"bot_type must be {QR_BOT_TYPE}")


def _no_fields(fields: dict[str, Any]) -> None:
    """``msg/notifystart`` and ``msg/notifystop`` carry ``base_info`` alone."""


# How each authenticated endpoint other than sendmessage checks its fields.
_PARSERS: Final[Mapping[str, Callable[[dict[str, Any]], object]]] = {
    "getconfig": parse_getconfig,
    "sendtyping": parse_sendtyping,
    "getupdates": parse_getupdates,
    "notifystart": _no_fields,
    "notifystop": _no_fields,
}


def _authenticated(model: PlatformModel, name: str, envelope: Envelope) -> Outcome:
    """Check the endpoint's fields, note the request, and let the model answer."""
    token = envelope.token
    if name == SENDMESSAGE:
        send = parse_sendmessage(envelope.fields)
        _see(model, "POST", name, envelope.client)
        return model.sendmessage(token=token, send=send)
    fields = _PARSERS[name](envelope.fields)
    _see(model, "POST", name, envelope.client)
    if name == "getconfig":
        return model.getconfig(token=token)
    if name == "sendtyping":
        return model.sendtyping(token=token)
    if name == "getupdates":
        assert isinstance(fields, str)
        return model.getupdates(token=token, cursor=fields)
    return model.notify(name, token=token)
