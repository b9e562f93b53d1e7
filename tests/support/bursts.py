"""Bursts of messages like a morning of cron briefings, and checks of what arrived."""

from __future__ import annotations

import random
from collections import Counter

import delivery
from delivery.simulator import Snapshot
from tests.support.stack import Stack, expected_texts

PARAGRAPH_CHARS = 1500  # two never fit one 2000-character chunk: one chunk per paragraph


def paragraph(tag: str) -> str:
    words = [f"{tag}w{i}" for i in range(PARAGRAPH_CHARS // 8)]
    return " ".join(words)[:PARAGRAPH_CHARS]


def burst(
    account_id: str, *, messages: int, recipients: int, seed: int, max_chunks: int = 6
) -> list[delivery.OutboundMessage]:
    """``messages`` texts of 1 to ``max_chunks`` chunks over ``recipients`` chats."""
    rng = random.Random(seed)
    batch = []
    for m in range(messages):
        chunks = rng.randint(1, max_chunks)
        text = "\n\n".join(paragraph(f"m{m}p{p}") for p in range(chunks))
        batch.append(delivery.OutboundMessage(account_id, f"user{m % recipients}@im.wechat", text))
    return batch


def assert_delivered_exactly_once_in_order(stack: Stack, ids: list[str]) -> Snapshot:
    """Every chunk arrived once, and each chat got its chunks in enqueue order."""
    snapshot = stack.snapshot()
    want = expected_texts(ids, stack.database_url)
    for recipient, chunks in want.items():
        got = [(m.client_id, m.text) for m in snapshot.messages.get(recipient, ())]
        assert got == chunks, f"{recipient}: arrived out of order, twice or not at all"
    arrived = Counter(m.client_id for ms in snapshot.messages.values() for m in ms)
    assert max(arrived.values()) == 1
    return snapshot


def max_in_window(times: tuple[float, ...] | list[float], window: float) -> int:
    """The most events in any interval of ``window`` seconds."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most
