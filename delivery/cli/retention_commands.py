"""``delivery prune``: delete final messages and handed-over inbound messages past
retention, with a progress bar."""

from __future__ import annotations

import click
from rich.progress import Progress

from delivery import runtime
from delivery.api import pruning
from delivery.cli.operations_commands import parse_since
from delivery.ledger.states import MessageStatus
from delivery.ledger.types import utcnow

__all__ = ["prune"]


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    help="Ended (inbound: received) before: 30d, 12h, or an ISO time.  "
    "[default: DELIVERY_RETENTION_DAYS]",
)
@click.option("--include-dead", is_flag=True, help="Dead letters too (otherwise kept for replay).")
@click.option("--dry-run", is_flag=True, help="Say how many would go; delete nothing.")
@click.option(
    "--batch-size",
    default=pruning.BATCH_MESSAGES,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Messages (or inbound messages) per transaction.",
)
def prune(older_than: str | None, include_dead: bool, dry_run: bool, batch_size: int) -> None:
    """Delete delivered and superseded messages that ended before a cutoff, with their
    chunks and attempts; dead ones too with --include-dead. Open messages are never
    deleted. Inbound messages received before the cutoff go too, with their hand-overs
    and attempts, unless a hand-over is still pending. Each batch is one short
    transaction, so sending goes on meanwhile.
    """
    if older_than is None:
        before = pruning.cutoff(
            now=utcnow(), older_than_days=runtime.current().settings.retention_days
        )
    else:
        before = parse_since(older_than)
        if before > utcnow():
            raise click.BadParameter("must lie in the past", param_hint="--older-than")
    engine = runtime.current().engine
    chosen = pruning.statuses(include_dead=include_dead)
    when = f"that ended before {before:%Y-%m-%d %H:%M:%S} UTC"
    counts = {
        status: pruning.count(engine, before=before, statuses=frozenset({status})).messages
        for status in (MessageStatus.DELIVERED, MessageStatus.SUPERSEDED, MessageStatus.DEAD)
    }
    kept_dead = "" if include_dead else f"; {counts[MessageStatus.DEAD]} dead kept"
    inbound = pruning.count_inbound(engine, before=before)
    received = f"received before {before:%Y-%m-%d %H:%M:%S} UTC"
    if dry_run:
        would = pruning.count(engine, before=before, statuses=chosen)
        breakdown = ", ".join(f"{counts[s]} {s}" for s in counts if s in chosen)
        click.echo(
            f"would delete {would.messages} message(s) ({breakdown}) {when}, with "
            f"{would.chunks} chunk(s) and {would.attempts} attempt(s){kept_dead}; "
            "nothing deleted (--dry-run)"
        )
        click.echo(
            f"would delete {inbound.inbound_messages} inbound message(s) {received} "
            f"(none awaiting a hand-over), with {inbound.inbound_handovers} hand-over(s) and "
            f"{inbound.inbound_attempts} hand-over attempt(s); nothing deleted (--dry-run)"
        )
        return
    total = sum(counts[s] for s in chosen) + inbound.inbound_messages
    with Progress(transient=False, disable=not total) as progress:
        task = progress.add_task("pruning", total=total)
        pruned = pruning.prune(
            engine,
            before=before,
            statuses=chosen,
            batch_messages=batch_size,
            on_batch=lambda batch: progress.advance(task, batch.messages + batch.inbound_messages),
        )
    click.echo(
        f"deleted {pruned.messages} message(s) {when}, with {pruned.chunks} chunk(s) "
        f"and {pruned.attempts} attempt(s){kept_dead}"
    )
    click.echo(
        f"deleted {pruned.inbound_messages} inbound message(s) {received}, with "
        f"{pruned.inbound_handovers} hand-over(s) and {pruned.inbound_attempts} "
        "hand-over attempt(s)"
    )
