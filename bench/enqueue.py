"""Enqueue: messages per second into the ledger and the broker, one at a time and in batches.

A fresh ledger (SQLite file, or a temporary PostgreSQL database) and a private
redis-server as broker; no worker runs, so the broker queue only grows. The
messages are morning briefings (:mod:`bench.workload`: 1 to 6 chunks of 1,500
characters, 50 chats), each with an idempotency key as a cron job would give it.
``enqueue`` is called once per message; ``enqueue_many`` with batches of 100 and
of 500. The time includes validation, chunking, the transaction and the publish
of each new conversation head, measured with ``time.perf_counter`` in this process;
the chunker (``split_text``) is also timed alone on the same texts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import delivery
from bench.common import Backend, bench_stack
from bench.markdown import stamp, table
from bench.workload import ACCOUNT_ID, CHUNK_MAX_CHARS, TOKEN, briefings
from delivery.chunking import split_text

__all__ = ["TITLE", "EnqueueRun", "render", "run"]

CHATS = 50
SINGLE_MESSAGES = 300
BATCHES = ((100, 10), (500, 4))  # (batch size, batches)


@dataclass(frozen=True)
class EnqueueRun:
    """One way of enqueueing on one backend."""

    backend: str
    mode: str
    messages: int
    chunks: int
    seconds: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds


def _messages(count: int, seed: int, tag: str) -> tuple[list[delivery.OutboundMessage], int]:
    """``count`` briefings with idempotency keys, and how many chunks they make."""
    batch = briefings(messages=count, chats=CHATS, seed=seed)
    messages = [
        delivery.OutboundMessage(
            ACCOUNT_ID, b.to_user_id, b.text, idempotency_key=f"{tag}-{b.index}"
        )
        for b in batch
    ]
    return messages, sum(len(b.chunks) for b in batch)


def _timed(
    backend: str,
    mode: str,
    batches: list[list[delivery.OutboundMessage]],
    chunks: int,
    call: Callable[[list[delivery.OutboundMessage]], object],
) -> EnqueueRun:
    started = time.perf_counter()
    for batch in batches:
        call(batch)
    seconds = time.perf_counter() - started
    return EnqueueRun(backend, mode, sum(len(b) for b in batches), chunks, seconds)


def run_backend(backend: Backend) -> list[EnqueueRun]:
    """Every mode on one backend, each on its own fresh ledger and broker."""
    results = []
    modes: list[tuple[str, int, int]] = [("enqueue", 1, SINGLE_MESSAGES)]
    modes += [(f"enqueue_many({size})", size, count) for size, count in BATCHES]
    for mode, size, count in modes:
        with bench_stack(f"enqueue-{backend}", ledger=backend) as stack:
            stack.add_account(ACCOUNT_ID, token=TOKEN)  # nothing is sent
            delivery.enqueue_many(_messages(5, seed=99, tag="warm")[0])  # connections, imports
            messages, chunks = _messages(size * count, seed=3, tag=mode)
            batches = [messages[i : i + size] for i in range(0, len(messages), size)]
            if size == 1:

                def single(batch: list[delivery.OutboundMessage]) -> None:
                    m = batch[0]
                    delivery.enqueue(
                        m.account_id, m.to_user_id, m.text, idempotency_key=m.idempotency_key
                    )

                result = _timed(backend, mode, batches, chunks, single)
            else:
                result = _timed(backend, mode, batches, chunks, delivery.enqueue_many)
        print(
            f"  {backend:<10} {mode:<18} {result.messages_per_second:7.0f} messages/s "
            f"({result.chunks_per_second:.0f} chunks/s; "
            f"{result.messages} in {result.seconds:.2f}s)",
            flush=True,
        )
        results.append(result)
    return results


def chunker_alone() -> EnqueueRun:
    """``split_text`` alone over the largest batch's texts: the chunker's share of enqueue."""
    size, count = BATCHES[-1]
    messages, chunks = _messages(size * count, seed=3, tag="chunker")
    started = time.perf_counter()
    for message in messages:
        split_text(message.text, max_chars=CHUNK_MAX_CHARS)
    result = EnqueueRun("-", "chunker alone", len(messages), chunks, time.perf_counter() - started)
    print(f"  chunker alone: {result.messages_per_second:.0f} messages/s", flush=True)
    return result


def run() -> dict[str, Any]:
    """Every mode on SQLite and on PostgreSQL, and the chunker alone."""
    print("enqueue: messages per second into the ledger and a private broker", flush=True)
    backends: list[Backend] = ["sqlite", "postgresql"]
    runs = [r for backend in backends for r in run_backend(backend)]
    runs.append(chunker_alone())
    return {
        "chats": CHATS,
        "runs": [
            asdict(r)
            | {
                "messages_per_second": r.messages_per_second,
                "chunks_per_second": r.chunks_per_second,
            }
            for r in runs
        ],
    }


TITLE = "4. Enqueue"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    rows = [
        [
            run["backend"],
            f"`{run['mode']}`",
            f"{run['messages_per_second']:.0f}",
            f"{run['chunks_per_second']:.0f}",
            str(run["messages"]),
            f"{run['seconds']:.2f}",
        ]
        for run in r["runs"]
    ]
    return f"""## {TITLE}

{stamp(r)}

Messages per second into a fresh ledger, publishing to a private redis-server (no worker
runs). Each message is a briefing of 1–6 chunks of 1,500 characters (3.5 on average)
for one of {r["chats"]} chats, with an idempotency key; `enqueue` is called once per
message, `enqueue_many` with batches of 100 or 500. The time covers validation,
chunking, the transaction and publishing new conversation heads. *chunker alone* is
`split_text` on the same texts, with no ledger or broker.

{table(["ledger", "call", "messages/s", "chunks/s", "messages", "seconds"], rows)}
"""
