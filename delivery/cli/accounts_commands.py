"""``delivery account add|list|reset-pace``: create, rotate and list bot accounts;
forget a learned rate limit."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from delivery.api.account_admin import add_account, list_accounts, reset_pace
from delivery.cli.output import console
from delivery.ilink.protocol import DEFAULT_BASE_URL

__all__ = ["account"]

STDIN = "-"  # the --token value that means "read it from standard input"


@click.group()
def account() -> None:
    """Bot accounts and their tokens."""


@account.command("add")
@click.argument("account_id")
@click.option(
    "--token",
    help="The bot token; '-' reads it from stdin. Prompted (hidden) when left out.",
)
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True)
@click.option(
    "--owns-inbound/--no-owns-inbound",
    default=None,
    help="This service owns the account's inbound side (may call getupdates).",
)
def add(account_id: str, token: str | None, base_url: str, owns_inbound: bool | None) -> None:
    """Create ACCOUNT_ID, or update it; a new token rotates it (waiting sends resume)."""
    if token is None:
        token = click.prompt("Token", hide_input=True)
    elif token == STDIN:
        token = sys.stdin.readline().strip()
    info = add_account(account_id, token=token, base_url=base_url, owns_inbound=owns_inbound)
    click.echo(
        f"account {info.id}: token {info.token_masked} (version {info.token_version}), "
        f"base URL {info.base_url}, session {info.session_state}"
    )


@account.command("list")
def list_command() -> None:
    """Every account, with its token masked and its session state."""
    table = Table("account", "base URL", "token", "version", "session", "since", "last error")
    for info in list_accounts():
        table.add_row(
            info.id,
            info.base_url,
            info.token_masked,
            str(info.token_version),
            info.session_state,
            f"{info.session_expired_at:%Y-%m-%d %H:%M:%S}" if info.session_expired_at else "",
            info.last_error or "",
        )
    console().print(table)


@account.command("reset-pace")
@click.argument("account_id")
def reset_pace_command(account_id: str) -> None:
    """Forget the rate limit ACCOUNT_ID learned from a refusal (send at the configured
    rate again)."""
    if reset_pace(account_id):
        click.echo(f"account {account_id}: learned rate limit forgotten")
    else:
        click.echo(f"account {account_id}: no learned rate limit to forget")
