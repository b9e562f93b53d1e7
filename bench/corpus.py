"""A mixed corpus for the chunker: prose, CJK, emoji and code fences, deterministic by seed.

Each document is made of blocks drawn at random: English paragraphs with an emoji
now and then (skin tones, flags, ZWJ families), Chinese paragraphs (no spaces,
full-width punctuation, some longer than a chunk), bullet lists, and
fenced code blocks (Python or JavaScript, some longer than a chunk, so they are
cut, closed and reopened). Document lengths spread from about 1,500 characters
to the 100,000 that ``enqueue`` accepts.

Example::

    docs = mixed_corpus(documents=40, seed=12)
    sum(map(len, docs))        # about 1.4 million characters
"""

from __future__ import annotations

import random

__all__ = ["DOCUMENT_SIZES", "mixed_corpus"]

# Lengths drawn for the documents, in characters: many short replies, some very long.
DOCUMENT_SIZES = (1_500, 3_000, 6_000, 12_000, 25_000, 50_000, 100_000)

_VOCABULARY = (
    "the pipeline sends every chunk once in order as fast as the platform allows "
    "rate limit session token briefing leaderboard research reply morning account "
    "worker ledger retry backoff cooldown delivered queued https://example.com/a/b?c=d"
)
_WORDS = _VOCABULARY.split()
_EMOJI = ("👍🏽", "🎉", "🇫🇷", "👨\u200d👩\u200d👧\u200d👦", "❤\ufe0f", "😀", "🏳\ufe0f\u200d🌈", "é")
_CJK_PUNCTUATION = "，。、；：？！"
_CODE = (
    "def handler(event, context):",
    "    result = compute(event['id'], retries=3)",
    "    if not result:",
    "        return None  # nothing to send",
    "    for chunk in split_text(result.text):",
    "        publish(chunk)",
    "const answer = await fetch(url, { method: 'POST' });",
    "    console.log(`sent ${answer.status}`);",
    "",
)


def _prose(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(20, 180)):
        words.append(rng.choice(_WORDS))
        if rng.random() < 0.03:
            words.append(rng.choice(_EMOJI))
    sentence_ends = (".", ",", "", "", "")
    return " ".join(word + rng.choice(sentence_ends) for word in words).capitalize() + "."


def _chinese(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(5, rng.choice((60, 60, 300)))):
        start = rng.randint(0x4E00, 0x9F00)
        parts.append("".join(chr(start + rng.randint(0, 40)) for _ in range(rng.randint(4, 14))))
        parts.append(rng.choice(_CJK_PUNCTUATION))
        if rng.random() < 0.05:
            parts.append(rng.choice(_EMOJI))
    return "".join(parts)


def _bullets(rng: random.Random) -> str:
    return "\n".join(f"- {_prose(rng)[: rng.randint(20, 120)]}" for _ in range(rng.randint(2, 8)))


def _code(rng: random.Random) -> str:
    fence = rng.choice(("```python", "```js", "```", "~~~"))
    lines = [rng.choice(_CODE) for _ in range(rng.randint(3, rng.choice((12, 40, 120))))]
    return "\n".join([fence, *lines, fence[:3]])


_BLOCKS = ((_prose, 5), (_chinese, 3), (_bullets, 1), (_code, 2))


def _document(rng: random.Random, size: int) -> str:
    makers = [maker for maker, weight in _BLOCKS for _ in range(weight)]
    blocks: list[str] = []
    length = 0
    while length < size:
        block = rng.choice(makers)(rng)
        blocks.append(block)
        length += len(block) + 2
    return "\n\n".join(blocks)[:size]


def mixed_corpus(*, documents: int, seed: int) -> list[str]:
    """``documents`` texts of the sizes in :data:`DOCUMENT_SIZES`, in turn."""
    rng = random.Random(seed)
    return [_document(rng, DOCUMENT_SIZES[i % len(DOCUMENT_SIZES)]) for i in range(documents)]
