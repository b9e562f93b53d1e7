"""The demo's story and its compressed clock, as data.

08:00. The agent's interactive replies have just tripped the platform's limit,
so the account is locked out when the morning's cron briefings arrive: a daily
briefing and a leaderboard for every reader, and a few long research replies.
Part-way through, the platform expires the bot's session; the agent logs in
again a little later and writes the new token to the account store. Meanwhile
a "pulse" briefing fires on its own schedule. One reader has not written to
the bot for a day: the platform refuses their messages with the same bare
``-2`` as its rate limit; the pipeline tells the two apart, holds that reader's
chat without slowing the others, and sends it the moment they write back.
Another reader's sends the platform accepts and drops silently (a bare
``{"ret": 0}`` without a ``message_id``): none of their messages is reported
delivered, and after two such answers their next messages would wait for them.

Everything runs ten times faster than on the real clock (``COMPRESSION``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from delivery.api.sending import OutboundMessage
from delivery.devstack import clock
from delivery.simulator import SimulatorConfig

__all__ = [
    "ACCOUNT",
    "COMPRESSION",
    "DROPPING_READER",
    "PULSE",
    "QUIET_READER",
    "READERS",
    "Scenario",
    "burst",
    "demo_settings",
    "scenario",
]

COMPRESSION = clock.DEMO_FACTOR  # one second of the demo is ten on the real clock
ACCOUNT = "demo-bot"
READERS = tuple(f"reader{n:02d}@im.wechat" for n in range(1, 13))
QUIET_READER = READERS[-1]  # has not written for a day
DROPPING_READER = READERS[6]  # the platform accepts their sends and drops them silently
PULSE = "pulse"
DAY_SECONDS = 86_400 / COMPRESSION


@dataclass(frozen=True)
class Scenario:
    """The platform the demo meets, in demo seconds."""

    simulator: SimulatorConfig
    initial_lockout_seconds: float
    allowed_sends_per_second: float
    relogin_after_seconds: float  # how long the "agent" takes to log in again
    quiet_reader_writes_after: float  # share of the burst delivered when they write back


def scenario() -> Scenario:
    # The platform: 5 sends per second per account (50 per 100 s of real time),
    # a 6 s lockout (a minute) growing 0.5 s per send during it, and a session
    # that expires after 45 accepted sends. Its refusals are a bare -2, whether of
    # the rate or of a reader outside their reply window (a day); this demo's
    # platform counts no per-message budget. It drops one reader's sends silently.
    return Scenario(
        simulator=SimulatorConfig(
            rate_limit_sends=5,
            rate_limit_window_seconds=1.0,
            lockout_seconds=6.0,
            lockout_extend_seconds=0.5,
            rate_limit_errmsg=None,
            expire_after_sends=45,
            send_latency_seconds=0.01,
            reader_window_seconds=DAY_SECONDS,
            silent_drop_readers=(DROPPING_READER,),
        ),
        initial_lockout_seconds=8.0,
        allowed_sends_per_second=5.0,
        relogin_after_seconds=3.0,
        quiet_reader_writes_after=0.6,
    )


def demo_settings(*, directory: Path) -> dict[str, str]:
    """The DELIVERY_* settings of every demo process: the demo's clock
    (:data:`delivery.devstack.clock.DEMO`) and where it keeps its accounts."""
    return {**clock.DEMO, "DELIVERY_ACCOUNT_STORE_DIR": str(directory / "accounts")}


def _long_reply(n: int, rng: random.Random) -> str:
    sections = []
    for s in range(rng.randint(3, 5)):
        body = " ".join(f"finding{n}.{s}.{w}" for w in range(150))
        sections.append(f"## Part {s + 1}\n\n{body}")
    code = "```python\n" + "\n".join(f"result_{i} = analyse({i})" for i in range(8)) + "\n```"
    return f"Research answer #{n}\n\n" + "\n\n".join(sections) + "\n\n" + code


def burst() -> list[OutboundMessage]:
    """The 08:00 burst: a briefing and a leaderboard per reader, and six long replies."""
    rng = random.Random(8)
    messages = []
    for n, reader in enumerate(READERS, 1):
        messages.append(
            OutboundMessage(
                ACCOUNT,
                reader,
                f"Good morning, reader {n}! Today's briefing:\n\n"
                + "\n".join(f"- item {i}: {rng.randint(1, 99)} updates" for i in range(1, 6)),
                idempotency_key=f"daily-{reader}",
                source="cron:daily",
            )
        )
        messages.append(
            OutboundMessage(
                ACCOUNT,
                reader,
                f"Leaderboard for reader {n}: you are number {rng.randint(1, 50)} this week.",
                idempotency_key=f"board-{reader}",
                source="cron:leaderboard",
            )
        )
    for n, reader in enumerate(READERS[:6], 1):
        messages.append(OutboundMessage(ACCOUNT, reader, _long_reply(n, rng), source="agent:reply"))
    return messages
