"""The ``/_sim/`` control and inspection API, as a function from request to reply.

A test or demo in another process drives the simulator through these routes (the
:class:`~delivery.simulator.control.SimulatorControl` helper builds the calls).
Every POST takes and every route answers a JSON object; success is
``{"ok": true, ...}``, a bad argument HTTP 400 and an unknown account or route
HTTP 404, both as ``{"ok": false, "error": "..."}``.

**Who may call them.** They can reset the simulator, replace its tokens and read
every message it received. On a loopback address (the default) anyone on the
machine may, as before; a simulator given a control token (it must have one to
listen anywhere else, ``delivery simulator --allow-remote``) answers HTTP 401 to a
call without ``X-Simulator-Token: <token>`` (:func:`control_permitted`), except
``GET /_sim/qr/scan``: a phone opens that page, sends no header, and it shows
nothing but the code's name.

=========================  ======================================================
``GET  /_sim/received``    the :class:`~delivery.simulator.records.Snapshot`
``GET  /_sim/config``      ``{"ok": true, "config": {...}}``
``POST /_sim/config``      ``{<config field>: value, ...}`` -> the new config
``POST /_sim/reset``       ``{}``: forget everything, back to the start-up config
``POST /_sim/accounts``    ``{"account_id", "token"}``
``POST /_sim/token``       ``{"account_id", "token"}``: replace the token
``POST /_sim/expire``      ``{"account_id"}``: expire the session now
``POST /_sim/lockout``     ``{"account_id", "seconds"}``: start a rate-limit lockout now
``POST /_sim/faults``      ``{"fault": {...}, "count": 1, "account_id": null}``
``POST /_sim/inbound``     ``{"account_id", "from_user_id", "text", "context_token"?}``
                           -> ``{"ok": true, "message_id": "...", "context_token": "..."}``
``POST /_sim/inbound/resend``  ``{"account_id", "message_id"}``: the platform sends that
                           inbound message again under a new id -> the new one's
                           ``message_id`` and ``context_token``
``POST /_sim/inbound/raw`` ``{"account_id", "item": <any JSON>}``: queue ``item`` in
                           ``getupdates`` as it is (a malformed message, say)
``POST /_sim/qr``          ``{"steps": [...], "expire_first": 0, "redirect_host": null,
                           "verify_code": null, "verify_attempts": 3}``
``GET  /_sim/qr/scan``     ``?qrcode=...``: the page a QR code points to (HTML)
=========================  ======================================================

Example::

    reply = handle_control(model, method="POST", path="/_sim/expire",
                           query={}, body=b'{"account_id": "bot-1"}')
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Callable, Mapping
from typing import Any

from delivery.simulator.config import config_to_json
from delivery.simulator.faults import Fault
from delivery.simulator.model import PlatformModel
from delivery.simulator.qr import DEFAULT_VERIFY_ATTEMPTS
from delivery.simulator.replies import Reply, html_reply, json_reply

__all__ = [
    "CONTROL_PREFIX",
    "CONTROL_TOKEN_HEADER",
    "control_permitted",
    "control_refused",
    "handle_control",
]

CONTROL_PREFIX = "/_sim/"
CONTROL_TOKEN_HEADER = "X-Simulator-Token"  # noqa: S105 - a header's name
_OPEN_ROUTES = frozenset({"qr/scan"})  # opened by a phone; shows nothing else

_Handler = Callable[[PlatformModel, dict[str, Any]], dict[str, Any]]


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _optional_text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _register(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    model.register_account(_text(args, "account_id"), token=_text(args, "token"))
    return {}


def _set_token(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    model.set_token(_text(args, "account_id"), token=_text(args, "token"))
    return {}


def _expire(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    model.expire_session(_text(args, "account_id"))
    return {}


def _lock_out(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    model.lock_out(_text(args, "account_id"), seconds=args.get("seconds"))  # type: ignore[arg-type]
    return {}


def _configure(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    return {"config": config_to_json(model.configure(**args))}


def _reset(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    model.reset()
    return {}


def _faults(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    count = args.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError("count must be a whole number")
    model.queue_fault(
        Fault.from_json(args.get("fault")),
        count=count,
        account_id=_optional_text(args, "account_id"),
    )
    return {}


def _inbound(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    injected = model.inbound(
        _text(args, "account_id"),
        from_user_id=_text(args, "from_user_id"),
        text=_text(args, "text"),
        context_token=_optional_text(args, "context_token"),
    )
    return {"message_id": injected.message_id, "context_token": injected.context_token}


def _resend_inbound(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    injected = model.resend_inbound(_text(args, "account_id"), message_id=_text(args, "message_id"))
    return {"message_id": injected.message_id, "context_token": injected.context_token}


def _raw_inbound(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    if "item" not in args:
        raise ValueError("item is missing")
    model.inject_raw_inbound(_text(args, "account_id"), item=args["item"])
    return {}


def _qr(model: PlatformModel, args: dict[str, Any]) -> dict[str, Any]:
    steps = args.get("steps")
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        raise ValueError("steps must be a list of status strings")
    model.script_qr(
        steps=steps,
        expire_first=args.get("expire_first", 0),
        redirect_host=_optional_text(args, "redirect_host"),
        verify_code=_optional_text(args, "verify_code"),
        verify_attempts=args.get("verify_attempts", DEFAULT_VERIFY_ATTEMPTS),
    )
    return {}


_POST_ROUTES: dict[str, _Handler] = {
    "accounts": _register,
    "token": _set_token,
    "expire": _expire,
    "lockout": _lock_out,
    "config": _configure,
    "reset": _reset,
    "faults": _faults,
    "inbound": _inbound,
    "inbound/resend": _resend_inbound,
    "inbound/raw": _raw_inbound,
    "qr": _qr,
}


def _failure(status: int, error: str) -> Reply:
    return json_reply({"ok": False, "error": error}, status=status)


def control_permitted(*, path: str, token: str | None, presented: str | None) -> bool:
    """Whether a call to ``path`` that ``presented`` this header value may go on, for
    a simulator whose control token is ``token`` (``None``: no token, loopback only)."""
    if token is None or path.removeprefix(CONTROL_PREFIX).rstrip("/") in _OPEN_ROUTES:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8"))


def control_refused() -> Reply:
    """The answer to a control call without the right token."""
    return _failure(
        401,
        f"the control API needs the {CONTROL_TOKEN_HEADER} header: the token "
        "`delivery simulator` printed at start",
    )


def handle_control(
    model: PlatformModel, *, method: str, path: str, query: Mapping[str, str], body: bytes
) -> Reply:
    """Serve one ``/_sim/...`` request; ``query`` holds the URL's query parameters."""
    route = path.removeprefix(CONTROL_PREFIX).rstrip("/")
    if method == "GET":
        if route == "received":
            return json_reply({"ok": True, **model.snapshot().to_json()})
        if route == "config":
            return json_reply({"ok": True, "config": config_to_json(model.config)})
        if route == "qr/scan":
            qrcode = html.escape(query.get("qrcode", ""))
            return html_reply(status=200, title=f"Simulated QR login {qrcode}")
        return _failure(404, f"no GET route {path}")
    handler = _POST_ROUTES.get(route)
    if method != "POST" or handler is None:
        return _failure(404, f"no {method} route {path}")
    try:
        args = json.loads(body.decode("utf-8")) if body.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        return json_reply({"ok": True, **handler(model, args)})
    except KeyError as exc:
        return _failure(404, f"unknown account {exc.args[0]!r}")
    except (ValueError, TypeError) as exc:
        # TypeError: a JSON value of the wrong type reached a dataclass or a comparison.
        return _failure(400, str(exc))
