"""The demo's closing report: what the ledger says, checked against what arrived.

``lost`` counts messages that are neither delivered nor dead with a reason, and
chunks of delivered messages the platform never received. ``duplicates``
counts texts a chat received more than once. Order is checked chat by chat:
the chunks that arrived, in arrival order, must be the ledger's chunks in
enqueue order.

Example::

    report = build_report(engine=engine, platform=simulator.model.snapshot(), timing=timing)
    for line in render(report):
        print(line)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Attempt, Chunk, Message
from delivery.ledger.states import AttemptOutcome, ChunkStatus, MessageStatus
from delivery.simulator import Snapshot

__all__ = ["Report", "Timing", "build_report", "render"]


@dataclass(frozen=True)
class Timing:
    """Clock facts the demo measured, in demo seconds."""

    elapsed_seconds: float
    allowed_sends_per_second: float
    compression: int
    lockout_seconds: float
    session_expiries: int
    heal_seconds: list[float]
    reader_waited: int = 0  # messages that waited for the reader silent for a day
    reader_delivered_seconds: float | None = None  # they wrote -> those messages delivered
    dropping_reader: str | None = None  # the reader whose sends the platform drops silently


@dataclass(frozen=True)
class Report:
    messages: int
    delivered: int
    dead: int
    unconfirmed: int  # ended with parts accepted without a message_id
    dead_reasons: list[str]
    chunks: int
    chunks_arrived: int
    lost: int
    duplicates: int
    resends_absorbed: int
    chats: int
    chats_in_order: int
    rate_limited_answers: int
    timing: Timing
    pace_note: str | None = None  # what the account learned of its limit, or why nothing
    dropped_sends: int = 0  # sends the platform accepted and dropped silently
    dropped_reported_delivered: int = 0  # messages to that reader reported delivered

    @property
    def theoretical_seconds(self) -> float:
        return self.chunks / self.timing.allowed_sends_per_second

    @property
    def clean(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.chats_in_order == self.chats
            and self.dropped_reported_delivered == 0
        )


def build_report(
    *, engine: Engine, platform: Snapshot, timing: Timing, account_id: str | None = None
) -> Report:
    """Compare the ledger with what the platform received."""
    with session_scope(engine, readonly=True) as session:
        pace_note = (
            session.scalar(select(Account.pace_note).where(Account.id == account_id))
            if account_id is not None
            else None
        )
        rows = session.execute(
            select(Message.id, Message.status, Message.to_user_id, Chunk.client_id, Chunk.status)
            .join(Chunk, Chunk.message_id == Message.id)
            .order_by(Message.id, Chunk.seq)
        ).all()
        # accepted without a message_id: the platform may have dropped them, as it did
        dropped = set(
            session.scalars(
                select(Chunk.client_id).where(Chunk.last_outcome == AttemptOutcome.UNCONFIRMED)
            )
        )
        reasons = list(
            session.scalars(select(Message.dead_reason).where(Message.status == MessageStatus.DEAD))
        )
        limited = session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(Attempt.outcome == AttemptOutcome.RATE_LIMITED)
        )
    arrived = {m.client_id for ms in platform.messages.values() for m in ms}
    statuses = {message_id: status for message_id, status, *_ in rows}
    expected: dict[str, list[str]] = {}
    missing = 0
    for _, message_status, to_user_id, client_id, chunk_status in rows:
        if chunk_status == ChunkStatus.SENT and client_id not in dropped:
            expected.setdefault(to_user_id, []).append(client_id)
        if message_status == MessageStatus.DELIVERED and client_id not in arrived:
            missing += 1
    ended = (MessageStatus.DELIVERED, MessageStatus.DEAD, MessageStatus.UNCONFIRMED)
    unfinished = sum(1 for s in statuses.values() if s not in ended)
    dropper = timing.dropping_reader
    reported = {
        message_id
        for message_id, status, to_user_id, *_ in rows
        if to_user_id == dropper and status == MessageStatus.DELIVERED
    }
    texts = Counter((to, m.text) for to, ms in platform.messages.items() for m in ms)
    in_order = sum(
        1
        for to, client_ids in expected.items()
        if [m.client_id for m in platform.messages.get(to, ())] == client_ids
    )
    return Report(
        messages=len(statuses),
        delivered=sum(1 for s in statuses.values() if s == MessageStatus.DELIVERED),
        dead=sum(1 for s in statuses.values() if s == MessageStatus.DEAD),
        unconfirmed=sum(1 for s in statuses.values() if s == MessageStatus.UNCONFIRMED),
        dead_reasons=[r for r in reasons if r],
        chunks=len(rows),
        chunks_arrived=len(arrived),
        lost=unfinished + missing,
        duplicates=sum(n - 1 for n in texts.values() if n > 1),
        resends_absorbed=platform.counters.duplicates,
        chats=len(expected),
        chats_in_order=in_order,
        rate_limited_answers=int(limited or 0),
        timing=timing,
        pace_note=pace_note,
        dropped_sends=sum(platform.counters.silently_dropped.values()),
        dropped_reported_delivered=len(reported),
    )


def render(report: Report) -> list[str]:
    """The report as lines of text."""
    t = report.timing
    real = t.elapsed_seconds * t.compression
    heals = ", ".join(f"{s:.1f} s" for s in t.heal_seconds) or "none needed"
    lines = [
        f"messages     {report.delivered} delivered, {report.unconfirmed} unconfirmed,"
        f" {report.dead} dead, of {report.messages}",
        f"chunks       {report.chunks_arrived} accepted by the platform, of {report.chunks}",
        f"lost         {report.lost}",
        f"duplicates   {report.duplicates}"
        f" ({report.resends_absorbed} resend(s) recognised by client_id and not delivered twice)",
        f"order        {report.chats_in_order} of {report.chats} chats received their chunks"
        " in enqueue order",
        f"rate limits  {report.rate_limited_answers} 'rate limited' answer(s); the burst began"
        f" inside a {t.lockout_seconds:.0f} s lockout",
        f"pace         {report.pace_note or 'no refusal taught anything'}",
        f"sessions     {t.session_expiries} expiry; healed in {heals} (token stored -> valid)",
        f"readers      {t.reader_waited} message(s) waited for a reader silent for a day,"
        " without slowing the others; "
        + (
            f"delivered {t.reader_delivered_seconds:.1f} s after the reader wrote back"
            if t.reader_delivered_seconds is not None
            else "the reader did not write back"
        ),
        f"silent drops {report.dropped_sends} send(s) to {t.dropping_reader} accepted without a"
        f" message_id; {report.unconfirmed} message(s) unconfirmed,"
        f" {report.dropped_reported_delivered} reported delivered",
        f"elapsed      {t.elapsed_seconds:.1f} s; theoretical minimum"
        f" {report.theoretical_seconds:.1f} s ({report.chunks} chunks at the platform's"
        f" {t.allowed_sends_per_second:g}/s), plus the lockout and the expired session",
        f"clock        compressed {t.compression}x: {t.elapsed_seconds:.0f} s here is"
        f" {real / 60:.1f} min on the real clock",
    ]
    lines += [f"dead         {reason}" for reason in report.dead_reasons]
    return lines
