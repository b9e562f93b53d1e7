"""A typed client for the simulator's ``/_sim/`` control API, for tests and the demo.

It drives a simulator in this process or another one the same way, so nobody
hand-builds control URLs. Failures raise :class:`SimulatorControlError` with the
simulator's own explanation.

Example::

    control = SimulatorControl("http://127.0.0.1:8321")   # token=... for one that has one
    control.reset()
    control.register_account("bot-1", token="t-1")
    control.queue_fault(Fault.http_error(503), count=2)
    snap = control.wait_until(lambda s: s.counters.accepted >= 3, timeout_seconds=5)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import requests

from delivery.simulator.faults import Fault
from delivery.simulator.qr import DEFAULT_VERIFY_ATTEMPTS
from delivery.simulator.records import Snapshot
from delivery.simulator.routes import CONTROL_TOKEN_HEADER
from delivery.simulator.update_queue import Injected

__all__ = ["SimulatorControl", "SimulatorControlError"]

# Control calls are local and instant; a slow one means the simulator is wedged.
DEFAULT_CONTROL_TIMEOUT_SECONDS: Final = 5.0
# How often wait_until looks again: quick for tests, cheap for the simulator.
_POLL_INTERVAL_SECONDS: Final = 0.01


class SimulatorControlError(RuntimeError):
    """A control call failed: the simulator refused it or could not be reached."""


class SimulatorControl:
    """Control and inspect the simulator at ``base_url``.

    ``session`` is injectable (a ``requests.Session``) so the caller decides pooling;
    ``timeout_seconds`` bounds every call; ``token`` is the simulator's control token,
    for one that has one (``delivery simulator --allow-remote`` prints it).
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout_seconds: float = DEFAULT_CONTROL_TIMEOUT_SECONDS,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout_seconds = timeout_seconds
        self._headers = {CONTROL_TOKEN_HEADER: token} if token is not None else {}

    def __repr__(self) -> str:
        return f"SimulatorControl({self.base_url!r})"

    def _call(
        self, method: str, route: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        url = f"{self.base_url}/_sim/{route}"
        try:
            response = self._session.request(
                method, url, json=payload, headers=self._headers, timeout=self._timeout_seconds
            )
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise SimulatorControlError(f"{method} {url} failed: {exc}") from exc
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise SimulatorControlError(f"{method} {url}: HTTP {response.status_code}: {error}")
        return answer

    def reset(self) -> None:
        """Forget accounts, messages, counters, faults and QR codes; restore the config."""
        self._call("POST", "reset", {})

    def register_account(self, account_id: str, *, token: str) -> None:
        """Create an account whose requests carry ``Bearer <token>``."""
        self._call("POST", "accounts", {"account_id": account_id, "token": token})

    def set_token(self, account_id: str, *, token: str) -> None:
        """Replace the account's token; the old one answers ``-14`` from now on."""
        self._call("POST", "token", {"account_id": account_id, "token": token})

    def expire_session(self, account_id: str) -> None:
        """Expire the account's session now (``-14`` until a new token)."""
        self._call("POST", "expire", {"account_id": account_id})

    def lock_out(self, account_id: str, *, seconds: float) -> None:
        """Start a rate-limit lockout of ``seconds`` now."""
        self._call("POST", "lockout", {"account_id": account_id, "seconds": seconds})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change config fields (``rate_limit_sends=3``, ...); returns the whole config."""
        config: dict[str, Any] = self._call("POST", "config", changes)["config"]
        return config

    def config(self) -> dict[str, Any]:
        """The config in force."""
        config: dict[str, Any] = self._call("GET", "config")["config"]
        return config

    def queue_fault(self, fault: Fault, *, count: int = 1, account_id: str | None = None) -> None:
        """The next ``count`` matching requests (of ``account_id``, or anyone's) get ``fault``."""
        self._call(
            "POST",
            "faults",
            {"fault": fault.to_json(), "count": count, "account_id": account_id},
        )

    def inbound(
        self, account_id: str, *, from_user_id: str, text: str, context_token: str | None = None
    ) -> Injected:
        """A person writes to the bot; returns the message's id and context token."""
        answer = self._call(
            "POST",
            "inbound",
            {
                "account_id": account_id,
                "from_user_id": from_user_id,
                "text": text,
                "context_token": context_token,
            },
        )
        return Injected(str(answer["message_id"]), str(answer["context_token"]))

    def inject_inbound(
        self, account_id: str, *, from_user_id: str, text: str, context_token: str | None = None
    ) -> str:
        """:meth:`inbound`, for callers that need only the context token."""
        return self.inbound(
            account_id, from_user_id=from_user_id, text=text, context_token=context_token
        ).context_token

    def resend_inbound(self, account_id: str, *, message_id: str) -> Injected:
        """The platform sends inbound message ``message_id`` again under a new id."""
        answer = self._call(
            "POST", "inbound/resend", {"account_id": account_id, "message_id": message_id}
        )
        return Injected(str(answer["message_id"]), str(answer["context_token"]))

    def inject_raw_inbound(self, account_id: str, *, item: Any) -> None:
        """Queue ``item`` (any JSON value) in the account's ``getupdates`` as it is."""
        self._call("POST", "inbound/raw", {"account_id": account_id, "item": item})

    def script_qr(
        self,
        *,
        steps: Sequence[str],
        expire_first: int = 0,
        redirect_host: str | None = None,
        verify_code: str | None = None,
        verify_attempts: int = DEFAULT_VERIFY_ATTEMPTS,
    ) -> None:
        """Script the QR codes issued from now on (see :class:`~delivery.simulator.qr.QrFlow`)."""
        self._call(
            "POST",
            "qr",
            {
                "steps": list(steps),
                "expire_first": expire_first,
                "redirect_host": redirect_host,
                "verify_code": verify_code,
                "verify_attempts": verify_attempts,
            },
        )

    def received(self) -> Snapshot:
        """Everything recorded: messages per recipient, counters, accounts, QR codes."""
        return Snapshot.from_json(self._call("GET", "received"))

    def wait_until(
        self, condition: Callable[[Snapshot], bool], *, timeout_seconds: float
    ) -> Snapshot:
        """Poll :meth:`received` until ``condition`` holds; the snapshot that satisfied it.

        Raises ``TimeoutError`` with the last snapshot's counters after ``timeout_seconds``.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            snapshot = self.received()
            if condition(snapshot):
                return snapshot
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met in {timeout_seconds}s: {snapshot.counters}")
            time.sleep(_POLL_INTERVAL_SECONDS)
