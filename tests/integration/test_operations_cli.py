"""Operator commands read the ledger and Redis and say what they found."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

import delivery
from delivery.cli import cli
from delivery.cli.operations_commands import parse_since
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.types import utcnow
from tests.conftest import Ledger, RedisInfo

PEER = "o9cq80peer@im.wechat"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_status_messages_dead_and_show(ledger: Ledger, redis_db: RedisInfo) -> None:
    delivery.add_account("bot-1", token="tok-secret-0001", base_url="http://127.0.0.1:9")
    first = delivery.enqueue("bot-1", PEER, "one")
    second = delivery.enqueue("bot-1", "other@im.wechat", "two")
    with session_scope(ledger.engine) as session:
        outbox.kill(
            session,
            int(second),
            reason="refused by the platform: refused (ret -1 'invalid param')",
            now=utcnow(),
        )

    status = run("status")
    assert "bot-1" in status and "unknown" in status
    assert "queued 1" in status and "dead 1" in status
    assert "delivery.send" in status
    assert "oldest waiting: message" in status

    listing = run("messages", "--status", "queued")
    assert first in listing and PEER in listing

    dead = run("dead", "--since", "1h")
    assert second in dead and "invalid param" in dead

    shown = run("show", first)
    assert f"message {first}: queued" in shown and "client_id" in shown


def test_account_list_never_shows_a_token(ledger: Ledger) -> None:
    run("account", "add", "bot-1", "--token", "tok-very-secret-9876", "--base-url", "http://h")
    listing = run("account", "list")
    assert "bot-1" in listing
    assert "tok-very-secret" not in listing
    assert "9876" in listing  # the last four, to tell tokens apart


def test_parse_since_takes_durations_and_iso_times() -> None:
    assert utcnow() - parse_since("2h") < dt.timedelta(hours=2, seconds=5)
    assert parse_since("2026-11-24T08:00:00") == dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
