"""``delivery worker`` and ``delivery beat``: the Celery processes, started the way
the guarantees need them.

``delivery worker`` supervises two Celery workers on this host: ``send@<host>``
consumes the send queue with concurrency 1 and prefetch 1 (the account gate in
Redis spreads sends across hosts; each send worker takes one at a time), and
``default@<host>`` consumes everything else (reconciler, session checks,
briefings). Both send events, so Flower sees them. ``--role inbound`` (and
``all``) also runs the inbound relay (``delivery relay``). Ctrl-C or SIGTERM stops
them all with a warm shutdown. One that dies (killed, crashed, or ended by its
liveness watchdog) is restarted with backoff while the others run on; all die
with the command should it be killed outright (:mod:`delivery.cli.supervisor`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from delivery.cli.supervisor import Supervisor
from delivery.devstack import celery_argv
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["beat", "worker"]


@click.command("worker")
@click.option(
    "--role",
    type=click.Choice(["all", "send", "default", "inbound"]),
    default="all",
    show_default=True,
    help="Run the send worker, the default-queue worker, the inbound relay, or all three.",
)
@click.option("--concurrency", default=2, show_default=True, help="Of the default-queue worker.")
@click.option(
    "--send-concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Sends this host makes at once. The account gate keeps one per account in flight "
    "whatever this says; more lets other accounts go while one waits on a slow platform.",
)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(role: str, concurrency: int, send_concurrency: int, loglevel: str) -> None:
    """Celery workers: the send queue at concurrency 1, plus the other queues;
    with ``--role inbound`` or ``all``, the inbound relay too.

    A process that dies is restarted (after 1 s, doubling up to 60 s while it keeps
    dying); SIGTERM stops all with a warm shutdown.
    """
    roles = {"send": (SEND_QUEUE, send_concurrency), "default": (DEFAULT_QUEUE, concurrency)}
    commands = {
        name: celery_argv("worker", queues=queue, name=name, concurrency=n, loglevel=loglevel)
        for name, (queue, n) in roles.items()
        if role in ("all", name)
    }
    if role in ("all", "inbound"):
        commands["relay"] = [sys.executable, "-m", "delivery", "relay"]
    sys.exit(Supervisor(commands, say=lambda line: click.echo(line, err=True)).run())


@click.command("beat")
@click.option(
    "--schedule",
    default="celerybeat-schedule",
    show_default=True,
    help="Beat's state file (last run of each periodic task).",
)
@click.option("--loglevel", default="INFO", show_default=True)
def beat(schedule: str, loglevel: str) -> None:
    """Celery beat with the leader lock: run one; a second one only stands by."""
    argv = celery_argv("beat", beat_schedule=Path(schedule), loglevel=loglevel)
    os.execv(argv[0], argv)  # noqa: S606 - the fixed argv of celery beat, no shell
