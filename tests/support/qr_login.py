"""Running the QR login against a simulator in tests: a fake clock, a terminal, a person.

The flow gets a fake clock that only its sleeps move, so no test waits for a poll
interval, and a :class:`Terminal` that records what it was shown and told and
types the numbers a test queued (as a person reading them off the phone would).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

from delivery.sessions.login import AlreadyBound, LoginResult, QrCode, qr_login
from delivery.simulator import PlatformSimulator

__all__ = ["FakeClock", "Terminal", "confirmed_login", "run_login"]


class FakeClock:
    """Seconds that move only when the flow sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Terminal:
    """What the flow showed, said and asked; ``typed`` are the answers the person gives."""

    shown: list[QrCode] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    typed: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.said)

    def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        if not self.typed:
            raise AssertionError(f"asked {prompt!r} with no answer left to type")
        return self.typed.pop(0)


def run_login(
    sim: PlatformSimulator,
    http: requests.Session,
    terminal: Terminal,
    *,
    clock: FakeClock | None = None,
    max_refreshes: int = 3,
    timeout_seconds: float = 30.0,
    local_tokens: Sequence[str] = (),
    interactive: bool = True,
) -> LoginResult | AlreadyBound:
    """The login at ``sim``, polling every 0.5 s of the fake clock."""
    clock = clock or FakeClock()
    return qr_login(
        base_url=sim.base_url,
        session=http,
        show=terminal.shown.append,
        say=terminal.said.append,
        ask_code=terminal.ask if interactive else None,
        local_tokens=local_tokens,
        poll_interval_seconds=0.5,
        max_refreshes=max_refreshes,
        timeout_seconds=timeout_seconds,
        sleep=clock.sleep,
        clock=clock,
    )


def confirmed_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal, **options: object
) -> LoginResult:
    """As :func:`run_login`, for a login that must end confirmed."""
    outcome = run_login(sim, http, terminal, **options)  # type: ignore[arg-type]
    assert isinstance(outcome, LoginResult), outcome
    return outcome
