"""The Hermes plugin without Hermes installed: what it registers, the inbound hook,
the account mirror and the idempotency keys, on a real ledger. Hermes itself drives
the plugin in tests_hermes/ (scripts/hermes-e2e)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import delivery
from delivery.hermes import cron_runs, keys, plugin
from delivery.hermes.account_mirror import AccountMirror, account_file
from delivery.hermes.bridge import get_bridge
from tests.conftest import Ledger

ACCOUNT = "b0t1@im.bot"
PEER = "o9cq8001@im.wechat"


@dataclass
class StandInContext:
    """What Hermes hands ``register``: the calls it receives."""

    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    hooks: dict[str, list[Any]] = field(default_factory=dict)

    def register_platform(self, *, name: str, **entry: Any) -> None:
        self.platforms[name] = entry

    def register_hook(self, name: str, callback: Any) -> None:
        self.hooks.setdefault(name, []).append(callback)


def write_hermes_account(home: Path, token: str) -> Path:
    path = account_file(home, ACCOUNT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": token, "base_url": "http://127.0.0.1:9", "user_id": ""}))
    os.chmod(path, 0o600)
    return path


def test_register_names_the_weixin_platform_and_the_inbound_hook() -> None:
    ctx = StandInContext()
    plugin.register(ctx)
    assert set(ctx.platforms) == {"weixin"}
    assert callable(ctx.platforms["weixin"]["adapter_factory"])
    assert list(ctx.hooks) == ["pre_gateway_dispatch"]


def test_the_inbound_hook_records_the_reader_and_context_token(
    sqlite_ledger: Ledger, tmp_path: Path, monkeypatch: Any
) -> None:
    # Given Hermes's account file, and the plugin registered
    monkeypatch.setenv("HERMES_HOME", str(tmp_path))
    monkeypatch.setenv("WEIXIN_ACCOUNT_ID", ACCOUNT)
    write_hermes_account(tmp_path, "tok-hermes-0001")
    ctx = StandInContext()
    plugin.register(ctx)
    try:
        # When Hermes dispatches a Weixin message
        event = SimpleNamespace(
            source=SimpleNamespace(platform=SimpleNamespace(value="weixin"), user_id=PEER),
            raw_message={"from_user_id": PEER, "context_token": "ctx-1"},
        )
        assert ctx.hooks["pre_gateway_dispatch"][0](event=event, gateway=None) is None
        # Then the account is mirrored (not the poller) and the reader has a token
        (account,) = delivery.list_accounts()
        assert account.id == ACCOUNT and not account.owns_inbound
        (reader,) = delivery.list_readers(ACCOUNT)
        assert reader.peer_id == PEER and reader.has_context_token
    finally:
        get_bridge().close()


def test_a_relogin_rewriting_the_file_rotates_the_token(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    path = write_hermes_account(tmp_path, "tok-hermes-0001")
    mirror = AccountMirror(
        hermes_home=tmp_path, hermes_account_id=ACCOUNT, delivery_account_id="bot-1"
    )
    assert mirror.sync()
    assert not mirror.sync()  # unchanged: one stat, nothing written
    write_hermes_account(tmp_path, "tok-hermes-0002")
    assert mirror.sync()
    (account,) = delivery.list_accounts()
    assert account.token_version == 2
    assert json.loads(path.read_text())["token"] == "tok-hermes-0002"


def test_keys_tell_runs_and_replies_apart() -> None:
    one = keys.cron_key(job_id="j", run="2026-11-24T08:00", chat_id=PEER)
    assert one == keys.cron_key(job_id="j", run="2026-11-24T08:00", chat_id=PEER)
    assert one != keys.cron_key(job_id="j", run="2026-11-25T08:00", chat_id=PEER)
    reply = keys.reply_key(chat_id=PEER, reply_to="7265", text="a")
    assert reply != keys.reply_key(chat_id=PEER, reply_to="7265", text="b")


def test_a_cron_delivery_knows_its_run_while_it_delivers() -> None:
    seen: list[object] = []

    def deliver(job: dict[str, str], content: str) -> None:
        seen.append((cron_runs.current_run(), cron_runs.run_of_job(job["id"])))

    wrapped = cron_runs.wrap_deliver_result(deliver)
    assert cron_runs.wrap_deliver_result(wrapped) is wrapped
    wrapped({"id": "j", "next_run_at": "2026-11-24T08:00"}, "text")
    run = cron_runs.CronRun(job_id="j", run="2026-11-24T08:00")
    assert seen == [(run, run)]
    assert cron_runs.run_of_job("j") is None and cron_runs.current_run() is None
