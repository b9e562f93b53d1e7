"""Telling an operator that a session expired (once) and that it healed, and that a
reader's sends are being dropped silently (once per episode).

Two hooks, either or both: ``DELIVERY_ALERT_WEBHOOK_URL`` receives a JSON POST,
``DELIVERY_ALERT_CALLBACK`` (``module:function``) is called with the
:class:`SessionEvent`. A failing hook is logged, never raised: an alert must not
stop the session check. No token is ever part of an event.

Example event (JSON)::

    {"event": "session_expired", "account_id": "bot-1",
     "expired_since": "2026-11-24T08:00:03+00:00", "waiting_messages": 12,
     "detail": "session expired (ret -14 'session timeout')",
     "hint": "store a new token: delivery login bot-1, or delivery account add bot-1 --token -"}
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import requests

__all__ = ["Alerter", "SessionEvent", "reader_dropping_event"]

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class SessionEvent:
    """What happened to an account's session, for a webhook or a callback."""

    event: str  # "session_expired", "session_recovered" or "reader_dropping"
    account_id: str
    expired_since: dt.datetime | None  # for a reader: since when their sends are dropped
    waiting_messages: int
    detail: str
    hint: str
    peer_id: str | None = None  # the reader, for "reader_dropping"

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        if self.peer_id is None:
            del payload["peer_id"]
        if self.expired_since is not None:
            payload["expired_since"] = self.expired_since.isoformat()
        return payload


def reader_dropping_event(
    account_id: str, peer_id: str, *, since: dt.datetime, sends: int
) -> SessionEvent:
    """The event of a reader whose sends the platform accepts and drops silently."""
    return SessionEvent(
        event="reader_dropping",
        account_id=account_id,
        expired_since=since,
        waiting_messages=0,
        detail=f"{sends} sends in a row accepted without a message_id (silent drops); "
        "their next messages wait until they write",
        hint=f"ask the reader to write to the bot, or: delivery readers clear {account_id} "
        f"{peer_id}",
        peer_id=peer_id,
    )


def _load_callback(path: str) -> Callable[[SessionEvent], object]:
    module_name, _, attribute = path.partition(":")
    function = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise TypeError(f"{path} is not callable")
    return function  # type: ignore[no-any-return]


class Alerter:
    """Sends :class:`SessionEvent` to the configured hooks."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        callback: str | None,
        session: requests.Session | None = None,
    ) -> None:
        self._webhook_url = webhook_url
        self._callback = callback
        self._session = session or requests.Session()

    @property
    def configured(self) -> bool:
        return bool(self._webhook_url or self._callback)

    def send(self, event: SessionEvent) -> None:
        """Deliver ``event`` to every hook; failures are logged, not raised."""
        log.info("alert %s for account %s", event.event, event.account_id)
        if self._webhook_url:
            try:
                response = self._session.post(
                    self._webhook_url, json=event.to_json(), timeout=WEBHOOK_TIMEOUT_SECONDS
                )
                response.raise_for_status()
            except requests.RequestException as exc:
                # Not the exception's text: it holds the URL, and webhook URLs carry keys.
                status = getattr(exc.response, "status_code", None)
                log.error(
                    "alert webhook failed for %s: %s%s",
                    event.account_id,
                    type(exc).__name__,
                    f" (HTTP {status})" if status else "",
                )
        if self._callback:
            try:
                _load_callback(self._callback)(event)
            except Exception as exc:  # an operator's hook may raise anything
                log.error(
                    "alert callback %s failed: %s: %s", self._callback, type(exc).__name__, exc
                )
