"""The messages the benchmarks send: a morning of cron briefings, deterministic by seed.

Each message has 1 to ``max_chunks`` paragraphs of 1,500 characters; two never fit
one 2,000-character chunk, so the project's chunker makes one chunk per paragraph
and every chunk text is unique (it is tagged with its message and paragraph). The
same texts are sent by every policy, so what arrived can be attributed to a message
and a position by its text alone. (The same shape as ``tests/support/bursts.py``.)

Example::

    messages = briefings(messages=40, chats=8, seed=40)
    sum(len(m.chunks) for m in messages)      # 141
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from delivery.chunking import split_text

__all__ = ["ACCOUNT_ID", "TOKEN", "Briefing", "briefings", "chunk_index"]

ACCOUNT_ID = "bench-bot"
TOKEN = "bench-token-0000-secret"  # noqa: S105 - the simulator's made-up token
PARAGRAPH_CHARS = 1500
CHUNK_MAX_CHARS = 2000  # the platform's limit, the pipeline's default


@dataclass(frozen=True)
class Briefing:
    """One message: its position in the burst, its chat, its text and its chunks."""

    index: int
    to_user_id: str
    text: str
    chunks: tuple[str, ...]


def _paragraph(tag: str) -> str:
    words = [f"{tag}w{i}" for i in range(PARAGRAPH_CHARS // 8)]
    return " ".join(words)[:PARAGRAPH_CHARS]


def briefings(*, messages: int, chats: int, seed: int, max_chunks: int = 6) -> list[Briefing]:
    """``messages`` texts of 1 to ``max_chunks`` chunks, round-robin over ``chats`` chats."""
    rng = random.Random(seed)
    result = []
    for m in range(messages):
        paragraphs = rng.randint(1, max_chunks)
        text = "\n\n".join(_paragraph(f"m{m}p{p}") for p in range(paragraphs))
        chunks = tuple(split_text(text, max_chars=CHUNK_MAX_CHARS))
        result.append(Briefing(m, f"user{m % chats}@im.wechat", text, chunks))
    return result


def chunk_index(batch: list[Briefing]) -> dict[str, tuple[int, int]]:
    """Chunk text -> (message index, position in the message, from 0)."""
    return {text: (b.index, seq) for b in batch for seq, text in enumerate(b.chunks)}
