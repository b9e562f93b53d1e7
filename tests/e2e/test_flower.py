"""``delivery flower``: a real Flower behind basic auth, watching a real worker.

Flower learns of tasks from worker events, which it hears only once connected,
so the tests wait until it hears the worker's heartbeats before sending.
"""

from __future__ import annotations

import ast
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

import delivery
from delivery.cli.monitoring_commands import flower_invocation
from delivery.devstack import free_port
from delivery.errors import ConfigError
from delivery.settings import load_settings
from tests.conftest import RedisInfo
from tests.support.configure import child_env
from tests.support.flower import (
    FLOWER_START_SECONDS,
    flower_argv,
    start_flower,
)
from tests.support.stack import TOKEN, Stack
from tests.support.waiting import wait_until

SECRET_TEXT = "the quarterly numbers: 4711 apples, 815 pears"


def env_without_credentials() -> dict[str, str]:
    return {
        k: v
        for k, v in child_env().items()
        if k not in ("DELIVERY_FLOWER_BASIC_AUTH", "FLOWER_BASIC_AUTH")
    }


def run_flower_cli(*options: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `delivery flower` that must stop by itself (it refuses to start)."""
    return subprocess.run(
        flower_argv(*options), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_flower_refuses_to_start_without_credentials(redis_db: RedisInfo) -> None:
    result = run_flower_cli("--port", str(free_port()), env=env_without_credentials())

    assert result.returncode != 0
    assert "refusing to start Flower without authentication" in result.stderr
    assert "--basic-auth" in result.stderr
    assert "DELIVERY_FLOWER_BASIC_AUTH" in result.stderr


def test_malformed_credentials_are_refused_without_being_echoed(redis_db: RedisInfo) -> None:
    result = run_flower_cli("--basic-auth", "admin:hunter2,second", env=env_without_credentials())
    assert result.returncode == 2
    assert "USER:PASSWORD" in result.stderr
    assert "hunter2" not in result.stderr

    with pytest.raises(ConfigError, match="DELIVERY_FLOWER_BASIC_AUTH") as raised:
        load_settings(flower_basic_auth="admin:hunter2 with spaces")
    assert "hunter2" not in str(raised.value)


def test_localhost_only_cannot_listen_elsewhere(redis_db: RedisInfo) -> None:
    result = run_flower_cli(
        "--localhost-only", "--address", "0.0.0.0", env=env_without_credentials()
    )

    assert result.returncode == 2
    assert "--localhost-only" in result.stderr


def test_the_password_travels_in_the_environment_not_in_argv() -> None:
    argv, env = flower_invocation(
        port=5555,
        address="127.0.0.1",
        credentials="admin:hunter2",
        environ={"FLOWER_BASIC_AUTH": "stale:old", "PATH": "/bin"},
    )
    assert not any("hunter2" in arg for arg in argv)
    assert env["FLOWER_BASIC_AUTH"] == "admin:hunter2"
    assert argv[1:6] == ["-m", "celery", "-A", "delivery", "flower"]

    _, open_env = flower_invocation(
        port=5555, address="127.0.0.1", credentials=None, environ={"FLOWER_BASIC_AUTH": "stale:old"}
    )
    assert "FLOWER_BASIC_AUTH" not in open_env


def test_flower_shows_our_worker_and_id_only_tasks_behind_basic_auth(
    stack: Stack, tmp_path: Path
) -> None:
    # Given a worker, and Flower started with credentials
    stack.add_account()
    node_prefix = f"flower-probe-{secrets.token_hex(3)}"
    stack.start_worker(name=node_prefix)
    password = secrets.token_urlsafe(12)
    auth = ("admin", password)
    flower = start_flower(stack.env(), tmp_path, "--basic-auth", f"admin:{password}")
    try:

        def hears_worker() -> bool:
            alive = flower.api("/api/workers", params={"status": "true"}, auth=auth)
            return bool(alive) and any(
                name.startswith(f"{node_prefix}@") and up for name, up in alive.items()
            )

        wait_until(
            hears_worker,
            timeout=FLOWER_START_SECONDS,
            interval=0.5,
            message=lambda: "Flower to hear the worker\n" + flower.process.log_text()[-3000:],
        )

        # When a message goes through the worker
        message_id = delivery.enqueue("bot-1", "reader@im.wechat", SECRET_TEXT)
        stack.wait_final([message_id], timeout=60)

        # Then Flower lists the send task, with nothing but ids for arguments (the chunk's,
        # the generation of its lease, and the account whose line it came from)
        def send_tasks() -> list[dict[str, Any]]:
            tasks = flower.api("/api/tasks", params={"taskname": "delivery.send_chunk"}, auth=auth)
            return [t for t in (tasks or {}).values() if t.get("args")]

        tasks = wait_until(send_tasks, timeout=30, interval=0.5, message="send_chunk in Flower")
        for task in tasks:
            args = ast.literal_eval(task["args"])
            assert len(args) == 3 and all(isinstance(a, int) for a in args[:2]), task["args"]
            assert args[2] == "bot-1"
            assert ast.literal_eval(task["kwargs"]) == {}
        everything = requests.get(f"{flower.base}/api/tasks", auth=auth, timeout=5).text
        assert SECRET_TEXT not in everything and TOKEN not in everything

        # and its API wants the credentials
        assert requests.get(f"{flower.base}/api/workers", timeout=5).status_code == 401
        wrong = ("admin", password + "x")
        assert requests.get(f"{flower.base}/api/workers", auth=wrong, timeout=5).status_code == 401
        workers = requests.get(
            f"{flower.base}/api/workers", params={"refresh": "true"}, auth=auth, timeout=10
        )
        assert workers.status_code == 200
        assert any(name.startswith(f"{node_prefix}@") for name in workers.json())

        # and the password is nowhere on Flower's command line (what `ps` shows)
        cmdline = Path(f"/proc/{flower.process.pid}/cmdline").read_bytes()
        assert b"celery" in cmdline and password.encode() not in cmdline
        # The caveat the README states: Flower's own /metrics asks for no credentials.
        assert requests.get(f"{flower.base}/metrics", timeout=5).status_code == 200
    finally:
        flower.process.stop()


def test_localhost_only_serves_127_0_0_1_without_credentials(
    redis_db: RedisInfo, tmp_path: Path
) -> None:
    flower = start_flower(env_without_credentials(), tmp_path, "--localhost-only")
    try:

        def dashboard() -> bool:
            assert flower.process.running(), flower.process.log_text()
            try:
                return requests.get(f"{flower.base}/", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(dashboard, timeout=FLOWER_START_SECONDS, interval=0.3, message="Flower's page")
        assert "no authentication" in flower.process.log_text()
    finally:
        flower.process.stop()
