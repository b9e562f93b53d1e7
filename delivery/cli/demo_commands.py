"""``delivery demo``: the product end to end on an embedded default, in about a minute."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from delivery.cli.output import console
from delivery.demo import run_demo

__all__ = ["demo"]


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    default=".delivery-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Working directory (emptied first): ledger, logs, account store.",
)
@click.option("--timeout", default=240.0, show_default=True, help="Give up after, seconds.")
def demo(directory: Path, timeout: float) -> None:
    """Run a morning of cron briefings through a rate-limited, session-expiring platform.

    Uses a SQLite ledger and its own redis-server (unless DELIVERY_BROKER_URL is
    set), the platform simulator, a worker and beat; prints live progress and a
    report (delivered, lost, duplicates, order, rate limits, session recovery).
    """
    sys.exit(run_demo(directory=directory.resolve(), console=console(), timeout_seconds=timeout))
