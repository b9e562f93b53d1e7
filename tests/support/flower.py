"""Starting a real ``delivery flower`` and reading its API, for the tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import requests

from delivery.devstack import ManagedProcess, free_port

FLOWER_START_SECONDS = 60.0


def flower_argv(*options: str) -> list[str]:
    return [sys.executable, "-m", "delivery", "flower", *options]


def get_json(url: str, **options: Any) -> Any | None:
    """The JSON answer of ``url``, or None while Flower is not listening yet."""
    try:
        response = requests.get(url, timeout=5, **options)
    except requests.ConnectionError:
        return None
    response.raise_for_status()
    return response.json()


class RunningFlower:
    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, **options: Any) -> Any | None:
        assert self.process.running(), self.process.log_text()
        return get_json(f"{self.base}{path}", **options)


def start_flower(env: dict[str, str], log_dir: Path, *options: str) -> RunningFlower:
    port = free_port()
    argv = flower_argv("--port", str(port), *options)
    return RunningFlower(ManagedProcess(argv, env=env, log_path=log_dir / "flower.log"), port)
