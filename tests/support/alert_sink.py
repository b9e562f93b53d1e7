"""An alert callback for the tests (``tests.support.alert_sink:record``)."""

from __future__ import annotations

from delivery.sessions.alerts import SessionEvent

RECEIVED: list[SessionEvent] = []


def record(event: SessionEvent) -> None:
    RECEIVED.append(event)


def explode(event: SessionEvent) -> None:
    raise RuntimeError("pager is down")
