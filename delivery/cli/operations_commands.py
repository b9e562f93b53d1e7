"""Operator commands: ``status``, ``messages``, ``dead``, ``replay``."""

from __future__ import annotations

import datetime as dt
import re

import click
from rich.progress import Progress
from rich.table import Table

from delivery.api.replay import dead_since, replay
from delivery.cli.output import console
from delivery.errors import NotReplayable
from delivery.ledger.states import MessageStatus
from delivery.ledger.types import utcnow
from delivery.read.message_views import MessageInfo, list_messages
from delivery.read.status import collect_status

__all__ = ["dead", "messages", "replay_command", "status"]

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str) -> dt.datetime:
    """``2h`` (that long ago), or an ISO 8601 time (UTC unless it says otherwise)."""
    match = _AGO.fullmatch(value.strip())
    if match:
        try:
            return utcnow() - dt.timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])
        except OverflowError:
            raise click.BadParameter(f"{value!r} reaches before the year 1") from None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration like 30m, 2h, 1d nor an ISO time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@click.command("status")
def status() -> None:
    """Accounts (session, cooldown), queues, counts by state, oldest waiting chunk."""
    report = collect_status()
    out = console()
    accounts = Table(
        "account",
        "session",
        "expired since",
        "open messages",
        "cooldown",
        "strikes",
        "waiting",
        "rate/min",
    )
    learned: list[str] = []
    for a in report.accounts:
        gate = a.gate
        accounts.add_row(
            a.account_id,
            a.session_state,
            f"{a.expired_since:%Y-%m-%d %H:%M:%S}" if a.expired_since else "",
            str(a.open_messages),
            "?" if gate is None else f"{gate.cooldown_seconds:.1f}s",
            "?" if gate is None else str(gate.strikes),
            "?" if gate is None else str(gate.waiting),
            _rate(report.configured_per_minute, a.learned_per_minute),
        )
        if a.learned_from:
            learned.append(
                f"learned limit of {a.account_id}: {a.learned_from} "
                "(delivery account reset-pace to forget)"
            )
        if a.pace_note and a.pace_note != a.learned_from:
            learned.append(f"pace of {a.account_id}: {a.pace_note}")
    out.print(accounts)
    for line in learned:
        out.print(line)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.messages_by_status.items()))
    out.print(f"messages: {counts or 'none'}; dead in the last day: {report.dead_last_day}")
    queues = ", ".join(f"{q} {n}" for q, n in report.queue_depths.items())
    out.print(f"broker queues: {queues or '?'}; chunks waiting: {report.chunks_waiting}")
    if report.oldest_waiting is not None:
        message_id, seq, seconds = report.oldest_waiting
        out.print(f"oldest waiting: message {message_id} chunk {seq}, {_age(seconds)}")
    readers = ", ".join(f"{k} {v}" for k, v in sorted(report.readers.items()))
    waiting = f"awaiting their reader: {report.awaiting_reader} message(s)"
    if report.oldest_awaiting_reader_seconds is not None:
        waiting += f", the oldest for {_age(report.oldest_awaiting_reader_seconds)}"
    out.print(f"readers: {readers or 'none known'}; {waiting}")
    if report.redis_error:
        out.print(f"[yellow]{report.redis_error}[/yellow]")


def _rate(configured: float, learned: float | None) -> str:
    if learned is None or learned >= configured:
        return f"{configured:g} configured"
    return f"{learned:g} learned (configured {configured:g})"


def _message_table(rows: list[MessageInfo], *, reasons: bool) -> Table:
    table = Table("id", "status", "account", "to", "chunks", "created (UTC)")
    if reasons:
        table.add_column("dead because")
    for m in rows:
        cells = [
            m.id,
            m.status,
            m.account_id,
            m.to_user_id,
            f"{m.chunks_sent}/{len(m.chunks)}",
            f"{m.created_at:%Y-%m-%d %H:%M:%S}",
        ]
        if reasons:
            cells.append(m.dead_reason or "")
        table.add_row(*cells)
    return table


@click.command("messages")
@click.option(
    "--status",
    "state",
    type=click.Choice([str(s) for s in MessageStatus]),
    help="Only messages in this state (awaiting_reader: open, waiting for their reader).",
)
@click.option("--account", "account_id")
@click.option("--to", "to_user_id")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def messages(state: str | None, account_id: str | None, to_user_id: str | None, limit: int) -> None:
    """The newest messages, with chunk progress."""
    rows = list_messages(status=state, account_id=account_id, to_user_id=to_user_id, limit=limit)
    console().print(_message_table(rows, reasons=False))


@click.command("dead")
@click.option("--since", "since_text", default="7d", show_default=True, help="30m, 2h, 1d or ISO.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
def dead(since_text: str, limit: int) -> None:
    """Dead messages, with the reason each died."""
    rows = list_messages(status="dead", dead_since=parse_since(since_text), limit=limit)
    console().print(_message_table(rows, reasons=True))


@click.command("replay")
@click.argument("message_id", required=False)
@click.option("--dead-since", "since_text", help="Replay every message dead since: 2h, ISO time.")
def replay_command(message_id: str | None, since_text: str | None) -> None:
    """Re-queue a dead message (or all dead since a time) from its first unsent chunk.

    Chunks the platform already accepted are not sent again; the rest keep
    their client_id. Cure the cause first (token, base URL, text).
    """
    if (message_id is None) == (since_text is None):
        raise click.UsageError("give a MESSAGE_ID or --dead-since, not both or neither")
    if message_id is not None:
        result = replay(message_id)
        click.echo(
            f"message {result.message_id} re-queued from chunk "
            f"{result.resumes_at_chunk}/{result.chunks} (it had died: {result.was_dead_because})"
        )
        return
    assert since_text is not None
    ids = dead_since(parse_since(since_text))
    done = 0
    with Progress(transient=False) as progress:
        task = progress.add_task("replaying", total=len(ids))
        for each in ids:
            try:
                replay(each)
                done += 1
            except NotReplayable:
                pass  # replayed by someone else meanwhile
            progress.advance(task)
    click.echo(f"{done} dead message(s) re-queued")
