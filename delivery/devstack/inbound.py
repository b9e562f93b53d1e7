"""The agent's side of the inbound relay, for the tests and benchmarks: a webhook
receiver that checks signatures (and can go down), the agent's Celery worker, and
a ``delivery relay`` process.

Example::

    with InboundReceiver(secret=secret) as receiver:
        env.update(receiver.settings())
        agent = AgentWorker(env=env, log_dir=workdir)
        relay = start_relay_process(env, workdir / "relay.log")
        ...
        receiver.counts()       # Counter({'bot-1:9223...': 1, ...})
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from delivery.devstack.agent import AGENT_QUEUE, AGENT_TASK
from delivery.devstack.processes import ManagedProcess
from delivery.inbound.signing import SIGNATURE_HEADER, verify

__all__ = [
    "DEFAULT_SECRET",
    "RELAY_READY",
    "AgentWorker",
    "InboundReceiver",
    "agent_settings",
    "start_relay_process",
]

DEFAULT_SECRET = "inbound-webhook-secret-0123"  # noqa: S105 - for local runs, not a credential
# What `delivery relay` logs once it runs.
RELAY_READY = "relay: hands inbound messages over by"
_READY_SECONDS = 60.0


class InboundReceiver:
    """The agent's webhook: every POST whose signature holds is kept, with the
    wall-clock time it came; a bad signature is answered 401. ``down()`` closes the
    port (a refused connection), ``up()`` opens it again."""

    def __init__(self, *, secret: str = DEFAULT_SECRET) -> None:
        self.secret = secret
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.refused_signatures = 0
        self._lock = threading.Lock()
        self._server = self._serve(("127.0.0.1", 0))
        self.port: int = self._server.server_address[1]

    def _serve(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                header = self.headers.get(SIGNATURE_HEADER)
                good = verify(secret=receiver.secret, body=body, header=header, now=arrived)
                payload = json.loads(body)
                good = good and self.headers.get("Idempotency-Key") == payload["idempotency_key"]
                receiver._note(arrived, payload, good=good)
                self.send_response(204 if good else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(address, Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _note(self, arrived: float, payload: dict[str, Any], *, good: bool) -> None:
        with self._lock:
            if good:
                self.received.append((arrived, payload))
            else:
                self.refused_signatures += 1

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

    def down(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def up(self) -> None:
        self._server = self._serve(("127.0.0.1", self.port))

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for _, payload in self.received]

    def counts(self) -> Counter[str]:
        """How often each idempotency key came."""
        return Counter(p["idempotency_key"] for p in self.payloads())

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


class AgentWorker:
    """The agent's own Celery worker (:mod:`delivery.devstack.agent`), consuming the
    inbound task from the delivery broker and writing what it got to a file."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.received_file = log_dir / f"agent-{uuid.uuid4().hex[:6]}.jsonl"
        self.received_file.touch()
        env = {**env, "AGENT_RECEIVED_FILE": str(self.received_file)}
        argv = [sys.executable, "-m", "celery", "-A", "delivery.devstack.agent", "worker"]
        argv += ["-Q", AGENT_QUEUE, "-c", "2", "-P", "threads", "--without-gossip"]
        argv += ["--without-mingle", "-l", "INFO", "-n", f"agent-{uuid.uuid4().hex[:6]}@%h"]
        self.process = ManagedProcess(argv, env=env, log_path=log_dir / "agent-worker.log")
        self.process.wait_for_log("ready.", timeout_seconds=_READY_SECONDS)

    def received(self) -> list[dict[str, Any]]:
        lines = self.received_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def counts(self) -> Counter[str]:
        """How often each idempotency key came."""
        return Counter(entry["message"]["idempotency_key"] for entry in self.received())

    def first_arrival(self) -> dict[str, float]:
        """When each key first came (wall clock)."""
        arrivals: dict[str, float] = {}
        for entry in self.received():
            arrivals.setdefault(entry["message"]["idempotency_key"], entry["at"])
        return arrivals

    def stop(self) -> None:
        self.process.stop()


def agent_settings() -> dict[str, str]:
    """The relay's settings that hand every message to the agent's task."""
    return {"DELIVERY_INBOUND_TASK": AGENT_TASK, "DELIVERY_INBOUND_TASK_QUEUE": AGENT_QUEUE}


def start_relay_process(env: dict[str, str], log_path: Path) -> ManagedProcess:
    """``delivery relay`` as a process of its own, once it is running."""
    relay = ManagedProcess([sys.executable, "-m", "delivery", "relay"], env=env, log_path=log_path)
    relay.wait_for_log(RELAY_READY, timeout_seconds=_READY_SECONDS)
    return relay
