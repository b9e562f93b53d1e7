"""The root of the ``delivery`` command and how it reports errors.

Every :class:`~delivery.errors.DeliveryError` ends the command with a one-line
``error: ...`` on stderr: exit status 2 for bad input, 1 for anything else.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from delivery.errors import DeliveryError, InvalidInput

__all__ = ["cli", "configure_logging", "main"]

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr with time, level and source."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    # Alembic narrates every schema check at INFO; only `db upgrade` wants that.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DeliveryError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2 if isinstance(exc, InvalidInput) else 1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def cli(verbose: bool) -> None:
    """Durable delivery of outbound chat messages through rate-limited platform APIs."""
    configure_logging(logging.DEBUG if verbose else logging.INFO)


def _register() -> None:
    from delivery.cli import (
        accounts,
        briefings,
        db,
        demo,
        hermes,
        inbox,
        login,
        messages,
        monitoring,
        operations,
        processes,
        readers,
        retention,
        simulator,
    )

    cli.add_command(accounts.account)
    cli.add_command(db.db)
    cli.add_command(messages.enqueue_command)
    cli.add_command(messages.show)
    cli.add_command(simulator.simulator)
    cli.add_command(briefings.briefings)
    cli.add_command(briefings.briefing)
    cli.add_command(login.login)
    cli.add_command(operations.status)
    cli.add_command(operations.messages)
    cli.add_command(operations.dead)
    cli.add_command(operations.replay_command)
    cli.add_command(readers.inbound)
    cli.add_command(readers.readers)
    cli.add_command(inbox.inbox)
    cli.add_command(inbox.relay)
    cli.add_command(retention.prune)
    cli.add_command(hermes.hermes)
    cli.add_command(processes.worker)
    cli.add_command(processes.beat)
    cli.add_command(demo.demo)
    cli.add_command(monitoring.metrics)
    cli.add_command(monitoring.flower)


_register()


def main() -> None:
    """Entry point of the ``delivery`` console script."""
    cli(prog_name="delivery")
