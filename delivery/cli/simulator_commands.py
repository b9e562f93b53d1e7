"""``delivery simulator``: run the platform simulator on its own, for demos and trials.

Its control API (``/_sim/``) can reset it, replace its tokens and read every message
it received, so it listens on a loopback address unless ``--allow-remote`` says
otherwise; then every control call must carry the token it prints (or the one
``--control-token`` gives) as ``X-Simulator-Token``.
"""

from __future__ import annotations

import secrets

import click

from delivery.simulator import PlatformSimulator, SimulatorConfig, serve_forever
from delivery.simulator.routes import CONTROL_TOKEN_HEADER
from delivery.validation import is_loopback

__all__ = ["simulator"]


def _account(value: str) -> tuple[str, str]:
    account_id, sep, token = value.partition("=")
    if not sep or not account_id or not token:
        raise click.BadParameter(f"{value!r} is not ACCOUNT_ID=TOKEN")
    return account_id, token


def _control_token(host: str, allow_remote: bool, given: str | None) -> str | None:
    """The token the control API will require (``None``: none, loopback only)."""
    if not is_loopback(host) and not allow_remote:
        raise click.BadParameter(
            f"{host} is not a loopback address: anyone who reaches it could reset the "
            "simulator, replace its tokens or read what it received through /_sim/. Pass "
            "--allow-remote to serve there anyway; the control API then needs a token.",
            param_hint="--host",
        )
    if given is not None and not given.strip():
        raise click.BadParameter("must not be empty", param_hint="--control-token")
    if given is None and not is_loopback(host):
        return secrets.token_urlsafe(24)
    return given


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen on a --host that is not a loopback address; /_sim/ then needs a token.",
)
@click.option(
    "--control-token",
    metavar="TOKEN",
    help=f"Require {CONTROL_TOKEN_HEADER}: TOKEN of every /_sim/ call (with "
    "--allow-remote, one is made up and printed when not given).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="ACCOUNT_ID=TOKEN",
    help="Register an account (repeatable); more through POST /_sim/accounts.",
)
@click.option("--rate-limit", type=click.IntRange(min=1), help="Sends per window per account.")
@click.option("--window", default=10.0, show_default=True, help="Rate window, seconds.")
@click.option("--lockout", default=60.0, show_default=True, help="Lockout, seconds.")
@click.option("--lockout-extend", default=5.0, show_default=True, help="Growth per try, seconds.")
@click.option("--expire-after", type=click.IntRange(min=1), help="Expire a token after N sends.")
@click.option("--latency", default=0.0, show_default=True, help="Per-send delay, seconds.")
def simulator(
    host: str,
    port: int,
    allow_remote: bool,
    control_token: str | None,
    accounts: tuple[str, ...],
    rate_limit: int | None,
    window: float,
    lockout: float,
    lockout_extend: float,
    expire_after: int | None,
    latency: float,
) -> None:
    """A simulated iLink Bot platform on HOST:PORT (Ctrl-C stops it).

    Inspect what arrived at GET /_sim/received; drive it through /_sim/.
    """
    token = _control_token(host, allow_remote, control_token)
    try:
        config = SimulatorConfig(
            rate_limit_sends=rate_limit,
            rate_limit_window_seconds=window,
            lockout_seconds=lockout,
            lockout_extend_seconds=lockout_extend,
            expire_after_sends=expire_after,
            send_latency_seconds=latency,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    pairs = [_account(value) for value in accounts]

    def ready(sim: PlatformSimulator) -> None:
        for account_id, account_token in pairs:
            sim.model.register_account(account_id, token=account_token)
        click.echo(f"simulator at {sim.base_url} (inspect {sim.base_url}/_sim/received)")
        if token is not None:
            shown = token if control_token is None else "as given by --control-token"
            click.echo(f"control token: {shown} (send it as {CONTROL_TOKEN_HEADER} to /_sim/)")

    try:
        serve_forever(host=host, port=port, config=config, ready=ready, control_token=token)
    except KeyboardInterrupt:
        click.echo("simulator stopped")
