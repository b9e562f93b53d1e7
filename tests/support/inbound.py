"""The agent's side of the inbound relay, for tests: a real webhook receiver that
checks signatures and can go down, the agent's Celery worker, and relays.

Example::

    with InboundReceiver(secret=SECRET) as receiver:
        stack.overrides.update(receiver.settings())
        relay = stack.start_relay()
        ...
        assert receiver.counts() == {key: 1 for key in keys}
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from delivery import runtime
from delivery.devstack import ManagedProcess
from delivery.inbound.relay import InboundRelay
from delivery.inbound.signing import SIGNATURE_HEADER, verify

SECRET = "inbound-webhook-secret-0123"
AGENT_QUEUE = "agent.inbound"
AGENT_TASK = "agent.on_inbound"
RELAY_READY = "relay: hands inbound messages over by"


class InboundReceiver:
    """The agent's webhook: every POST whose signature holds is kept (by key, with the
    time it came); a bad signature is answered 401. ``down()`` closes the port (a
    refused connection), ``up()`` opens it again."""

    def __init__(self, *, secret: str = SECRET) -> None:
        self.secret = secret
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.refused_signatures = 0
        self._lock = threading.Lock()
        self._server = self._serve(("127.0.0.1", 0))
        self.port = self._server.server_address[1]

    def _serve(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                good = verify(
                    secret=receiver.secret,
                    body=body,
                    header=self.headers.get(SIGNATURE_HEADER),
                    now=time.time(),
                )
                payload = json.loads(body)
                good = good and self.headers.get("Idempotency-Key") == payload["idempotency_key"]
                with receiver._lock:
                    if good:
                        receiver.received.append((time.monotonic(), payload))
                    else:
                        receiver.refused_signatures += 1
                self.send_response(204 if good else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(address, Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/inbound?key=k-123"

    def settings(self) -> dict[str, str]:
        return {
            "DELIVERY_INBOUND_WEBHOOK_URL": self.url,
            "DELIVERY_INBOUND_WEBHOOK_SECRET": self.secret,
            "DELIVERY_INBOUND_WEBHOOK_TIMEOUT_SECONDS": "2",
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
        """When each key first came (``time.monotonic``)."""
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
    """The agent's own Celery worker (``tests.support.agent``), consuming the inbound
    task from the delivery broker and writing what it got to a file."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.received_file = log_dir / f"agent-{uuid.uuid4().hex[:6]}.jsonl"
        self.received_file.touch()
        env = {**env, "AGENT_RECEIVED_FILE": str(self.received_file)}
        argv = [sys.executable, "-m", "celery", "-A", "tests.support.agent", "worker"]
        argv += ["-Q", AGENT_QUEUE, "-c", "2", "-P", "threads", "--without-gossip"]
        argv += ["--without-mingle", "-l", "INFO", "-n", f"agent-{uuid.uuid4().hex[:6]}@%h"]
        self.process = ManagedProcess(argv, env=env, log_path=log_dir / "agent-worker.log")
        self.process.wait_for_log("ready.", timeout_seconds=60)

    def received(self) -> list[dict[str, Any]]:
        lines = self.received_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def counts(self) -> Counter[str]:
        return Counter(entry["message"]["idempotency_key"] for entry in self.received())

    def stop(self) -> None:
        self.process.stop()


def paced(count: int, *, per_second: float) -> Iterator[int]:
    """``0 .. count-1``, the n-th handed out ``n / per_second`` seconds after the first.

    It shapes a workload's arrival rate (readers do not all write in one instant);
    it never waits for an outcome: tests wait on conditions with deadlines.
    """
    start = time.monotonic()
    for n in range(count):
        delay = start + n / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n


def agent_settings() -> dict[str, str]:
    return {"DELIVERY_INBOUND_TASK": AGENT_TASK, "DELIVERY_INBOUND_TASK_QUEUE": AGENT_QUEUE}


def relay_argv() -> list[str]:
    return [sys.executable, "-m", "delivery", "relay"]


def start_relay_process(env: dict[str, str], log_path: Path) -> ManagedProcess:
    """``delivery relay`` as a process of its own, once it is running."""
    relay = ManagedProcess(relay_argv(), env=env, log_path=log_path)
    relay.wait_for_log(RELAY_READY, timeout_seconds=60)
    return relay


@contextmanager
def relay_in_thread() -> Iterator[InboundRelay]:
    """The relay of this process's settings, ticking in a thread until the block ends."""
    relay = runtime.inbound_relay()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=30)


__all__ = [
    "AGENT_QUEUE",
    "AGENT_TASK",
    "SECRET",
    "AgentWorker",
    "InboundReceiver",
    "agent_settings",
    "paced",
    "relay_argv",
    "relay_in_thread",
    "start_relay_process",
]
