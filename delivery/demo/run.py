"""Running the demo: start everything, play the story, watch, report, clean up.

Every process the demo starts (redis-server, a worker, beat) and the simulator
are stopped when it ends, fails, or is interrupted (Ctrl-C, SIGTERM).

Example::

    exit_code = run_demo(directory=Path(".delivery-demo"), console=Console())
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from delivery.api.sending import enqueue_many, record_inbound
from delivery.briefings import add_briefing
from delivery.demo import scenario as story
from delivery.demo.observe import Progress, Watcher
from delivery.demo.report import Timing, build_report, render
from delivery.devstack import ManagedProcess
from delivery.devstack.stack import LocalStack, local_stack
from delivery.ledger.db import engine_for, redact_url, upgrade_head
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.settings import ENV_PREFIX, load_settings
from delivery.simulator import PlatformSimulator
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["run_demo"]

_TICK_SECONDS = 0.25
_PLAIN_STATUS_EVERY_SECONDS = 5.0


@dataclass
class _Story:
    """What happened, as the demo saw it."""

    started: float
    events: list[str] = field(default_factory=list)
    expired_at: float | None = None
    token_stored_at: float | None = None
    heal_seconds: list[float] = field(default_factory=list)
    expiries: int = 0
    quiet_waited: int = 0  # messages to the quiet reader still open when they wrote back
    quiet_wrote_at: float | None = None
    quiet_delivered_after: float | None = None

    def say(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:5.1f}s  {text}")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT unwind like Ctrl-C, so every child is stopped either way.

    SIGINT gets the handler explicitly too: a process started with SIGINT ignored (as
    some supervisors and test runners start their children) would otherwise keep
    ignoring it, and run the demo to its end after a Ctrl-C."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(*, directory: Path, console: Console, timeout_seconds: float = 240.0) -> int:
    """Run the demo in ``directory``; 0 when the report is clean, 1 when not, 130 if interrupted."""
    logging.getLogger().setLevel(logging.WARNING)  # the workers log to files
    with contextlib.ExitStack() as cleanup, _terminate_as_interrupt():
        try:
            return _run(directory, console, cleanup, timeout_seconds)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping everything the demo started[/yellow]")
            return 130


def _prepare(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "logs").mkdir(parents=True)


def _demo_stack(directory: Path, cleanup: contextlib.ExitStack, console: Console) -> LocalStack:
    """The demo's stack: its own redis-server unless ``DELIVERY_BROKER_URL`` names one,
    a SQLite ledger, the platform of the story, on the demo's clock."""
    settings = load_settings()
    shared = "broker_url" in settings.model_fields_set
    if shared:
        console.print(f"broker: {redact_url(settings.broker_url)} (DELIVERY_BROKER_URL)")
    database_url = f"sqlite:///{directory / 'ledger.sqlite3'}"
    upgrade_head(database_url)
    given = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    stack = cleanup.enter_context(
        local_stack(
            directory,
            settings={**given, **story.demo_settings(directory=directory)},
            database_url=database_url,
            redis_url=settings.broker_url if shared else None,
            simulator=story.scenario().simulator,
            log_dir=directory / "logs",
        )
    )
    if stack.redis is not None:
        console.print(
            f"broker: a private redis-server ({stack.redis.binary}) on port {stack.redis.port}"
        )
    return stack


def _run(directory: Path, console: Console, cleanup: contextlib.ExitStack, limit: float) -> int:
    plan = story.scenario()
    console.print(
        f"[bold]delivery demo[/bold] — clock compressed {story.COMPRESSION}x "
        "(about a minute here is ten on the real clock); working in "
        f"{directory}"
    )
    _prepare(directory)
    stack = _demo_stack(directory, cleanup, console)
    simulator = stack.simulator
    stack.add_account(story.ACCOUNT, token=secrets.token_urlsafe(18))
    for reader in story.READERS:  # they wrote to the bot this morning; the agent said so
        if reader != story.QUIET_READER:
            context = simulator.model.inject_inbound(story.ACCOUNT, from_user_id=reader, text="hi")
            record_inbound(story.ACCOUNT, reader, context_token=context)
    add_briefing(
        story.PULSE,
        account_id=story.ACCOUNT,
        recipients=story.READERS[:3],
        producer="delivery.briefings.examples:daily_briefing",
        schedule="every 15s",
    )
    console.print(f"platform simulator at {simulator.base_url}; starting a worker and beat ...")
    beat = stack.start_beat()
    stack.start_worker(
        queues=f"{SEND_QUEUE},{DEFAULT_QUEUE}", name="demo-worker", log_name="worker"
    )

    simulator.model.lock_out(story.ACCOUNT, seconds=plan.initial_lockout_seconds)
    told = _Story(started=time.monotonic())
    told.say(
        "08:00: an earlier burst left the account locked out for "
        f"{plan.initial_lockout_seconds:g} s"
    )
    ids = enqueue_many(story.burst())
    told.say(f"cron enqueued {len(ids)} messages (briefings, leaderboards, long replies)")
    watcher = Watcher(
        engine=engine_for(stack.database_url),
        simulator=simulator,
        account_id=story.ACCOUNT,
        quiet_reader=story.QUIET_READER,
    )
    store = FileAccountStore(directory / "accounts")
    finished = _watch(console, watcher, told, plan, simulator, store, beat, limit)
    beat.stop()
    _settle(watcher, console)
    platform = simulator.model.snapshot()
    arrivals = [m.arrived_at for ms in platform.messages.values() for m in ms]
    report = build_report(
        engine=engine_for(stack.database_url),
        platform=platform,
        timing=Timing(
            elapsed_seconds=(max(arrivals) if arrivals else time.monotonic()) - told.started,
            allowed_sends_per_second=plan.allowed_sends_per_second,
            compression=story.COMPRESSION,
            lockout_seconds=plan.initial_lockout_seconds,
            session_expiries=told.expiries,
            heal_seconds=told.heal_seconds,
            reader_waited=told.quiet_waited,
            reader_delivered_seconds=told.quiet_delivered_after,
            dropping_reader=story.DROPPING_READER,
        ),
        account_id=story.ACCOUNT,
    )
    console.print("\n[bold]report[/bold]")
    for line in render(report):
        console.print(line, highlight=False)
    console.print(f"logs: {directory / 'logs'}; everything the demo started is now stopped")
    return 0 if finished and report.clean else 1


def _watch(
    console: Console,
    watcher: Watcher,
    told: _Story,
    plan: story.Scenario,
    simulator: PlatformSimulator,
    store: FileAccountStore,
    beat: ManagedProcess,
    limit: float,
) -> bool:
    """Follow the story until the burst and a briefing slot are delivered."""
    previous = watcher.snapshot()
    live = Live(console=console, refresh_per_second=4, transient=False)
    last_plain = 0.0
    with live if console.is_terminal else contextlib.nullcontext():
        while True:
            now = watcher.snapshot()
            _narrate(told, previous, now)
            _play_agent(told, now, plan, simulator, store)
            previous = now
            if console.is_terminal:
                live.update(_panel(told, now))
            else:
                while told.events:
                    console.print(told.events.pop(0), highlight=False)
                if time.monotonic() - last_plain >= _PLAIN_STATUS_EVERY_SECONDS:
                    console.print(_status_line(told, now), highlight=False)
                    last_plain = time.monotonic()
            if now.final == now.messages and now.briefing_runs >= 1:
                return True
            if time.monotonic() - told.started > limit:
                console.print(f"[red]not done after {limit:g} s[/red]")
                return False
            if not beat.running():
                console.print("[red]beat stopped unexpectedly; see its log[/red]")
                return False
            time.sleep(_TICK_SECONDS)


def _narrate(told: _Story, before: Progress, now: Progress) -> None:
    if now.rate_limited > before.rate_limited:
        told.say(f"platform: 'rate limited' ({now.rate_limited} so far); the account cools down")
    if now.session_state != before.session_state:
        if now.session_state == "expired":
            told.expiries += 1
            told.say("platform: session expired (-14); the account's sends wait, spending nothing")
        elif now.session_state == "ok" and before.session_state == "expired":
            if told.token_stored_at is not None:
                told.heal_seconds.append(time.monotonic() - told.token_stored_at)
            told.say("session check: the new token is valid; sends resume by themselves")
    if now.briefing_runs > before.briefing_runs:
        told.say(f"beat: briefing '{story.PULSE}' slot produced its messages")
    if now.unconfirmed > before.unconfirmed:
        told.say(
            f"platform: accepted a send to {story.DROPPING_READER} without a message_id (a "
            "silent drop); that message ends unconfirmed, not delivered"
        )
    if now.awaiting_reader > before.awaiting_reader and told.quiet_wrote_at is None:
        told.say(
            f"platform: a bare -2 for {story.QUIET_READER}, silent for a day: their chat "
            "waits for them; the other readers go on"
        )
    wrote = told.quiet_wrote_at
    if wrote is not None and told.quiet_delivered_after is None and now.quiet_open == 0:
        told.quiet_delivered_after = time.monotonic() - wrote
        told.say(f"{story.QUIET_READER}'s messages delivered, as they wrote back")


def _play_agent(
    told: _Story,
    now: Progress,
    plan: story.Scenario,
    simulator: PlatformSimulator,
    store: FileAccountStore,
) -> None:
    """The agent notices its bot was logged out and logs in again a little later; the
    quiet reader writes back part-way through."""
    if told.quiet_wrote_at is None and now.delivered >= plan.quiet_reader_writes_after * (
        now.messages
    ):
        context = simulator.model.inject_inbound(
            story.ACCOUNT, from_user_id=story.QUIET_READER, text="good morning!"
        )
        record_inbound(story.ACCOUNT, story.QUIET_READER, context_token=context)
        told.quiet_wrote_at = time.monotonic()
        told.quiet_waited = now.quiet_open
        told.say(f"{story.QUIET_READER} wrote back; the agent called record_inbound")
    if now.session_state != "expired":
        told.expired_at = None
        return
    if told.expired_at is None:
        told.expired_at = time.monotonic()
        told.token_stored_at = None
    if (
        told.token_stored_at is None
        and time.monotonic() - told.expired_at >= plan.relogin_after_seconds
    ):
        token = secrets.token_urlsafe(18)
        simulator.model.configure(expire_after_sends=None)
        simulator.model.set_token(story.ACCOUNT, token=token)
        store.save(story.ACCOUNT, StoredCredentials(token=token, base_url=simulator.base_url))
        told.token_stored_at = time.monotonic()
        told.say("agent: logged in again; new token written to the account store")


def _settle(watcher: Watcher, console: Console) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = watcher.snapshot()
        if now.final == now.messages:
            return
        time.sleep(_TICK_SECONDS)
    console.print("[red]some messages were still in flight after 60 s[/red]")


def _status_line(told: _Story, now: Progress) -> str:
    return (
        f"{time.monotonic() - told.started:5.1f}s  messages {now.delivered}/{now.messages}"
        f" delivered, chunks {now.chunks_accepted}/{now.chunks} accepted,"
        f" session {now.session_state}"
    )


def _panel(told: _Story, now: Progress) -> Group:
    table = Table(show_header=False, box=None)
    table.add_row("elapsed", f"{time.monotonic() - told.started:.1f} s")
    table.add_row(
        "messages",
        f"{now.delivered} delivered / {now.messages}, {now.unconfirmed} unconfirmed, "
        f"{now.dead} dead",
    )
    table.add_row("chunks", f"{now.chunks_accepted} accepted by the platform / {now.chunks}")
    table.add_row("rate limits", f"{now.rate_limited} answer(s)")
    table.add_row("session", now.session_state)
    table.add_row(
        "briefings", f"{now.briefing_runs} slot(s) run, {now.briefing_messages} message(s)"
    )
    return Group(table, Text("\n".join(told.events[-10:])))
