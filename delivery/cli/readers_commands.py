"""``delivery inbound`` and ``delivery readers``: a reader wrote; what is known of readers.

``delivery inbound`` is :func:`delivery.record_inbound` for agents written in
other languages: call it for every message a reader sends to the bot.
"""

from __future__ import annotations

import datetime as dt
import sys

import click
from rich.table import Table

from delivery.api.sending import clear_dropping, record_inbound
from delivery.cli.output import console
from delivery.read.reader_views import list_readers

__all__ = ["inbound", "readers"]

STDIN = "-"  # the --context-token value that means "read it from standard input"


@click.command("inbound")
@click.argument("account_id")
@click.argument("peer_id")
@click.option(
    "--context-token",
    help="The context token that came with the message; '-' reads it from stdin.",
)
@click.option(
    "--at",
    "at_text",
    help="When the reader wrote (ISO 8601 with a zone, e.g. 2026-11-30T08:00:00+08:00); now "
    "by default.",
)
def inbound(account_id: str, peer_id: str, context_token: str | None, at_text: str | None) -> None:
    """PEER_ID wrote to ACCOUNT_ID: their reply window reopens, their budget starts
    again, and a message that waited for them goes now."""
    if context_token == STDIN:
        context_token = sys.stdin.readline().strip()
    at = None
    if at_text is not None:
        try:
            at = dt.datetime.fromisoformat(at_text)
        except ValueError:
            raise click.BadParameter(
                f"{at_text!r} is not an ISO 8601 time", param_hint="--at"
            ) from None
    record_inbound(account_id, peer_id, context_token=context_token, at=at)
    click.echo(f"account {account_id}: {peer_id} wrote; their chat can go")


@click.group("readers", invoke_without_command=True)
@click.option("--account", "account_id", help="Only this account's readers.")
@click.pass_context
def readers(ctx: click.Context, account_id: str | None) -> None:
    """Readers: when they last wrote, how many sends are left, their state."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("account", "peer", "state", "last wrote (UTC)", "sent since", "left", "ctx")
    for info in list_readers(account_id):
        table.add_row(
            info.account_id,
            info.peer_id,
            info.state,
            "" if info.last_inbound_at is None else f"{info.last_inbound_at:%Y-%m-%d %H:%M:%S}",
            str(info.sends_since_inbound),
            "" if info.sends_left is None else str(info.sends_left),
            "yes" if info.has_context_token else "",
        )
    console().print(table)


@readers.command("clear")
@click.argument("account_id")
@click.argument("peer_id")
def clear(account_id: str, peer_id: str) -> None:
    """PEER_ID no longer drops ACCOUNT_ID's sends silently: their messages go now.

    A reader is held as dropping after DELIVERY_READER_DROPS_BEFORE_HOLD sends in a row
    accepted without a message_id; their writing to the bot clears it too.
    """
    if clear_dropping(account_id, peer_id):
        click.echo(f"account {account_id}: {peer_id} cleared; their waiting messages go now")
    else:
        click.echo(f"account {account_id}: {peer_id} was not held as dropping; nothing to do")
