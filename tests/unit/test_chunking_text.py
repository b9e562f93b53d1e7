"""What the chunker's local look-ups rest on: they agree with a walk over the whole text."""

from __future__ import annotations

import re
import sys
from itertools import accumulate

import regex
from hypothesis import given
from hypothesis import strategies as st

from delivery.chunking.fences import fence_like_lines
from delivery.chunking.text import SPACE_CHARS, TextIndex, text_length
from tests.unit.test_chunking_reference import PIECES, pieces_text

texts = st.one_of(pieces_text, st.text(max_size=60))


def all_boundaries(text: str) -> list[int]:
    return list(accumulate(map(len, regex.findall(r"\X", text)), initial=0))


def test_space_chars_are_exactly_what_str_isspace_says() -> None:
    listed = {c for c in map(chr, range(sys.maxunicode + 1)) if re.fullmatch(f"[{SPACE_CHARS}]", c)}
    assert listed == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


@given(text=texts, data=st.data())
def test_a_cluster_matched_from_any_offset_ends_on_a_true_boundary(
    text: str, data: st.DataObject
) -> None:
    # Given any start and end position in a text
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    # When clusters are matched from there
    ends = [m.end() for m in regex.finditer(r"\X", text, pos=start, endpos=end)]
    # Then every match that stops short of the end position ends on a boundary of the
    # whole text, and none is skipped
    assert [e for e in ends if e < end] == [b for b in all_boundaries(text) if start < b < end]


@given(text=texts, data=st.data())
def test_boundaries_near_a_position_are_those_of_the_whole_text(
    text: str, data: st.DataObject
) -> None:
    index, bounds = TextIndex(text), all_boundaries(text)
    pos = data.draw(st.integers(0, len(text)))
    assert index.is_boundary(pos) == (pos in bounds)
    assert index.snap_forward(pos) == min(b for b in bounds if b >= pos)
    assert index.snap_back(pos) == max(b for b in bounds if b <= pos)
    low = data.draw(st.integers(0, pos))
    assert list(index.boundaries_back(pos, low)) == [b for b in reversed(bounds) if low < b <= pos]


def test_given_a_cluster_longer_than_a_local_look_when_snapped_then_the_whole_text_is_used() -> (
    None
):
    text = "a" + "e" + "\u0301" * 3000 + " b"
    index = TextIndex(text)
    assert index.snap_forward(1500) == 3002
    assert index.snap_back(1500) == 1
    assert list(index.boundaries_back(3001, 0)) == [1]


@given(text=texts, data=st.data())
def test_lengths_are_utf16_units(text: str, data: st.DataObject) -> None:
    index = TextIndex(text)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    assert index.units(start, end) == text_length(text[start:end])
    room = data.draw(st.integers(0, 2 * len(text) + 1))
    reach = index.reach(start, room)
    assert index.units(start, reach) <= room
    assert reach == len(text) or index.units(start, reach + 1) > room


@given(text=st.lists(st.sampled_from([*PIECES, "\n", "\n```", "\n ~~~", "\n    ```"])).map("".join))
def test_fence_like_lines_are_the_lines_that_start_like_a_fence(text: str) -> None:
    expected = [m.span() for m in re.finditer(r"^ {0,3}(?:```|~~~).*$", text, re.MULTILINE)]
    assert fence_like_lines(text) == expected
