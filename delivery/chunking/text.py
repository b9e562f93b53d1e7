"""Lengths, whitespace runs and grapheme boundaries of one text, computed only where asked.

The chunker looks at a few places per chunk, so nothing here walks the whole text
in Python: UTF-16 lengths come from the list of the text's astral characters (none
for most texts), whitespace is found with ``str.rfind`` and compiled searches (the
``regex`` module's ``(?r)`` flag searches backwards from a position), and grapheme
clusters are matched with ``regex``'s ``\\X`` on a few characters around a position.

That last part rests on one property of ``\\X``, checked by
``tests/unit/test_chunking_text.py``: whether a position is a boundary is decided from
the whole string around it, not from where the match started. So a match started
at *any* offset ends at the first true boundary after that offset, and the
boundaries found from there are the ones a segmentation of the whole text finds.

Example::

    index = TextIndex("ok 👍🏽 fine")
    index.units(0, 7)            # 9: each emoji code point counts two
    index.snap_back(4)           # 3: 4 is between the thumb and its skin tone
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import accumulate

import regex

__all__ = ["SPACE_CHARS", "TextIndex", "text_length"]

# Exactly the characters for which ``str.isspace()`` is true (a test checks it). The
# stdlib ``re``'s ``\s`` is the same set; the ``regex`` module's ``\s`` is not.
SPACE_CHARS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_CLUSTER = regex.compile(r"\X")
_NON_SPACE = re.compile(r"\S")
_SPACE = re.compile(r"\s")
_LAST_NON_SPACE = regex.compile(f"(?r)[^{SPACE_CHARS}]")
# Widest window :meth:`TextIndex.boundaries_back` matches clusters in at first.
_FIRST_WINDOW = 8
# Farthest a boundary is looked for around one place; past it (a cluster of hundreds of
# combining marks), the whole text is segmented once, as a last resort.
_LOCAL_REACH = 512


def text_length(text: str) -> int:
    """Length of ``text`` as the platform counts it, conservatively: UTF-16 code units.

    A character outside the Basic Multilingual Plane (most emoji) counts 2, so
    ``text_length("ok 👍") == 5``.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class TextIndex:
    """Measures and boundaries of one text; offsets are code points, lengths UTF-16 units."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text)
        # Offsets of the characters that count two; empty for most texts, which a quick
        # encode tells (a scan for them costs about ten times as much).
        self.astral = []
        if not text.isascii() and text_length(text) > self.size:
            self.astral = [m.start() for m in _ASTRAL.finditer(text)]
        self._bounds: list[int] | None = None  # every boundary, once a local search gave up
        self._space_free = (0, 0)  # a stretch known to hold no whitespace

    def units(self, start: int, end: int) -> int:
        """UTF-16 length of ``text[start:end]``."""
        if not self.astral:
            return end - start
        return end - start + bisect_left(self.astral, end) - bisect_left(self.astral, start)

    def reach(self, start: int, room: int) -> int:
        """The last offset ``end`` (at most the length) with ``units(start, end) <= room``."""
        end = min(self.size, start + room)
        if self.units(start, end) <= room:
            return end
        low, high = start, end  # units(start, low) <= room < units(start, high)
        while high - low > 1:
            middle = (low + high) // 2
            if self.units(start, middle) <= room:
                low = middle
            else:
                high = middle
        return low

    # --- whitespace ---------------------------------------------------------------------

    def first_content(self, pos: int) -> int:
        """Offset of the first non-whitespace character at or after ``pos``, or the length."""
        match = _NON_SPACE.search(self.text, pos)
        return match.start() if match else self.size

    def space_free(self, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` holds no whitespace.

        Remembers the last stretch found free, so that asking again about a growing
        stretch (the same long cluster, chunk after chunk) searches only what is new.
        """
        known_start, known_end = self._space_free
        if known_start <= start <= known_end:
            if end <= known_end:
                return True
            if _SPACE.search(self.text, known_end, end):
                return False
            self._space_free = (known_start, end)
            return True
        if _SPACE.search(self.text, start, end):
            return False
        self._space_free = (start, end)
        return True

    def run_start(self, pos: int) -> int:
        """Where the whitespace run that ends at ``pos`` (or contains it) begins."""
        match = _LAST_NON_SPACE.search(self.text, 0, pos)
        return match.end() if match else 0

    # --- grapheme clusters --------------------------------------------------------------

    def is_boundary(self, pos: int) -> bool:
        """Whether ``pos`` is a boundary between grapheme clusters (0 and the end are)."""
        if pos <= 0 or pos >= self.size:
            return True
        pair = self.text[pos - 1 : pos + 1]
        if pair.isascii():
            return pair != "\r\n"
        match = _CLUSTER.match(self.text, pos - 1, pos + 1)
        return bool(match) and match.end() == pos

    def snap_forward(self, pos: int) -> int:
        """The first grapheme-cluster boundary at or after ``pos``."""
        if self.is_boundary(pos):
            return pos
        if self._bounds is None:
            # Matched from pos - 1, the cluster ends on the first boundary after it; a match
            # that reaches its end position may have been cut short there.
            reach = min(self.size, pos - 1 + _LOCAL_REACH)
            match = _CLUSTER.match(self.text, pos - 1, reach)
            end = int(match.end()) if match else reach
            if end < reach or reach == self.size:
                return end
        bounds = self._all_bounds()
        return bounds[bisect_left(bounds, pos)]

    def snap_back(self, pos: int) -> int:
        """The last grapheme-cluster boundary at or before ``pos``."""
        if self.is_boundary(pos):
            return pos
        return next(self.boundaries_back(pos - 1, 0), 0)

    def boundaries_back(self, high: int, low: int) -> Iterator[int]:
        """The boundaries ``b`` with ``low < b <= high``, latest first.

        Clusters are matched forwards in windows that start just before ``high`` and
        widen as the iteration goes back, so stopping early costs little.
        """
        width, searched = _FIRST_WINDOW, 0
        while high > low and self._bounds is None:
            if searched > _LOCAL_REACH:
                self._all_bounds()
                break
            start = max(low, high - width)
            # Matches may start inside a cluster: they still end on true boundaries.
            ends = [
                m.end()
                for m in _CLUSTER.finditer(self.text, start, min(high + 1, self.size))
                if m.end() <= high
            ]
            yield from reversed(ends)
            searched += high - start
            high, width = start, width * 4
        if high > low and self._bounds is not None:
            bounds = self._bounds
            yield from reversed(bounds[bisect_right(bounds, low) : bisect_right(bounds, high)])

    def _all_bounds(self) -> list[int]:
        """Every boundary of the text, from a segmentation of the whole of it."""
        if self._bounds is None:
            clusters: list[str] = _CLUSTER.findall(self.text)
            self._bounds = list(accumulate(map(len, clusters), initial=0))
        return self._bounds
