"""The chunker: long texts become chunks the platform accepts, cut where a reader expects."""

from __future__ import annotations

import re
import string

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from delivery import errors
from delivery.chunking import (
    DEFAULT_MAX_CHARS,
    MIN_MAX_CHARS,
    ChunkPlan,
    plan_chunks,
    split_text,
    text_length,
)

THUMB = "👍🏽"  # thumbs up + skin-tone modifier
FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # ZWJ sequence, 11 UTF-16 units
FLAG = "🇫🇷"  # two regional indicators
RAINBOW_FLAG = "🏳\ufe0f\u200d🌈"
E_MARKS = "e\u0301\u0323"  # e + combining acute + combining dot below
CLUSTERS = [THUMB, FAMILY, FLAG, RAINBOW_FLAG, E_MARKS, "👩\u200d💻", "❤\ufe0f", "😀", "n\u0303"]


def words(count: int, word: str = "word") -> str:
    return " ".join(f"{word}{i}" for i in range(count))


def unclosed_fence(text: str) -> str | None:
    """The fence still open at the end of ``text`` under the CommonMark rules, or None."""
    open_fence: str | None = None
    for line in text.split("\n"):
        match = re.fullmatch(r" {0,3}(`{3,}|~{3,})(.*)", line.rstrip())
        if match is None:
            continue
        fence, rest = match.groups()
        if open_fence is None:
            if not (fence[0] == "`" and "`" in rest):
                open_fence = fence
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence) and not rest:
            open_fence = None
    return open_fence


def grapheme_boundaries(text: str) -> set[int]:
    bounds, pos = {0}, 0
    for cluster in regex.findall(r"\X", text):
        pos += len(cluster)
        bounds.add(pos)
    return bounds


# --- examples -----------------------------------------------------------------------------


def test_given_short_text_when_split_then_it_is_one_unchanged_chunk() -> None:
    text = "Hello 👋, this fits in one message."
    assert split_text(text) == [text]
    assert plan_chunks(text) == [ChunkPlan(start=0, end=len(text), prefix="", suffix="")]


def test_given_blank_text_when_split_then_there_are_no_chunks() -> None:
    assert split_text("") == []
    assert split_text(" \n\t\n  ") == []


def test_given_two_paragraphs_when_too_long_then_cut_between_them() -> None:
    first, second = words(25, "alpha"), words(25, "beta")
    chunks = split_text(f"{first}\n\n\n{second}", max_chars=200)
    assert chunks == [first, second]


def test_given_lines_when_too_long_then_cut_at_a_line_break_keeping_indentation() -> None:
    text = "def f():\n" + "    return compute(a, b)\n" * 10
    chunks = split_text(text, max_chars=80)
    assert len(chunks) > 1
    assert all(chunk.startswith("    return") for chunk in chunks[1:])
    assert "\n".join(chunks) == text.rstrip()


def test_given_code_block_that_fits_when_split_then_it_stays_whole() -> None:
    # The break before the block leaves the first chunk under half full, and the
    # block's own line breaks would fill it better; the block still stays whole.
    block = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(10)) + "\n```"
    text = f"Short intro.\n\n{block}\n\nAnd a short outro."
    chunks = split_text(text, max_chars=len(block) + 5)
    assert block in chunks


def test_given_code_block_too_long_when_split_then_closed_and_reopened_with_info() -> None:
    lines = [f"print('line {i}')" for i in range(30)]
    text = "```python\n" + "\n".join(lines) + "\n```"
    chunks = split_text(text, max_chars=120)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.startswith("```python\n")
        assert chunk.endswith("\n```")
        assert text_length(chunk) <= 120
    bodies = [chunk.removeprefix("```python\n").removesuffix("\n```") for chunk in chunks]
    assert "\n".join(bodies).split("\n") == lines


def test_given_long_info_string_when_block_is_cut_then_reopened_with_the_bare_fence() -> None:
    text = "~~~" + "x" * 30 + "\n" + "\n".join(f"line {i}" for i in range(20)) + "\n~~~"
    chunks = split_text(text, max_chars=48)
    assert chunks[0].startswith("~~~" + "x" * 30 + "\n")
    assert all(chunk.startswith("~~~\nline") for chunk in chunks[1:])
    assert all(chunk.endswith("\n~~~") for chunk in chunks)


def test_given_unclosed_fence_when_split_then_only_the_last_chunk_is_left_open() -> None:
    text = "Intro.\n\n```\n" + "\n".join(f"line {i}" for i in range(20))
    chunks = split_text(text, max_chars=48)
    assert len(chunks) > 2
    assert all(unclosed_fence(chunk) is None for chunk in chunks[:-1])
    assert unclosed_fence(chunks[-1]) == "```"
    assert chunks[-1].endswith("line 19")


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_given_emoji_and_marks_when_cut_then_no_cluster_is_broken(cluster: str) -> None:
    text = ("ab" + cluster * 7 + " ") * 3
    chunks = split_text(text, max_chars=MIN_MAX_CHARS)
    assert len(chunks) > 1
    for chunk in chunks:
        assert text_length(chunk) <= MIN_MAX_CHARS
        assert chunk.replace("ab", "").replace(cluster, "").strip() == ""


def test_given_many_blank_lines_and_spaces_when_split_then_no_chunk_is_blank() -> None:
    text = "a\n\n\n   \n\t\n" * 40 + " b    c   " * 20 + "\n" * 30
    chunks = split_text(text, max_chars=MIN_MAX_CHARS)
    assert chunks
    assert all(chunk.strip() for chunk in chunks)


@pytest.mark.parametrize("max_chars", [-1, 0, 1, MIN_MAX_CHARS - 1])
def test_given_too_small_max_chars_when_split_then_value_error_names_it(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars must be at least 16") as caught:
        split_text("hello", max_chars=max_chars)
    assert isinstance(caught.value, errors.InvalidInput)


def test_given_non_bmp_emoji_when_counted_then_each_counts_two() -> None:
    assert text_length("ok 👍") == 5
    assert text_length(FAMILY) == 11
    chunks = split_text("😀" * 1500)  # 1500 code points, 3000 UTF-16 units
    assert len(chunks) == 2
    assert all(text_length(chunk) <= DEFAULT_MAX_CHARS for chunk in chunks)
    assert "".join(chunks) == "😀" * 1500


def test_given_the_largest_text_allowed_when_split_then_every_chunk_fits() -> None:
    # (How fast this is lives in bench/, not here: no timed assertion in a test.)
    paragraph = words(60) + " 👍🏽 中文字符\n" + "```python\nx = 1\n```"
    text = ("\n\n".join([paragraph] * 1000))[:100_000]
    chunks = split_text(text)
    assert all(text_length(chunk) <= DEFAULT_MAX_CHARS for chunk in chunks)
    assert len(chunks) >= 50


# --- properties ---------------------------------------------------------------------------

_words = st.text(string.ascii_letters + string.digits + ".,!?'-", min_size=1, max_size=10)
# Built from a few draws rather than one per character, to keep generation fast.
_long_words = st.builds(
    lambda stem, extra: (stem * 40)[: 25 + extra],
    st.text(string.ascii_lowercase, min_size=1, max_size=6),
    st.integers(0, 95),
)
_cjk = st.builds(
    lambda first, size: "".join(map(chr, range(first, first + size))),
    st.integers(0x4E00, 0x9F00),
    st.integers(1, 30),
)
_tokens = st.one_of(
    _words, _words, _long_words, st.sampled_from(CLUSTERS), _cjk, st.just("`inline`")
)
# "" glues tokens together, so clusters also sit right next to letters and CJK.
_lines = st.lists(st.tuples(_tokens, st.sampled_from([" ", " ", "  ", "\t", ""])), max_size=8).map(
    lambda pairs: "".join(token + space for token, space in pairs).rstrip()
)
_indents = st.sampled_from(["", "", "", "  "])
_paragraphs = st.lists(st.builds(str.__add__, _indents, _lines), min_size=1, max_size=4).map(
    "\n".join
)


@st.composite
def _code_blocks(draw: st.DrawFn, *, closed: bool = True) -> str:
    char = draw(st.sampled_from("`~"))
    fence = char * draw(st.integers(3, 4))
    info = draw(st.sampled_from(["", "python", "js", " text"]))
    body = draw(st.lists(st.builds(str.__add__, _indents, _lines), max_size=8))
    closing = [fence + char * draw(st.integers(0, 1))] if closed else []
    return "\n".join([fence + info, *body, *closing])


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(st.one_of(_paragraphs, _paragraphs, _code_blocks()), min_size=1, max_size=6)
    )
    text = draw(st.sampled_from(["", "\n", "\n\n  "]))
    for i, part in enumerate(parts):
        text += (draw(st.sampled_from(["\n", "\n\n", "\n\n\n", "\n \n"])) if i else "") + part
    if draw(st.integers(0, 9)) == 0:
        text += "\n" + draw(_code_blocks(closed=False))
    return text + draw(st.sampled_from(["", "\n", "  \n\n"]))


# Smallest limit the generated texts are sure to fit: a chunk may have to hold an opening
# line, its indentation, an 11-unit ZWJ family and a closing fence together.
_max_chars = st.integers(32, 400)


@given(text=documents(), max_chars=_max_chars)
def test_every_chunk_is_within_the_limit_and_never_blank(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars=max_chars)
    assert all(text_length(chunk) <= max_chars for chunk in chunks)
    assert all(chunk.strip() for chunk in chunks)
    assert bool(chunks) == bool(text.strip())


@given(text=documents(), max_chars=_max_chars)
def test_spans_are_consecutive_and_only_whitespace_is_dropped(text: str, max_chars: int) -> None:
    plans = plan_chunks(text, max_chars=max_chars)
    edges = [0, *(edge for plan in plans for edge in (plan.start, plan.end)), len(text)]
    for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):
        assert gap_start <= gap_end
        assert not text[gap_start:gap_end].strip()
    assert all(plan.start < plan.end for plan in plans)
    assert split_text(text, max_chars=max_chars) == [plan.render(text) for plan in plans]


@given(text=documents(), max_chars=_max_chars)
def test_every_cut_is_a_grapheme_cluster_boundary(text: str, max_chars: int) -> None:
    bounds = grapheme_boundaries(text)
    for plan in plan_chunks(text, max_chars=max_chars):
        assert plan.start in bounds
        assert plan.end in bounds


@given(text=documents(), max_chars=_max_chars)
def test_fences_balance_in_every_chunk_when_they_balance_in_the_text(
    text: str, max_chars: int
) -> None:
    chunks = split_text(text, max_chars=max_chars)
    if unclosed_fence(text) is None:
        assert [unclosed_fence(chunk) for chunk in chunks] == [None] * len(chunks)
    else:
        assert all(unclosed_fence(chunk) is None for chunk in chunks[:-1])


@given(text=st.text(), max_chars=st.integers(MIN_MAX_CHARS, 64))
def test_any_text_at_all_keeps_the_limit_and_loses_nothing(text: str, max_chars: int) -> None:
    plans = plan_chunks(text, max_chars=max_chars)
    chunks = [plan.render(text) for plan in plans]
    assert all(text_length(chunk) <= max_chars and chunk.strip() for chunk in chunks)
    kept = "".join(text[plan.start : plan.end] for plan in plans)
    assert "".join(kept.split()) == "".join(text.split())
