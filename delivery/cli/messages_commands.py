"""``delivery enqueue`` and ``delivery show``: put a message in, look at one."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from delivery.api.sending import enqueue
from delivery.cli.output import console
from delivery.read.message_views import get_attempts, get_status

__all__ = ["enqueue_command", "show"]


@click.command("enqueue")
@click.argument("account_id")
@click.argument("to_user_id")
@click.argument("text", required=False)
@click.option("--idempotency-key", help="The same key never queues the message twice.")
def enqueue_command(
    account_id: str, to_user_id: str, text: str | None, idempotency_key: str | None
) -> None:
    """Queue TEXT (or stdin when left out) for TO_USER_ID through ACCOUNT_ID."""
    if text is None:
        text = sys.stdin.read()
    message_id = enqueue(account_id, to_user_id, text, idempotency_key=idempotency_key)
    click.echo(message_id)


@click.command("show")
@click.argument("message_id")
def show(message_id: str) -> None:
    """A message, its chunks and every attempt at them."""
    info = get_status(message_id)
    out = console()
    out.print(
        f"message {info.id}: [bold]{info.status}[/bold] — {info.account_id} → {info.to_user_id}, "
        f"{info.chunks_sent}/{len(info.chunks)} chunks sent, "
        f"created {info.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", from {info.source}" if info.source else "")
        + (f", replayed {info.replay_count}x" if info.replay_count else "")
    )
    if info.dead_reason:
        out.print(f"dead: {info.dead_reason}")
    chunks = Table("#", "status", "chars", "attempts", "failures", "last outcome", "client_id")
    for chunk in info.chunks:
        chunks.add_row(
            str(chunk.seq),
            chunk.status,
            str(chunk.chars),
            str(chunk.attempts),
            str(chunk.failures),
            chunk.last_outcome or "",
            chunk.client_id,
        )
    out.print(chunks)
    attempts = Table(
        "chunk",
        "try",
        "started (UTC)",
        "ms",
        "outcome",
        "HTTP",
        "ret",
        "errcode",
        "errmsg / detail / message_id",
        "ctx",
        "host",
    )
    for a in get_attempts(message_id):
        attempts.add_row(
            str(a.chunk_seq),
            str(a.attempt_no),
            f"{a.started_at:%H:%M:%S.%f}"[:-3],
            "" if a.duration_ms is None else str(a.duration_ms),
            a.outcome,
            "" if a.http_status is None else str(a.http_status),
            "" if a.ret is None else str(a.ret),
            "" if a.errcode is None else str(a.errcode),
            a.errmsg or a.detail or a.platform_message_id or "",
            "yes" if a.used_context_token else "",
            a.worker_host or "",
        )
    out.print(attempts)
