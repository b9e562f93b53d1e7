"""``delivery simulator``: run the platform simulator on its own, for demos and trials."""

from __future__ import annotations

import click

from delivery.simulator import PlatformSimulator, SimulatorConfig, serve_forever

__all__ = ["simulator"]


def _account(value: str) -> tuple[str, str]:
    account_id, sep, token = value.partition("=")
    if not sep or not account_id or not token:
        raise click.BadParameter(f"{value!r} is not ACCOUNT_ID=TOKEN")
    return account_id, token


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
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
        for account_id, token in pairs:
            sim.model.register_account(account_id, token=token)
        click.echo(f"simulator at {sim.base_url} (inspect {sim.base_url}/_sim/received)")

    try:
        serve_forever(host=host, port=port, config=config, ready=ready)
    except KeyboardInterrupt:
        click.echo("simulator stopped")
