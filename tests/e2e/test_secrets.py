"""Tokens are secrets: never in logs, task arguments, Redis, Flower, CLI output or errors.

A burst runs through every path that logs (a rate limit, an expired session
and its alert, a token rotation, transient failures, a permanent refusal),
with Flower watching; then everything a person could read is searched for the
bot tokens and the context token.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from click.testing import CliRunner

import delivery
from delivery.cli import cli
from delivery.simulator import Fault
from tests.conftest import RedisInfo
from tests.support.bursts import burst
from tests.support.flower import FLOWER_START_SECONDS, start_flower
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.slow


def redis_dump(url: str) -> str:
    """Every key and value of the Redis database, as text."""
    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def test_no_token_anywhere_a_person_could_read(
    stack: Stack, redis_db: RedisInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first_token = f"tok-FIRST-{secrets.token_hex(8)}"
    second_token = f"tok-SECOND-{secrets.token_hex(8)}"
    context_token = f"ctx-{secrets.token_hex(8)}"
    password = secrets.token_urlsafe(12)
    auth = ("admin", password)
    with WebhookReceiver() as hook:
        stack.overrides["DELIVERY_ALERT_WEBHOOK_URL"] = hook.url
        account = stack.add_account(token=first_token)
        model = stack.simulator.model
        model.configure(expire_after_sends=6)
        model.queue_fault(Fault.http_error(502), count=2, account_id=account)
        model.queue_fault(
            Fault.answer(ret=-2, errcode=-2, errmsg="rate limited"), account_id=account
        )
        stack.start_worker(beat=True)
        flower = start_flower(stack.env(), tmp_path, "--basic-auth", f"admin:{password}")
        try:
            wait_until(
                lambda: bool(flower.api("/api/workers", auth=auth)),
                timeout=FLOWER_START_SECONDS,
                interval=0.5,
                message="Flower up",
            )
            delivery.record_inbound(account, "user0@im.wechat", context_token=context_token)
            ids = delivery.enqueue_many(burst(account, messages=8, recipients=3, seed=11))
            wait_until(lambda: hook.of("session_expired"), timeout=60, message="the expiry alert")
            model.configure(expire_after_sends=None)
            model.set_token(account, token=second_token)
            delivery.add_account(account, token=second_token, base_url=stack.simulator.base_url)
            stack.wait_final(ids, timeout=120)
            model.queue_fault(Fault.answer(ret=-1, errcode=-1, errmsg="bad"), account_id=account)
            dead = delivery.enqueue(account, "user9@im.wechat", "dies")
            stack.wait_final([dead], timeout=60)

            tasks = wait_until(
                lambda: flower.api("/api/tasks", auth=auth), timeout=30, message="Flower's tasks"
            )
            task_id = next(iter(tasks))
            pages = [
                requests.get(f"{flower.base}/api/tasks", auth=auth, timeout=10).text,
                requests.get(f"{flower.base}/api/task/info/{task_id}", auth=auth, timeout=10).text,
                requests.get(f"{flower.base}/tasks", auth=auth, timeout=10).text,
                requests.get(f"{flower.base}/task/{task_id}", auth=auth, timeout=10).text,
            ]
        finally:
            flower.process.stop()

    runner = CliRunner()
    cli_output = [
        runner.invoke(cli, args).output
        for args in (["account", "list"], ["status"], ["show", ids[0]], ["show", dead], ["dead"])
    ]
    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*.log")]
    readable = {
        "worker, beat and flower logs": "\n".join(logs),
        "this process's log records": caplog.text,
        "Redis (broker queues, task arguments, gate)": redis_dump(redis_db.url),
        "Flower's pages and API": "\n".join(pages),
        "CLI output": "\n".join(cli_output),
        "alert webhook events": repr(hook.events),
    }
    assert "session expired" in readable["worker, beat and flower logs"]
    assert len(readable["Flower's pages and API"]) > 1000
    for secret in (first_token, second_token, context_token, password):
        for where, text in readable.items():
            assert secret not in text, f"a secret appears in {where}"
