"""``delivery metrics`` (the Prometheus exporter) and ``delivery flower`` (Flower, with auth).

Flower shows task arguments, lets its users revoke tasks and shut workers down,
so it never runs open by accident: ``delivery flower`` refuses to start without
basic-auth credentials unless ``--localhost-only`` says it may serve 127.0.0.1
without them. The password goes to Flower in its ``FLOWER_BASIC_AUTH``
environment variable, not on its command line, where ``ps`` would show it.
Flower's own ``/metrics`` stays open even with auth; see :mod:`delivery.monitoring`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import click

from delivery import runtime
from delivery.monitoring import build_registry, serve
from delivery.settings import FLOWER_BASIC_AUTH_PATTERN
from delivery.validation import is_loopback

__all__ = ["flower", "flower_invocation", "metrics"]

LOCALHOST = "127.0.0.1"
DEFAULT_FLOWER_PORT = 5555
_CREDENTIALS_VARIABLE = "FLOWER_BASIC_AUTH"  # Flower reads its options from FLOWER_*


@click.command("metrics")
@click.option("--host", default=LOCALHOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (default: DELIVERY_METRICS_PORT, 9464).",
)
def metrics(host: str, port: int | None) -> None:
    """Serve delivery metrics for Prometheus at http://HOST:PORT/metrics.

    Every scrape reads the SQL ledger and Redis. There is no authentication:
    keep the default host, or put the exporter behind an authenticating proxy.
    """
    settings = runtime.current().settings
    registry = build_registry(settings)
    wanted = settings.metrics_port if port is None else port
    try:
        server, thread = serve(host=host, port=wanted, registry=registry)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{wanted}: {exc}") from None
    if not is_loopback(host):
        click.echo(f"warning: the exporter has no authentication and listens on {host}", err=True)
    click.echo(f"delivery metrics at http://{host}:{server.server_port}/metrics", err=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


def _check_credentials(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not FLOWER_BASIC_AUTH_PATTERN.fullmatch(value):
        # Never echo the value: it holds a password.
        raise click.BadParameter("must be USER:PASSWORD, with no comma or whitespace")
    return value


def flower_invocation(
    *, port: int, address: str, credentials: str | None, environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``celery -A delivery flower``.

    ``credentials`` (``user:password``) travel in ``FLOWER_BASIC_AUTH``; without
    them any inherited ``FLOWER_BASIC_AUTH`` is removed, so what runs is what
    this command decided. The broker comes from the Celery app's configuration.
    """
    argv = [sys.executable, "-m", "celery", "-A", "delivery", "flower"]
    argv += [f"--port={port}", f"--address={address}"]
    env = {k: v for k, v in environ.items() if k != _CREDENTIALS_VARIABLE}
    if credentials is not None:
        env[_CREDENTIALS_VARIABLE] = credentials
    return argv, env


@click.command("flower")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_FLOWER_PORT, show_default=True
)
@click.option("--address", default=LOCALHOST, show_default=True, help="Address to listen on.")
@click.option(
    "--basic-auth",
    "basic_auth",
    metavar="USER:PASSWORD",
    callback=_check_credentials,
    help="Flower's credentials (default: DELIVERY_FLOWER_BASIC_AUTH, which keeps "
    "the password off the command line).",
)
@click.option(
    "--localhost-only",
    is_flag=True,
    help="Listen on 127.0.0.1 only, and allow starting without credentials.",
)
def flower(port: int, address: str, basic_auth: str | None, localhost_only: bool) -> None:
    """Run Flower (celery -A delivery flower) behind basic auth.

    Refuses to start without credentials, unless --localhost-only. Flower sees
    tasks through worker events, which delivery/celeryconfig.py turns on.
    """
    configured = runtime.current().settings.flower_basic_auth
    credentials = basic_auth or (configured.get_secret_value() if configured else None)
    if localhost_only:
        if address != LOCALHOST:
            raise click.UsageError(f"--localhost-only listens on {LOCALHOST}; drop --address")
    elif credentials is None:
        raise click.UsageError(
            "refusing to start Flower without authentication: give --basic-auth USER:PASSWORD "
            "or set DELIVERY_FLOWER_BASIC_AUTH=user:password "
            f"(or --localhost-only to serve {LOCALHOST} without a password)"
        )
    argv, env = flower_invocation(
        port=port, address=address, credentials=credentials, environ=os.environ
    )
    if credentials is not None:
        user = credentials.partition(":")[0]
        click.echo(f"Flower at http://{address}:{port}/ (basic auth, user {user!r})", err=True)
        if not is_loopback(address):
            click.echo(
                "warning: basic auth over plain HTTP sends the password in the clear; "
                "put a TLS proxy in front of Flower",
                err=True,
            )
    else:
        click.echo(f"Flower at http://{address}:{port}/ (no authentication)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: signals from a supervisor reach Flower itself.
    os.execve(argv[0], argv, env)  # noqa: S606 (a fixed argv, no shell)
