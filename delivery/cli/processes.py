"""``delivery worker`` and ``delivery beat``: the Celery processes, started the way
the guarantees need them.

``delivery worker`` supervises two Celery workers on this host: ``send@<host>``
consumes the send queue with concurrency 1 and prefetch 1 (the account gate in
Redis spreads sends across hosts; each send worker takes one at a time), and
``default@<host>`` consumes everything else (reconciler, session checks,
briefings). Both send events, so Flower sees them. ``--role inbound`` (and
``all``) also runs the inbound relay (``delivery relay``). Ctrl-C or SIGTERM stops
both with a warm shutdown; if one dies, the other is stopped too and the
command exits with its status, so a process supervisor restarts the pair.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from delivery.devstack import celery_argv
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["beat", "worker"]

_POLL_SECONDS = 0.5


def _supervise(commands: list[list[str]]) -> int:
    """Run the commands; stop all when one ends. The exit status is 0 after a
    requested stop, else the status of the first command that ended by itself."""
    children = [subprocess.Popen(argv) for argv in commands]
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.poll() is None for child in children):
        time.sleep(_POLL_SECONDS)
    index, first = next((i, c) for i, c in enumerate(children) if c.poll() is not None)
    if not stopping:
        name = " ".join(commands[index][3:])
        click.echo(f"worker: {name} exited ({first.returncode}); stopping the rest", err=True)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        child.wait()
    if stopping:
        return 0  # a requested stop: a child ended by the forwarded signal is expected
    return first.returncode or 1


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
    """Celery workers: the send queue at concurrency 1, plus the other queues."""
    commands = []
    if role in ("all", "send"):
        commands.append(
            celery_argv(
                "worker",
                queues=SEND_QUEUE,
                name="send",
                concurrency=send_concurrency,
                loglevel=loglevel,
            )
        )
    if role in ("all", "default"):
        commands.append(
            celery_argv(
                "worker",
                queues=DEFAULT_QUEUE,
                name="default",
                concurrency=concurrency,
                loglevel=loglevel,
            )
        )
    if role in ("all", "inbound"):
        commands.append([sys.executable, "-m", "delivery", "relay"])
    sys.exit(_supervise(commands))


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
