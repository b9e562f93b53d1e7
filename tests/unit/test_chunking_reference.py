"""The chunker plans exactly what the chunker before issue 12 planned, for every input.

``tests/support/chunking_reference.py`` is that chunker, unchanged: it computed every
offset and grapheme boundary over the whole text. The one in ``delivery.chunking``
looks only near the places it may cut; these tests hold it to the same output.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.chunking import MIN_MAX_CHARS, plan_chunks, split_text
from tests.support import chunking_reference as reference

Plan = tuple[int, int, str, str]


def planned(text: str, max_chars: int) -> list[Plan]:
    return [(p.start, p.end, p.prefix, p.suffix) for p in plan_chunks(text, max_chars=max_chars)]


def planned_before(text: str, max_chars: int) -> list[Plan]:
    plans = reference.plan_chunks(text, max_chars=max_chars)
    return [(p.start, p.end, p.prefix, p.suffix) for p in plans]


# Pieces that meet every rule of the chunker and of grapheme segmentation: fences and
# fence-like lines, each kind of line break and space, combining marks, ZWJ sequences,
# regional indicators, a prepend character glued to a space, Hangul jamo, Indic
# conjuncts, CJK, and the halves of a surrogate pair standing alone.
PIECES = [
    "word", "a", "longerword", "  ", " ", "\t", "\n", "\n\n", "\r\n", "\r", "\n \n",
    "```", "```py\n", "\n```\n", "\n```", "~~~\n", "\n~~~", "````", "   ```", "    ```",
    "`inline`", "e\u0301", "\u0301", "\u0323", "\u200d", "\ufe0f", "👍🏽", "😀", "🇫🇷",
    "\U0001f1eb", "👨\u200d👩\u200d👧", "❤\ufe0f", "\u00a9\u200d", "\u0600", "\u0600 ",
    "\u1100", "\u1161", "\u11a8", "\uac00", "\u0915\u094d\u0924", "中文字符", "，",
    "\u3000", "\u00a0", "\u2028", "\x85", "\x1c", "\x0b", "\ud83d", "\ude00", "x" * 40,
]  # fmt: skip

pieces_text = st.lists(st.sampled_from(PIECES), max_size=120).map("".join)

_words = st.text(string.ascii_letters + ".,!?", min_size=1, max_size=12)
_lines = st.lists(st.one_of(_words, st.sampled_from(PIECES)), min_size=1, max_size=12).map(" ".join)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Paragraphs, lists and fenced blocks (closed, unclosed, indented, too long)."""
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["paragraph", "paragraph", "block"]))
        lines = draw(st.lists(_lines, min_size=1, max_size=10))
        if kind == "block":
            fence = draw(st.sampled_from(["```", "~~~", "````", " ```"]))
            info = draw(st.sampled_from(["", "python", " text", "x" * 30]))
            closing = draw(st.sampled_from([fence.strip(), fence.strip() + "  ", ""]))
            lines = [fence + info, *lines, closing]
        parts.append("\n".join(lines))
    separators = st.sampled_from(["\n", "\n\n", "\n \n", "\n\n\n"])
    return "".join(part + draw(separators) for part in parts)


@given(text=documents(), max_chars=st.integers(MIN_MAX_CHARS, 300))
def test_documents_are_planned_as_before(text: str, max_chars: int) -> None:
    assert planned(text, max_chars) == planned_before(text, max_chars)


@given(text=pieces_text, max_chars=st.integers(MIN_MAX_CHARS, 80))
def test_tricky_pieces_are_planned_as_before(text: str, max_chars: int) -> None:
    assert planned(text, max_chars) == planned_before(text, max_chars)


@given(text=st.text(), max_chars=st.integers(MIN_MAX_CHARS, 64))
def test_any_text_is_planned_as_before(text: str, max_chars: int) -> None:
    assert planned(text, max_chars) == planned_before(text, max_chars)


MIXED = "\n\n".join(
    [
        "Good morning 👋🏽! " + "The briefing, in short: " * 60,
        "中文段落，没有空格。" * 150,
        "```python\n" + "def f(x):\n    return x * 2  # 🎉\n" * 80 + "```",
        "- item one\n- item two 🇫🇷\n" * 40,
        "~~~\nunclosed " * 30,
    ]
)
LONG_CLUSTERS = ["e" + "\u0301" * 5000, "\u0600 " * 3000, "😀👍🏽" * 2000, "a" * 9000]


@pytest.mark.parametrize("max_chars", [MIN_MAX_CHARS, 100, 2000])
@pytest.mark.parametrize(
    "text", [MIXED, *LONG_CLUSTERS], ids=["mixed", "marks", "prepend", "emoji", "word"]
)
def test_given_long_texts_when_split_then_the_chunks_are_as_before(
    text: str, max_chars: int
) -> None:
    assert split_text(text, max_chars=max_chars) == reference.split_text(text, max_chars=max_chars)
