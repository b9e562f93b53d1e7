"""``delivery enqueue`` and ``delivery show``: put a message in, look at one."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from delivery.api import enqueue, get_status

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
    """A message, its chunks and their states."""
    info = get_status(message_id)
    console = Console()
    console.print(
        f"message {info.id}: {info.status} — {info.account_id} → {info.to_user_id}, "
        f"{info.chunks_sent}/{len(info.chunks)} chunks sent, "
        f"created {info.created_at:%Y-%m-%d %H:%M:%S}"
    )
    if info.dead_reason:
        console.print(f"dead: {info.dead_reason}")
    table = Table("#", "status", "chars", "attempts", "failures", "last outcome", "client_id")
    for chunk in info.chunks:
        table.add_row(
            str(chunk.seq),
            chunk.status,
            str(chunk.chars),
            str(chunk.attempts),
            str(chunk.failures),
            chunk.last_outcome or "",
            chunk.client_id,
        )
    console.print(table)
