"""``delivery login [ACCOUNT_ID]``: log a bot in by QR code and store its token.

The code is drawn in the terminal (and its URL printed, for terminals that cannot
draw it); once a phone confirms, the token is stored as with ``account add``: a
new account, or a rotation of an existing one. The token itself is never printed.
"""

from __future__ import annotations

import io

import click
import qrcode
import requests

from delivery.accounts import add_account, mask_token
from delivery.ilink.protocol import DEFAULT_BASE_URL
from delivery.ledger.db import engine_for, ensure_ready
from delivery.sessions.login import (
    DEFAULT_MAX_REFRESHES,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    QrCode,
    qr_login,
)
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.settings import get_settings
from delivery.validation import validate_account_id, validate_base_url

__all__ = ["login", "render_qr"]


def render_qr(url: str) -> str:
    """``url`` as a QR code of block characters, dark on a light terminal or light on dark."""
    code = qrcode.QRCode(border=1)
    code.add_data(url)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def _show(code: QrCode) -> None:
    click.echo(render_qr(code.url), nl=False)
    click.echo(f"Scan with WeChat (code {code.number}), or open: {code.url}")


@click.command("login")
@click.argument("account_id", required=False)
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True)
@click.option(
    "--poll-interval",
    default=DEFAULT_POLL_INTERVAL_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between status polls.",
)
@click.option(
    "--max-refreshes",
    default=DEFAULT_MAX_REFRESHES,
    show_default=True,
    type=click.IntRange(min=0),
    help="New codes to show after one expires.",
)
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the whole login may take.",
)
def login(
    account_id: str | None,
    base_url: str,
    poll_interval: float,
    max_refreshes: int,
    timeout: float,
) -> None:
    """Log a bot in by QR code; store its token as ACCOUNT_ID (default: the bot id).

    An existing ACCOUNT_ID gets the new token (a rotation: waiting sends resume).
    """
    # Refuse what would fail only after the scan, when the token would be lost.
    if account_id is not None:
        validate_account_id(account_id)
    base_url = validate_base_url(base_url)
    ensure_ready(engine_for(get_settings().database_url))
    with requests.Session() as session:
        result = qr_login(
            base_url=base_url,
            session=session,
            show=_show,
            say=click.echo,
            poll_interval_seconds=poll_interval,
            max_refreshes=max_refreshes,
            timeout_seconds=timeout,
        )
    info = add_account(
        account_id or result.ilink_bot_id,
        token=result.token,
        base_url=result.base_url,
        ilink_user_id=result.ilink_user_id,
    )
    click.echo(
        f"account {info.id} logged in (token {mask_token(result.token)}, base URL {info.base_url})"
    )
    store_dir = get_settings().account_store_dir
    if store_dir is not None:
        credentials = StoredCredentials(
            token=result.token, base_url=info.base_url, ilink_user_id=result.ilink_user_id
        )
        path = FileAccountStore(store_dir).save(info.id, credentials)
        click.echo(f"token also written to the account store: {path}")
