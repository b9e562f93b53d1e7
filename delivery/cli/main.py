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
        accounts_commands,
        briefings_commands,
        db_commands,
        demo_commands,
        hermes_commands,
        inbox_commands,
        login_commands,
        messages_commands,
        monitoring_commands,
        operations_commands,
        processes_commands,
        readers_commands,
        retention_commands,
        simulator_commands,
    )

    cli.add_command(accounts_commands.account)
    cli.add_command(db_commands.db)
    cli.add_command(messages_commands.enqueue_command)
    cli.add_command(messages_commands.show)
    cli.add_command(simulator_commands.simulator)
    cli.add_command(briefings_commands.briefings)
    cli.add_command(briefings_commands.briefing)
    cli.add_command(login_commands.login)
    cli.add_command(operations_commands.status)
    cli.add_command(operations_commands.messages)
    cli.add_command(operations_commands.dead)
    cli.add_command(operations_commands.replay_command)
    cli.add_command(readers_commands.inbound)
    cli.add_command(readers_commands.readers)
    cli.add_command(inbox_commands.inbox)
    cli.add_command(inbox_commands.relay)
    cli.add_command(retention_commands.prune)
    cli.add_command(hermes_commands.hermes)
    cli.add_command(processes_commands.worker)
    cli.add_command(processes_commands.beat)
    cli.add_command(demo_commands.demo)
    cli.add_command(monitoring_commands.metrics)
    cli.add_command(monitoring_commands.flower)


_register()


def main() -> None:
    """Entry point of the ``delivery`` console script."""
    cli(prog_name="delivery")
