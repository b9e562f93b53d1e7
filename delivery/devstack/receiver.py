"""The agent's webhook, for the tests and benchmarks: a real HTTP server written as an
agent should write one, and able to misbehave as agents' webhooks do.

As an agent should: it checks the signature (401 when it does not hold), and it
de-duplicates on the ``idempotency_key`` *in the signed body*, never on the
unsigned ``Idempotency-Key`` header; a repeat is answered 204 (it is a receipt)
and not handled again. The relay hands over at least once, so repeats happen.

The faults: ``down()`` closes the port (a refused connection) and ``up()`` opens
it again; ``slow(seconds)`` answers each POST that much later (past the relay's
timeout, it sees a failure and tries again); ``redirect(url)`` answers every POST
with a redirect there, as an http-to-https redirect in front of an agent does.
Every request, of any method, is kept in :attr:`InboundReceiver.requests`.

Example::

    with InboundReceiver() as receiver:
        env.update(receiver.settings())
        ...
        receiver.counts()      # Counter({'bot-1:9223...': 2}): came twice
        receiver.handled()     # Counter({'bot-1:9223...': 1}): handled once
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from delivery.inbound.signing import SIGNATURE_HEADER, verify

__all__ = ["DEFAULT_SECRET", "InboundReceiver", "Request"]

DEFAULT_SECRET = "inbound-webhook-secret-0123"  # noqa: S105 - for local runs, not a credential


@dataclass(frozen=True)
class Request:
    """One request as it came, whatever it was."""

    method: str
    path: str
    signed: bool  # it carried a signature header
    body_bytes: int


class InboundReceiver:
    """The agent's webhook on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, secret: str = DEFAULT_SECRET) -> None:
        self.secret = secret
        self.received: list[tuple[float, dict[str, Any]]] = []  # every signed POST
        self.requests: list[Request] = []
        self.refused_signatures = 0
        self._handled: dict[str, dict[str, Any]] = {}  # by the key in the body
        self._lock = threading.Lock()
        self._slow_seconds = 0.0
        self._redirect: tuple[int, str] | None = None
        self._server = self._serve(("127.0.0.1", 0))
        self.port: int = self._server.server_address[1]

    def _serve(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get(SIGNATURE_HEADER)
                status, headers = receiver._post(self.path, body, header)
                self._answer(status, headers)

            def do_GET(self) -> None:
                # A health page; a redirected POST followed as a GET would come here.
                receiver._see(Request("GET", self.path, SIGNATURE_HEADER in self.headers, 0))
                self._answer(200, {})

            def _answer(self, status: int, headers: dict[str, str]) -> None:
                with contextlib.suppress(OSError):  # the relay gave up waiting
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(address, Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _see(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _post(self, path: str, body: bytes, header: str | None) -> tuple[int, dict[str, str]]:
        """What the agent does with one POST: (status, headers) of its answer."""
        arrived = time.time()
        self._see(Request("POST", path, header is not None, len(body)))
        with self._lock:
            redirect, slow_seconds = self._redirect, self._slow_seconds
        if redirect is not None:
            return redirect[0], {"Location": redirect[1]}
        if not verify(secret=self.secret, body=body, header=header, now=arrived):
            with self._lock:
                self.refused_signatures += 1
            return 401, {}
        payload = json.loads(body)
        with self._lock:
            self.received.append((arrived, payload))
            # The signed key, not the Idempotency-Key header: anyone can change a header.
            self._handled.setdefault(payload["idempotency_key"], payload)
        if slow_seconds:
            time.sleep(slow_seconds)  # the agent's work, slow
        return 204, {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/inbound?key=k-123"

    def settings(self, *, timeout_seconds: float = 2.0) -> dict[str, str]:
        """The relay's settings that point its webhook here."""
        return {
            "DELIVERY_INBOUND_WEBHOOK_URL": self.url,
            "DELIVERY_INBOUND_WEBHOOK_SECRET": self.secret,
            "DELIVERY_INBOUND_WEBHOOK_TIMEOUT_SECONDS": f"{timeout_seconds:g}",
        }

    # -- faults ---------------------------------------------------------------------

    def down(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def up(self) -> None:
        self._server = self._serve(("127.0.0.1", self.port))

    def slow(self, seconds: float) -> None:
        """Answer each POST ``seconds`` after it came (0: at once again)."""
        with self._lock:
            self._slow_seconds = seconds

    def redirect(self, url: str | None, *, status: int = 301) -> None:
        """Answer every POST ``status`` with ``Location: url`` (``None``: stop)."""
        with self._lock:
            self._redirect = None if url is None else (status, url)

    # -- what came ------------------------------------------------------------------

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for _, payload in self.received]

    def counts(self) -> Counter[str]:
        """How often each idempotency key came, repeats included."""
        return Counter(p["idempotency_key"] for p in self.payloads())

    def handled(self) -> Counter[str]:
        """The keys the agent handled, after its de-duplication (once each)."""
        with self._lock:
            return Counter(list(self._handled))

    def first_arrival(self) -> dict[str, float]:
        """When each key first came (wall clock, ``time.time()``)."""
        with self._lock:
            arrivals: dict[str, float] = {}
            for at, payload in self.received:
                arrivals.setdefault(payload["idempotency_key"], at)
            return arrivals

    def __enter__(self) -> InboundReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
