"""``delivery relay`` and ``delivery inbox``: the inbound relay, and what it received.

``delivery relay`` runs the relay alone (``delivery worker --role inbound`` runs
it under the worker's supervisor, and ``--role all`` with the Celery workers).
Any number may run, on any hosts: a lease in Redis lets one poll each account.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from rich.table import Table

from delivery import runtime
from delivery.cli.output import console
from delivery.read.inbox_views import DEFAULT_LIMIT, list_inbox

__all__ = ["inbox", "relay"]

_EXCERPT_CHARS = 60


@click.command("relay")
def relay() -> None:
    """Poll the accounts that own their inbound side; hand their messages to the agent.

    Runs until SIGTERM or Ctrl-C. What a poll returned is in the ledger before its
    cursor moves, so stopping (or killing) it at any moment loses nothing.
    """
    inbound_relay = runtime.current().inbound_relay()  # a bad setting stops it here, named
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    inbound_relay.run(stop)


@click.command("inbox")
@click.option("--account", "account_id", help="Only this account's messages.")
@click.option("--peer", "peer_id", help="Only this reader's messages.")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(1, 10_000))
def inbox(account_id: str | None, peer_id: str | None, limit: int) -> None:
    """Inbound messages, newest first: who wrote what, and whether the agent has it."""
    table = Table("id", "received (UTC)", "account", "peer", "status", "hand-over", "text")
    for entry in list_inbox(account_id, peer_id, limit=limit):
        text = entry.text if entry.status == "received" else entry.reason
        text = (text or "").replace("\n", " ")
        if len(text) > _EXCERPT_CHARS:
            text = text[: _EXCERPT_CHARS - 1] + "…"
        table.add_row(
            str(entry.id),
            f"{entry.received_at:%Y-%m-%d %H:%M:%S}",
            entry.account_id,
            entry.peer_id or "",
            entry.status,
            "; ".join(f"{channel} {state}" for channel, state in entry.handovers.items()),
            text,
        )
    console().print(table)
