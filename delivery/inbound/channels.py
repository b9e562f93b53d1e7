"""The channels an inbound message reaches the agent by; each says what happened.

=================  ============================================  ===========================
channel            what it does                                   done when
=================  ============================================  ===========================
``task``           publishes ``DELIVERY_INBOUND_TASK`` to         the broker took it
                   ``DELIVERY_INBOUND_TASK_QUEUE``: one argument,
                   the message as JSON; the task id is the key
``webhook``        POSTs the JSON to ``DELIVERY_INBOUND_WEBHOOK_  the receiver answered 2xx
                   URL``, signed (``delivery.inbound.signing``),  (a redirect is a failure:
                   with ``Idempotency-Key``                       never followed)
``callback``       calls ``DELIVERY_INBOUND_CALLBACK``            it returned
                   (``module:function``) with the
                   :class:`~delivery.inbound.event.InboundEvent`
=================  ============================================  ===========================

A channel never raises: a failure is a :class:`Handed` that says why (the relay
retries it with backoff). Errors of requests, kombu and the callback are
translated here. A webhook URL may carry a key: it is never logged or recorded.

**Redirects are refused, never followed.** Followed, a 301/302 turns the POST into
a GET without a body, whose 200 would read as delivered while the agent saw
nothing, and the signature would go to whatever host the redirect names. A 3xx is
a failed attempt that names the host it pointed to (never its path or query) and
asks for the final URL; the relay tries again with backoff, so the operator sees
why in ``delivery inbox`` and the messages go once the URL is fixed.

Example::

    channel = WebhookChannel(url=url, secret=secret, timeout_seconds=10, http=requests.Session())
    channel(event)      # Handed(delivered=True, detail='HTTP 204', http_status=204)
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from delivery.errors import ConfigError
from delivery.inbound.event import InboundEvent
from delivery.inbound.signing import SIGNATURE_HEADER, sign
from delivery.ledger.states import HandoverChannel

__all__ = [
    "CallbackChannel",
    "Channel",
    "Handed",
    "TaskChannel",
    "WebhookChannel",
    "webhook_answer",
]

_DETAIL_CHARS = 300
_HOST_CHARS = 100
# A publish must not hang the relay while the broker is down: the ledger has the message.
_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.1,
    "interval_step": 0.4,
    "interval_max": 1.0,
}


@dataclass(frozen=True)
class Handed:
    """What one hand-over attempt did."""

    delivered: bool
    detail: str
    http_status: int | None = None
    broker_run_id: str | None = None  # of a published task: the broker it went to


class Channel(Protocol):
    """One way to the agent."""

    name: HandoverChannel

    def __call__(self, event: InboundEvent) -> Handed: ...


def _failure(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:_DETAIL_CHARS] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaskChannel:
    """Publishes the agent's Celery task; ``broker_run_id`` names the broker's current run."""

    name = HandoverChannel.TASK

    def __init__(
        self,
        app: Any,
        *,
        task_name: str,
        queue: str,
        broker_run_id: Callable[[], str | None],
    ) -> None:
        self._app = app
        self._task_name = task_name
        self._queue = queue
        self._broker_run_id = broker_run_id

    def __call__(self, event: InboundEvent) -> Handed:
        run_id = self._broker_run_id()
        try:
            self._app.send_task(
                self._task_name,
                args=[event.to_json()],
                task_id=event.idempotency_key,
                queue=self._queue,
                retry=True,
                retry_policy=_PUBLISH_RETRY_POLICY,
            )
        except Exception as exc:  # kombu and redis raise many types; all mean "not published"
            return Handed(False, f"not published: {_failure(exc)}")
        return Handed(True, f"published {self._task_name} to {self._queue}", broker_run_id=run_id)


class WebhookChannel:
    """POSTs the message, signed; a 2xx answer is the receiver's receipt."""

    name = HandoverChannel.WEBHOOK

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        timeout_seconds: float,
        http: requests.Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout_seconds = timeout_seconds
        self._http = http
        self._clock = clock

    def __repr__(self) -> str:
        return "WebhookChannel(url=<not shown>)"

    def __call__(self, event: InboundEvent) -> Handed:
        body = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event.idempotency_key,
            SIGNATURE_HEADER: sign(secret=self._secret, body=body, timestamp=int(self._clock())),
        }
        try:
            response = self._http.post(
                self._url,
                data=body,
                headers=headers,
                timeout=self._timeout_seconds,
                allow_redirects=False,  # see the module docstring
            )
        except requests.RequestException as exc:
            # Not the exception's text: it holds the URL, and webhook URLs carry keys.
            return Handed(False, f"no answer: {type(exc).__name__}")
        return webhook_answer(
            status=response.status_code, location=response.headers.get("Location"), url=self._url
        )


def webhook_answer(*, status: int, location: str | None, url: str) -> Handed:
    """What the webhook's answer means: 2xx delivered, anything else (a redirect
    included) a failure that says why. ``location`` is a redirect's ``Location``,
    ``url`` the webhook's own (a relative location is resolved against it); only the
    host is ever said, since paths and queries may carry keys.

    Example::

        webhook_answer(status=301, location="https://agent.example/in", url=url).detail
        # 'HTTP 301 redirect to agent.example refused: configure the final URL'
    """
    if 200 <= status < 300:
        return Handed(True, f"HTTP {status}", http_status=status)
    if 300 <= status < 400 and location:
        where = _host_of(url, location)
        return Handed(
            False,
            f"HTTP {status} redirect to {where} refused: configure the final URL",
            http_status=status,
        )
    return Handed(False, f"HTTP {status} from the webhook", http_status=status)


def _host_of(url: str, location: str) -> str:
    try:
        parts = urlsplit(urljoin(url, location))
        host, port = parts.hostname, parts.port
    except ValueError:
        return "an unreadable location"
    if not host:
        return "an unreadable location"
    shown = "".join(c if c.isprintable() and c.isascii() else "?" for c in host)[:_HOST_CHARS]
    return f"{shown}:{port}" if port is not None else shown


class CallbackChannel:
    """Calls ``module:function`` with the event, in the relay's process.

    Raises:
        ConfigError: at construction, when the path cannot be imported or is not
            callable (the relay refuses to start).
    """

    name = HandoverChannel.CALLBACK

    def __init__(self, path: str) -> None:
        module_name, _, attribute = path.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"DELIVERY_INBOUND_CALLBACK={path!r} cannot be loaded: {exc}"
            ) from None
        if not callable(function):
            raise ConfigError(f"DELIVERY_INBOUND_CALLBACK={path!r} is not callable")
        self._path = path
        self._function: Callable[[InboundEvent], object] = function

    def __call__(self, event: InboundEvent) -> Handed:
        try:
            self._function(event)
        except Exception as exc:  # an operator's hook may raise anything
            return Handed(False, f"{self._path} raised {_failure(exc)}")
        return Handed(True, f"{self._path} returned")
