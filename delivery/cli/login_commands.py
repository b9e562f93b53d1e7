"""``delivery login [ACCOUNT_ID]``: log a bot in by QR code and store its token.

The code is drawn in the terminal (and its URL printed, for terminals that cannot
draw it); once a phone confirms, the token is stored as with ``account add``: a
new account, or a rotation of an existing one. The token itself is never printed.

The code request names the tokens already held for ACCOUNT_ID (in the ledger and
the account store), as the official client does. When the platform asks for the
number shown on the phone, the command prompts for it (again after a wrong one).
When the platform answers that the bot is already bound to this client
(``binded_redirect``), no new token exists: with a token held for ACCOUNT_ID the
command says so and ends successfully, keeping that token; without one it ends
with an error saying what to do.
"""

from __future__ import annotations

import io

import click
import qrcode
import requests

from delivery import runtime
from delivery.api.account_admin import add_account, mask_token, stored_token
from delivery.errors import LoginError
from delivery.ilink.protocol import DEFAULT_BASE_URL
from delivery.ledger.db import ensure_ready
from delivery.sessions.login import (
    DEFAULT_MAX_REFRESHES,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    AlreadyBound,
    LoginResult,
    QrCode,
    qr_login,
)
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.settings import Settings
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


def _ask_code(prompt: str) -> str:
    return str(click.prompt(prompt, type=str))


def _held_tokens(account_id: str | None, settings: Settings) -> list[str]:
    """The tokens already held for the account: the ledger's, then the account store's."""
    if account_id is None:
        return []
    tokens = [stored_token(account_id)]
    if settings.account_store_dir is not None:
        credentials = FileAccountStore(settings.account_store_dir).load(account_id)
        tokens.append(credentials.token if credentials else None)
    return list(dict.fromkeys(token for token in tokens if token))


def _already_bound(account_id: str | None, *, held: bool) -> None:
    """Say what ``binded_redirect`` means here; raise when no token is held to go on with."""
    if not held:
        name = account_id or "ACCOUNT_ID"
        raise LoginError(
            "the platform says this bot is already bound (binded_redirect) and issued no new "
            f"token, and none is held here: store its token with `delivery account add {name} "
            "--token -`, or unbind the bot in WeChat and log in again"
        )
    click.echo(
        f"account {account_id}: the platform says this bot is already bound to this client "
        "(binded_redirect); no new token was issued, the stored token stays in use"
    )


@click.command("login")
@click.argument("account_id", required=False)
@click.option(
    "--base-url",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="Where the QR login starts: the platform's fixed URL (another only for a simulator).",
)
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
    If the platform asks for the number shown on the phone, type it when prompted.
    """
    # Refuse what would fail only after the scan, when the token would be lost.
    if account_id is not None:
        validate_account_id(account_id)
    base_url = validate_base_url(base_url)
    process = runtime.current()
    settings = process.settings
    ensure_ready(process.engine)
    local_tokens = _held_tokens(account_id, settings)
    with requests.Session() as session:
        outcome = qr_login(
            base_url=base_url,
            session=session,
            show=_show,
            say=click.echo,
            ask_code=_ask_code,
            local_tokens=local_tokens,
            client_version=settings.ilink_client_version,
            poll_interval_seconds=poll_interval,
            max_refreshes=max_refreshes,
            timeout_seconds=timeout,
        )
    if isinstance(outcome, AlreadyBound):
        _already_bound(account_id, held=bool(local_tokens))
        return
    _store(account_id, outcome, settings)


def _store(account_id: str | None, result: LoginResult, settings: Settings) -> None:
    """Store the confirmed token in the ledger, and in the account store when one is set."""
    info = add_account(
        account_id or result.ilink_bot_id,
        token=result.token,
        base_url=result.base_url,
        ilink_user_id=result.ilink_user_id,
    )
    click.echo(
        f"account {info.id} logged in (token {mask_token(result.token)}, base URL {info.base_url})"
    )
    store_dir = settings.account_store_dir
    if store_dir is not None:
        credentials = StoredCredentials(
            token=result.token, base_url=info.base_url, ilink_user_id=result.ilink_user_id
        )
        path = FileAccountStore(store_dir).save(info.id, credentials)
        click.echo(f"token also written to the account store: {path}")
