"""Hermes Agent 0.19.0 itself, sending through delivery: its plugin manager, its
gateway's platform registry, its Weixin adapter, its one-shot sender, its cron
delivery, its ``pre_gateway_dispatch`` hook; a real worker, a real ledger, the
platform simulator. Run by ``scripts/hermes-e2e`` in a virtual environment with
``hermes-agent==0.19.0`` (not collected by the normal test run).

The tests run in file order: the first shows Hermes sending by itself, before the
plugin is enabled; the plugin then stays enabled for the others.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import delivery
from tests.support.bursts import assert_delivered_exactly_once_in_order
from tests.support.stack import Stack
from tests.support.waiting import wait_until

HERMES_ACCOUNT = "b0t1e2e3@im.bot"
TOKEN = "tok-hermes-0000-secret-A"
NEW_TOKEN = "tok-hermes-0000-secret-B"
PEERS = [f"o9cq8{n:03d}@im.wechat" for n in range(4)]


def hermes_home() -> Path:
    return Path(os.environ["HERMES_HOME"])


def write_config(*, enabled: bool) -> None:
    """``$HERMES_HOME/config.yaml`` as a user would write it."""
    plugins = "plugins:\n  enabled: [delivery]\n" if enabled else "plugins:\n  enabled: []\n"
    (hermes_home() / "config.yaml").write_text(plugins + "cron:\n  wrap_response: false\n")


def write_account(base_url: str, token: str) -> None:
    """What Hermes's QR login writes (``save_weixin_account``)."""
    from gateway.platforms.weixin import save_weixin_account

    save_weixin_account(
        str(hermes_home()),
        account_id=HERMES_ACCOUNT,
        token=token,
        base_url=base_url,
        user_id="owner@im.wechat",
    )


def discover() -> None:
    from hermes_cli.plugins import discover_plugins

    discover_plugins(force=True)


def platform_config(base_url: str, token: str = TOKEN) -> Any:
    from gateway.config import PlatformConfig

    return PlatformConfig(
        enabled=True, token=token, extra={"account_id": HERMES_ACCOUNT, "base_url": base_url}
    )


def received(stack: Stack) -> list[str]:
    return [m.text for ms in stack.snapshot().messages.values() for m in ms]


@pytest.fixture
def hermes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Hermes's account on the simulator, its account file, Weixin in its env."""
    hermes_home().mkdir(parents=True, exist_ok=True)
    stack.simulator.model.register_account(HERMES_ACCOUNT, token=TOKEN)
    write_account(stack.simulator.base_url, TOKEN)
    monkeypatch.setenv("WEIXIN_ACCOUNT_ID", HERMES_ACCOUNT)
    monkeypatch.setenv("WEIXIN_TOKEN", TOKEN)
    monkeypatch.setenv("WEIXIN_BASE_URL", stack.simulator.base_url)
    yield stack
    from delivery.hermes.bridge import get_bridge

    get_bridge().close()


def test_before_the_plugin_hermes_sends_by_itself(hermes: Stack) -> None:
    import aiohttp
    from gateway.platform_registry import platform_registry
    from gateway.platforms import weixin
    from hermes_cli.plugins import invoke_hook

    # Given the plugin installed but not enabled
    write_config(enabled=False)
    discover()
    assert not platform_registry.is_registered("weixin")

    async def live_and_direct() -> None:
        adapter = weixin.WeixinAdapter(platform_config(hermes.simulator.base_url))
        async with aiohttp.ClientSession() as http:
            adapter._send_session = http
            assert (await adapter.send(PEERS[0], "live, by Hermes")).success
        sent = await weixin.send_weixin_direct(
            extra={"account_id": HERMES_ACCOUNT, "base_url": hermes.simulator.base_url},
            token=TOKEN,
            chat_id=PEERS[1],
            message="direct, by Hermes",
        )
        assert sent.get("success"), sent

    # When Hermes sends live, through its one-shot sender, and an inbound event arrives
    asyncio.run(live_and_direct())
    invoke_hook("pre_gateway_dispatch", event=None, gateway=None, session_store=None)

    # Then the platform got Hermes's own sends and delivery's ledger holds nothing
    assert sorted(received(hermes)) == ["direct, by Hermes", "live, by Hermes"]
    assert delivery.list_messages() == []
    assert delivery.list_accounts() == []


def test_with_the_plugin_every_text_goes_through_the_ledger(hermes: Stack) -> None:
    from gateway.config import Platform
    from gateway.platform_registry import platform_registry
    from gateway.platforms.base import MessageEvent, MessageType
    from hermes_cli.plugins import get_plugin_manager, invoke_hook
    from tools.send_message_tool import _send_to_platform

    # Given the plugin enabled in config.yaml, a worker, and an account locked out
    write_config(enabled=True)
    discover()
    plugins = {p["name"]: p for p in get_plugin_manager().list_plugins()}
    assert plugins["delivery"]["enabled"] and not plugins["delivery"]["error"]
    hermes.simulator.model.configure(
        rate_limit_sends=25,
        rate_limit_window_seconds=1.0,
        lockout_seconds=3.0,
        lockout_extend_seconds=0.5,
    )
    hermes.start_worker()
    hermes.simulator.model.lock_out(HERMES_ACCOUNT, seconds=3.0)
    adapter = platform_registry.create_adapter("weixin", platform_config(hermes.simulator.base_url))
    assert type(adapter).__name__ == "DeliveryWeixinAdapter"

    # When a reader writes (Hermes dispatches the event; its hook records it)
    source = adapter.build_source(
        chat_id=PEERS[0], chat_type="dm", user_id=PEERS[0], user_name=PEERS[0]
    )
    event = MessageEvent(
        text="hi",
        message_type=MessageType.TEXT,
        source=source,
        raw_message={"from_user_id": PEERS[0], "context_token": "ctx-A1", "message_id": 7265},
        message_id="7265",
    )
    invoke_hook("pre_gateway_dispatch", event=event, gateway=None, session_store=None)
    readers = {r.peer_id: r for r in delivery.list_readers()}
    assert readers[PEERS[0]].has_context_token

    # ... and Hermes sends a burst, a long reply, a cron-style delivery, a tool send
    long_reply = "\n\n".join(f"Paragraph {n}: " + "research " * 60 for n in range(12))

    async def sends() -> list[Any]:
        results = [await adapter.send(PEERS[n % 4], f"burst {n}") for n in range(10)]
        results.append(await adapter.send(PEERS[0], long_reply, reply_to="7265"))
        results.append(await adapter.send(PEERS[0], long_reply, reply_to="7265"))  # a retry
        results.append(await adapter.send(PEERS[1], "cron live", metadata={"job_id": "j1"}))
        tool = await _send_to_platform(
            Platform.WEIXIN, platform_config(hermes.simulator.base_url), PEERS[2], "tool send"
        )
        results.append(tool)
        return results

    results = asyncio.run(sends())
    from cron import scheduler

    job = {
        "id": "brief",
        "name": "brief",
        "deliver": f"weixin:{PEERS[3]}",
        "next_run_at": "2026-11-24T08:00:00+00:00",
    }
    assert scheduler._deliver_result(job, "cron fallback briefing") is None
    assert scheduler._deliver_result(job, "cron fallback briefing") is None  # Hermes again

    # ... while the session expires mid-way and Hermes's QR login rewrites its file
    wait_until(lambda: len(received(hermes)) >= 3, timeout=60, message="the first sends")
    hermes.simulator.model.expire_session(HERMES_ACCOUNT)
    wait_until(
        lambda: any(a.session_state == "expired" for a in delivery.list_accounts()),
        timeout=60,
        message="delivery sees the expiry",
    )
    hermes.simulator.model.set_token(HERMES_ACCOUNT, token=NEW_TOKEN)
    write_account(hermes.simulator.base_url, NEW_TOKEN)

    # Then Hermes was told success with the ledger's ids, and the ledger holds each once
    ids = [r.message_id if hasattr(r, "message_id") else r["message_id"] for r in results]
    assert all(
        getattr(r, "success", None) or (isinstance(r, dict) and r.get("success")) for r in results
    )
    assert ids[10] == ids[11]  # the retried reply queued nothing
    messages = delivery.list_messages()
    all_ids = sorted({str(m.id) for m in messages})
    assert len(all_ids) == 10 + 1 + 1 + 1 + 1  # burst, reply, cron live, tool, cron fallback
    assert set(map(str, ids)) <= set(all_ids)
    statuses = hermes.wait_final(all_ids, timeout=120)
    assert set(statuses.values()) == {"delivered"}, statuses
    assert_delivered_exactly_once_in_order(hermes, all_ids)
    texts = received(hermes)
    assert texts.count("cron fallback briefing") == 1 and texts.count("tool send") == 1
    file_data = json.loads(
        (hermes_home() / "weixin/accounts" / f"{HERMES_ACCOUNT}.json").read_text()
    )
    assert file_data["token"] == NEW_TOKEN  # read, never written, by delivery
