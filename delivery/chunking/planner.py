"""What one text offers the chunker: its fences, its span, and the cut a whitespace run makes.

:class:`Planner` holds what is computed once per text and ``max_chars`` (the fenced
blocks, how each would be reopened, where the text's content starts and stops);
:mod:`delivery.chunking.window` searches one chunk's candidates with it. A cut's
*rank* says how good it is (lower is better, see :data:`PARAGRAPH` ..
:data:`GRAPHEME`); its *tier* is 1 when it falls inside a block that would fit
whole in one chunk, which the chunker cuts only when nothing else can be cut.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple

from delivery.chunking.fences import FENCE_LIKE, fence_like_lines, find_fences, reopen
from delivery.chunking.text import TextIndex, text_length

__all__ = ["CODE_LINE", "GRAPHEME", "LINE", "PARAGRAPH", "WORD", "Cut", "Planner"]

# How good a cut is; lower is better.
PARAGRAPH, LINE, CODE_LINE, WORD, GRAPHEME = range(5)


class Cut(NamedTuple):
    """A place to cut: the chunk ends at ``end``, the next starts at ``next_start``."""

    end: int
    next_start: int  # text[end:next_start] is the dropped whitespace
    rank: int  # PARAGRAPH .. GRAPHEME
    block: int  # index of the fenced block whose body the cut falls in, or -1


class Planner:
    """Offsets, fences and cut rules of one text, for one ``max_chars``."""

    def __init__(self, text: str, max_chars: int) -> None:
        self.text, self.max_chars = text, max_chars
        self.index = index = TextIndex(text)
        # Lines that must not be cut mid-line, as (start, end) pairs in text order.
        self.fence_like = fence_like_lines(text)
        self.fence_like_starts = [start for start, _ in self.fence_like]
        self.fences = find_fences(text, self.fence_like)
        self.fence_starts = [fence.start for fence in self.fences]
        self.fence_ends = [fence.end for fence in self.fences]
        self.opens, self.closes = set(self.fence_starts), set(self.fence_ends)
        self.reopens = [reopen(fence, max_chars) for fence in self.fences]
        self.close_units = [text_length(close) for _, close in self.reopens]
        self.fits = [index.units(f.start, f.end) <= max_chars for f in self.fences]
        # Keep the first line's indentation; drop the trailing whitespace.
        self.start = text.rfind("\n", 0, index.first_content(0)) + 1
        self.stop = index.snap_forward(index.run_start(len(text)))

    def block_ends(self, block: int) -> tuple[str, str]:
        """Prefix and suffix for a cut in the body of ``block`` (-1: outside code)."""
        return self.reopens[block] if block >= 0 else ("", "")

    def tier(self, cut: Cut) -> int:
        """1 for a cut inside a block that would fit whole in a chunk, else 0."""
        return int(cut.block >= 0 and self.fits[cut.block])

    def zone(self, end: int) -> int:
        """The block a cut ending at ``end`` falls in (its body or a fence line), or -1."""
        i = bisect_left(self.fence_starts, end) - 1
        return i if i >= 0 and end < self.fences[i].end else -1

    def locate(self, end: int, next_start: int) -> int | None:
        """Where a cut falls: -1 outside code, or the index of the block it cuts the body of.

        None for a cut on a fence line or right beside one: it would leave an empty or
        broken block.
        """
        i = self.zone(end)
        if i < 0:
            return -1
        fence = self.fences[i]
        return i if fence.opener_end < end and next_start < fence.close_start else None

    def mid_line_safe(self, end: int, next_start: int) -> bool:
        """Whether a cut inside a line leaves neither half looking like a fence line."""
        i = bisect_right(self.fence_like_starts, end) - 1
        if i >= 0 and end <= self.fence_like[i][1]:
            return False
        return not FENCE_LIKE.match(self.text, next_start)

    def run_cut(self, run_start: int, run_end: int) -> Cut | None:
        """The cut at the whitespace ``text[run_start:run_end]``, or None if it is unusable.

        Only the line break(s) go when the run has any (the next line's indentation
        stays); the cut ends on the cluster boundary at or after the run's start.
        """
        text, index = self.text, self.index
        newlines = text.count("\n", run_start, run_end)
        end = index.snap_forward(run_start)
        if newlines:
            next_start = text.rindex("\n", run_start, run_end) + 1
        else:
            next_start = index.snap_back(run_end)
        if not self.start < end <= next_start < self.stop:
            return None
        block = self.locate(end, next_start)
        if block is None or (not newlines and not self.mid_line_safe(end, next_start)):
            return None
        if end == next_start:
            rank = GRAPHEME  # whitespace glued to a mark: nothing to drop
        elif block >= 0:
            rank = CODE_LINE if newlines else WORD
        elif newlines > 1 or end in self.closes or next_start in self.opens:
            rank = PARAGRAPH
        else:
            rank = LINE if newlines else WORD
        return Cut(end, next_start, rank, block)

    def run_at(self, pos: int) -> tuple[int, int]:
        """The whitespace run holding ``text[pos]``, within the text's span; may be empty."""
        index = self.index
        return max(index.run_start(pos), self.start), min(index.first_content(pos), self.stop)
