"""The alert hook: a real webhook POST and a Python callback; a failing hook never raises."""

from __future__ import annotations

import datetime as dt

import pytest

from delivery.sessions.alerts import Alerter, SessionEvent
from tests.support import alert_sink
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

EVENT = SessionEvent(
    event="session_expired",
    account_id="bot-1",
    expired_since=dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC),
    waiting_messages=3,
    detail="session expired (ret -14 'session timeout')",
    hint="store a new token",
)


def test_webhook_and_callback_both_receive_the_event() -> None:
    alert_sink.RECEIVED.clear()
    with WebhookReceiver() as hook:
        Alerter(webhook_url=hook.url, callback="tests.support.alert_sink:record").send(EVENT)
        wait_until(lambda: hook.events, timeout=5, message="the POST")
    assert hook.events == [
        {
            "event": "session_expired",
            "account_id": "bot-1",
            "expired_since": "2026-11-24T08:00:00+00:00",
            "waiting_messages": 3,
            "detail": "session expired (ret -14 'session timeout')",
            "hint": "store a new token",
        }
    ]
    assert alert_sink.RECEIVED == [EVENT]


def test_a_failing_hook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(
        webhook_url="http://127.0.0.1:1/alerts", callback="tests.support.alert_sink:explode"
    )
    alerter.send(EVENT)
    text = caplog.text
    assert "alert webhook failed for bot-1" in text
    assert "pager is down" in text
