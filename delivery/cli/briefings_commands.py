"""``delivery briefings`` and ``delivery briefing add|remove``: scheduled briefings."""

from __future__ import annotations

import click
from rich.table import Table

from delivery.briefings import add_briefing, list_briefings, remove_briefing
from delivery.cli.output import console
from delivery.errors import BriefingError

__all__ = ["briefing", "briefings"]


@click.command("briefings")
def briefings() -> None:
    """Every briefing: schedule, recipients, next slot, last run."""
    table = Table("name", "account", "schedule", "recipients", "next slot (UTC)", "last run")
    for info in list_briefings():
        last = ""
        if info.last_slot_at is not None:
            last = f"{info.last_slot_at:%Y-%m-%d %H:%M:%S} {info.last_status}"
            if info.last_error:
                last += f": {info.last_error[:60]}"
        table.add_row(
            info.name + ("" if info.enabled else " (disabled)"),
            info.account_id,
            f"{info.schedule} ({info.timezone})",
            ", ".join(info.recipients),
            f"{info.next_slot_at:%Y-%m-%d %H:%M:%S}" if info.next_slot_at else "",
            last,
        )
    console().print(table)


@click.group("briefing")
def briefing() -> None:
    """Define or remove a briefing."""


@briefing.command("add")
@click.argument("name")
@click.option("--account", "account_id", required=True, help="The account that sends it.")
@click.option("--to", "recipients", multiple=True, required=True, help="A recipient (repeat).")
@click.option("--producer", required=True, help="package.module:callable returning the text.")
@click.option("--schedule", required=True, help="'every 1h', or a crontab like '0 8 * * 1-5'.")
@click.option("--timezone", default="UTC", show_default=True, help="Time zone of a crontab.")
@click.option("--disabled", is_flag=True, help="Define it without running it.")
def add(
    name: str,
    account_id: str,
    recipients: tuple[str, ...],
    producer: str,
    schedule: str,
    timezone: str,
    disabled: bool,
) -> None:
    """Create briefing NAME, or change it."""
    info = add_briefing(
        name,
        account_id=account_id,
        recipients=recipients,
        producer=producer,
        schedule=schedule,
        timezone=timezone,
        enabled=not disabled,
    )
    upcoming = f", next slot {info.next_slot_at:%Y-%m-%d %H:%M:%S} UTC" if info.next_slot_at else ""
    click.echo(f"briefing {info.name}: {info.schedule} ({info.timezone}){upcoming}")


@briefing.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Delete briefing NAME and its run history."""
    if not remove_briefing(name):
        raise BriefingError(f"no briefing named {name!r}")
    click.echo(f"briefing {name} removed")
