"""Retention: how fast final messages are pruned, and how long one batch holds its transaction.

A fresh ledger (SQLite file, or a temporary PostgreSQL database) is filled with
:data:`MESSAGES` delivered messages of :data:`CHUNKS` chunks, one attempt each,
all ended 40 days ago, and :data:`OPEN_MESSAGES` open ones. Then
:func:`delivery.api.pruning.prune` deletes the delivered ones in batches of
:data:`delivery.api.pruning.BATCH_MESSAGES`; each batch is timed from before its
transaction begins to after its commit (``time.perf_counter``), which bounds how
long it can keep a send's transaction waiting. The set-up writes its rows in bulk
(the outbox's insert, then one update and one insert for the state a burst of
sends would leave); only the prune is timed.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from typing import Any

from sqlalchemy import insert, select, update

from bench.common import Backend, scratch_dir
from bench.markdown import stamp, table
from bench.workload import ACCOUNT_ID, TOKEN
from delivery.api import pruning
from delivery.devstack.stack import temporary_ledger
from delivery.ledger import accounts, outbox
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.ledger.retention import Pruned
from delivery.ledger.states import AttemptOutcome, ChunkStatus, MessageStatus
from delivery.ledger.types import utcnow

__all__ = ["TITLE", "render", "run"]

MESSAGES = 20_000
OPEN_MESSAGES = 1_000
CHUNKS = 3
INSERT_BATCH = 1_000


def _fill(url: str) -> None:
    """Delivered messages that ended 40 days ago, with chunks and attempts; some open ones."""
    engine = engine_for(url)
    now = utcnow()
    ended = now - dt.timedelta(days=40)
    with session_scope(engine) as db:
        accounts.store_account(
            db,
            ACCOUNT_ID,
            token=TOKEN,
            base_url="http://127.0.0.1:9",
            owns_inbound=None,
            ilink_user_id=None,
            now=now,
        )
    total = MESSAGES + OPEN_MESSAGES
    for start in range(0, total, INSERT_BATCH):
        batch = [
            outbox.NewMessage(
                ACCOUNT_ID,
                f"user{i % 50}@im.wechat",
                f"key-{i}",
                "bench",
                "0" * 64,
                30,
                [f"message {i} part {p}" for p in range(CHUNKS)],
            )
            for i in range(start, min(total, start + INSERT_BATCH))
        ]
        with session_scope(engine) as db:
            ids = outbox.insert_messages(db, batch, now=ended, deadline=now)
            final = [m for m, i in zip(ids, range(start, total), strict=False) if i < MESSAGES]
            db.execute(
                update(Message)
                .where(Message.id.in_(final))
                .values(status=MessageStatus.DELIVERED, delivered_at=ended)
            )
            db.execute(
                update(Chunk)
                .where(Chunk.message_id.in_(final))
                .values(status=ChunkStatus.SENT, sent_at=ended)
            )
            chunk_ids = db.scalars(select(Chunk.id).where(Chunk.message_id.in_(ids)))
            db.execute(
                insert(Attempt),
                [
                    {"chunk_id": c, "attempt_no": 1, "started_at": ended,
                     "outcome": AttemptOutcome.ACCEPTED}
                    for c in chunk_ids
                ],
            )  # fmt: skip


def run_backend(backend: Backend) -> dict[str, Any]:
    """Fill one fresh ledger, then prune it and time every batch."""
    with (
        scratch_dir(f"retention-{backend}") as workdir,
        temporary_ledger(backend, workdir) as url,
    ):
        _fill(url)
        engine = engine_for(url)
        batch_ms: list[float] = []
        last = time.perf_counter()

        def timed(batch: Pruned) -> None:
            nonlocal last
            now = time.perf_counter()
            if batch.messages:
                batch_ms.append((now - last) * 1000)
            last = now

        started = time.perf_counter()
        pruned = pruning.prune(
            engine,
            before=utcnow() - dt.timedelta(days=30),
            statuses=pruning.statuses(include_dead=False),
            on_batch=timed,
        )
        seconds = time.perf_counter() - started
        left = pruning.count(engine, before=utcnow(), statuses=pruning.statuses(include_dead=True))
        with session_scope(engine, readonly=True) as db:
            open_left = len(list(db.scalars(select(Message.id))))
    result = {
        "backend": backend,
        "messages": pruned.messages,
        "chunks": pruned.chunks,
        "attempts": pruned.attempts,
        "seconds": seconds,
        "messages_per_second": pruned.messages / seconds,
        "batches": len(batch_ms),
        "batch_ms_median": statistics.median(batch_ms),
        "batch_ms_max": max(batch_ms),
        "final_left": left.messages,
        "open_left": open_left,
    }
    print(
        f"  {backend:<10} {result['messages_per_second']:7.0f} messages/s; batch of "
        f"{pruning.BATCH_MESSAGES}: median {result['batch_ms_median']:.0f} ms, "
        f"max {result['batch_ms_max']:.0f} ms; open left {open_left}",
        flush=True,
    )
    return result


def run() -> dict[str, Any]:
    """Both backends."""
    print("retention: pruning delivered messages in batches", flush=True)
    backends: list[Backend] = ["sqlite", "postgresql"]
    return {
        "messages": MESSAGES,
        "open_messages": OPEN_MESSAGES,
        "chunks_per_message": CHUNKS,
        "batch_messages": pruning.BATCH_MESSAGES,
        "runs": [run_backend(backend) for backend in backends],
    }


TITLE = "7. Retention"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    rows = [
        [
            run["backend"],
            f"{run['messages']:,}",
            f"{run['chunks']:,} / {run['attempts']:,}",
            f"{run['messages_per_second']:,.0f}",
            str(run["batches"]),
            f"{run['batch_ms_median']:.0f} ms",
            f"{run['batch_ms_max']:.0f} ms",
            f"{run['open_left']:,} of {r['open_messages']:,}",
        ]
        for run in r["runs"]
    ]
    head = [
        "ledger",
        "messages pruned",
        "chunks / attempts",
        "messages/s",
        "batches",
        "batch, median",
        "batch, max",
        "open messages left",
    ]
    return f"""## {TITLE}

{stamp(r)}

A fresh ledger holds {r["messages"]:,} delivered messages of {r["chunks_per_message"]}
chunks with one attempt each, all ended 40 days ago, and {r["open_messages"]:,} open ones;
`delivery.api.pruning.prune` deletes what ended more than 30 days ago, {r["batch_messages"]}
messages per transaction (as beat and `delivery prune` do). A batch is timed from before
its transaction begins to after its commit: the longest a send's transaction could wait
behind it (on PostgreSQL a batch skips rows another transaction holds, so it never waits
itself).

{table(head, rows)}
"""
