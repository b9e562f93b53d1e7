r"""The chunker as it was before issue 12 (commit dfc7cb6), kept as the reference.

The differential tests (``tests/unit/test_chunking_reference.py``) check that
:mod:`delivery.chunking` plans exactly the same chunks as this implementation for
every generated input, and ``python -m bench chunker`` times both on one corpus.
It computes every offset and grapheme boundary over the whole text, one Python
step per character; nothing in the product imports it. What follows is the
original module, unchanged.

Split a long message text into chunks the platform accepts.

The iLink Bot API takes at most about :data:`DEFAULT_MAX_CHARS` characters per
text message, so a long reply goes out as several messages. :func:`plan_chunks`
decides where to cut; each chunk is ``prefix + text[start:end] + suffix``
(:class:`ChunkPlan`) and :func:`split_text` renders them. Lengths are counted by
:func:`text_length` in UTF-16 code units, the conservative reading of the limit.

Rules:

* Every chunk, prefix and suffix included, is at most ``max_chars`` long; a
  ``max_chars`` below :data:`MIN_MAX_CHARS` is refused. Blank text gives no chunks.
* Where to cut, best first: a paragraph break (blank lines) outside code, or the
  line boundary just before a code fence opens or just after one closes; a line
  break outside code; a line break inside code; a run of spaces or tabs; any
  boundary between grapheme clusters, so emoji sequences, flags and combining
  marks stay whole. Only a single cluster longer than the room is cut between
  code points.
* No needlessly small chunks: the best break that leaves the chunk at least half
  full wins; an earlier break is taken only when there is no such one. Among
  equal breaks the latest wins.
* A fenced code block (CommonMark ```` ``` ```` or ``~~~`` fences) that fits in one
  chunk is never cut while any other break is possible. One that must be cut is
  closed at the end of its chunk (suffix ``"\n```"``) and reopened at the start
  of the next with its opening line (prefix ``"```python\n"``; the info string is
  dropped when it would take too much room). An unclosed fence runs to the end of
  the text; its last chunk is left open, as written.
* The whitespace at a cut is dropped, except the next line's indentation. Nothing
  else is lost, duplicated or reordered, and no chunk is blank.

Limits, for pathological input only: a line that starts like a fence and is longer
than a chunk may have to be cut so that a fence appears or breaks; a fence so long
that closing and reopening it would take over half a chunk is cut like plain text;
indentation that leaves no room for the text after it is dropped.

Example::

    >>> split_text("First paragraph here.\n\nSecond paragraph.", max_chars=30)
    ['First paragraph here.', 'Second paragraph.']
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import NamedTuple

import regex

from delivery.errors import InvalidInput

__all__ = [
    "DEFAULT_MAX_CHARS",
    "MIN_MAX_CHARS",
    "ChunkPlan",
    "plan_chunks",
    "split_text",
    "text_length",
]

DEFAULT_MAX_CHARS = 2000  # the platform's observed limit per text message
MIN_MAX_CHARS = 16  # room for a closing and a reopening ``` fence and some text

# How good a cut is; lower is better.
_PARAGRAPH, _LINE, _CODE_LINE, _WORD, _GRAPHEME = range(5)

_GRAPHEME_CLUSTER = regex.compile(r"\X")
_WHITESPACE_RUN = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")
_OPENER = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_CLOSER = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})\s*")
# A line starting like this could turn into a fence if cut short, so it is never cut mid-line.
_FENCE_LIKE = re.compile(r" {0,3}(?:```|~~~)")
_FENCE_LIKE_LINE = re.compile(r"^ {0,3}(?:```|~~~).*$", re.MULTILINE)


def text_length(text: str) -> int:
    """Length of ``text`` as the platform counts it, conservatively: UTF-16 code units.

    A character outside the Basic Multilingual Plane (most emoji) counts 2, so
    ``text_length("ok 👍") == 5``.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """One chunk: ``prefix + text[start:end] + suffix``.

    ``start`` and ``end`` are code-point offsets into the text that was planned.
    ``prefix`` reopens a code block the previous chunk cut, ``suffix`` closes one
    this chunk cuts; both are usually empty.
    """

    start: int
    end: int
    prefix: str
    suffix: str

    def render(self, text: str) -> str:
        """The chunk as sent, given the same ``text`` the plan was made for."""
        return f"{self.prefix}{text[self.start : self.end]}{self.suffix}"


def plan_chunks(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[ChunkPlan]:
    """Plan where to cut ``text`` so that every chunk is at most ``max_chars`` long.

    ``max_chars`` is in UTF-16 code units (see :func:`text_length`). The rules are in
    the module docstring. Returns ``[]`` for empty or whitespace-only text.

    Raises :class:`~delivery.errors.InvalidInput` (a ``ValueError``) when
    ``max_chars`` is below :data:`MIN_MAX_CHARS`.

    Example: ``plan_chunks("Hi.\\n\\nBye.")`` is
    ``[ChunkPlan(start=0, end=9, prefix="", suffix="")]``.
    """
    if max_chars < MIN_MAX_CHARS:
        raise InvalidInput(f"max_chars must be at least {MIN_MAX_CHARS}, got {max_chars}")
    if not text.strip():
        return []
    planner = _Planner(text, max_chars)
    plans: list[ChunkPlan] = []
    pos, prefix = planner.start, ""
    while text_length(prefix) + planner.units_between(pos, planner.stop) > max_chars:
        cut = planner.best_cut(pos, prefix)
        if cut is None:
            # The indentation leaves no room: drop it rather than cut a cluster or send
            # a blank chunk.
            pos = planner.first_content(pos)
            continue
        reopen, close = planner.fence_ends(cut.block)
        plans.append(ChunkPlan(pos, cut.end, prefix, close))
        pos, prefix = cut.next_start, reopen
    plans.append(ChunkPlan(pos, planner.stop, prefix, ""))
    return plans


def split_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """The chunks of :func:`plan_chunks`, rendered; same units, rules and errors.

    Example: ``split_text("a " * 20, max_chars=16)`` is ``["a a a a a a a a"] * 2 + ["a a a a"]``.
    """
    return [plan.render(text) for plan in plan_chunks(text, max_chars=max_chars)]


class _Fence(NamedTuple):
    """One fenced code block, as code-point offsets into the text."""

    start: int  # first character of the opening line
    opener_end: int  # end of the opening line, trailing whitespace excluded
    close_start: int  # first character of the closing line; len(text) if unclosed
    end: int  # end of the closing line, trailing whitespace excluded; len(text) if unclosed
    opener: str  # the opening line as written, e.g. "```python"
    fence: str  # its bare fence, e.g. "```"


class _Cut(NamedTuple):
    """A place to cut: the chunk ends at ``end``, the next starts at ``next_start``."""

    end: int
    next_start: int  # text[end:next_start] is the dropped whitespace
    rank: int  # _PARAGRAPH .. _GRAPHEME
    block: int  # index of the fenced block whose body the cut falls in, or -1


def _find_fences(text: str) -> list[_Fence]:
    """The fenced code blocks of ``text`` in order, by the CommonMark rules."""
    fences: list[_Fence] = []
    opening: tuple[int, str, str] | None = None  # (start, opener, fence) of the open block
    line_start = 0
    for line in text.split("\n"):
        content = line.rstrip()
        if opening is None:
            match = _OPENER.fullmatch(content)
            # A backtick fence's info string may not hold a backtick (it is inline code).
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                opening = (line_start, content, match["fence"])
        else:
            match = _CLOSER.fullmatch(line)
            start, opener, fence = opening
            if match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence):
                close_end = line_start + len(content)
                fences.append(
                    _Fence(start, start + len(opener), line_start, close_end, opener, fence)
                )
                opening = None
        line_start += len(line) + 1
    if opening is not None:
        start, opener, fence = opening
        fences.append(_Fence(start, start + len(opener), len(text), len(text), opener, fence))
    return fences


def _reopen(fence: _Fence, max_chars: int) -> tuple[str, str]:
    """Prefix and suffix that reopen and close a cut block; ``("", "")`` if not worth it.

    The opening line with its info string is used when the pair takes at most a
    quarter of a chunk, the bare fence when at most half. A longer fence would leave
    too little room for the code, so such a block is cut like plain text.
    """
    close = "\n" + fence.fence
    for prefix, share in ((fence.opener + "\n", 4), (fence.fence + "\n", 2)):
        if text_length(prefix + close) * share <= max_chars:
            return prefix, close
    return "", ""


class _Planner:
    """Offsets and cut candidates of one text, for one ``max_chars``."""

    def __init__(self, text: str, max_chars: int) -> None:
        self.text, self.max_chars = text, max_chars
        # units[i] is the UTF-16 length of text[:i], so any span is measured in O(1).
        self.units = list(accumulate((1 + (ord(c) > 0xFFFF) for c in text), initial=0))
        clusters: list[str] = _GRAPHEME_CLUSTER.findall(text)
        self.bounds = list(accumulate(map(len, clusters), initial=0))
        self.is_bound = bytearray(len(text) + 1)
        for bound in self.bounds:
            self.is_bound[bound] = 1
        self.fences = _find_fences(text)
        self.fence_starts = [fence.start for fence in self.fences]
        self.reopens = [_reopen(fence, max_chars) for fence in self.fences]
        self.close_units = [text_length(close) for _, close in self.reopens]
        self.fits = [self.units[f.end] - self.units[f.start] <= max_chars for f in self.fences]
        # Lines that must not be cut mid-line, as (start, end) pairs in text order.
        self.fence_like = [m.span() for m in _FENCE_LIKE_LINE.finditer(text)]
        self.fence_like_starts = [start for start, _ in self.fence_like]
        lead = len(text) - len(text.lstrip())
        self.start = text.rfind("\n", 0, lead) + 1  # keep the first line's indentation
        self.stop = self._snap_forward(len(text.rstrip()))
        self.cuts = self._whitespace_cuts()
        self.cut_ends = [cut.end for cut in self.cuts]

    def units_between(self, start: int, end: int) -> int:
        """UTF-16 length of ``text[start:end]``."""
        return self.units[end] - self.units[start]

    def first_content(self, pos: int) -> int:
        """Offset of the first non-whitespace character at or after ``pos``."""
        match = _NON_SPACE.search(self.text, pos)
        return match.start() if match else len(self.text)

    def fence_ends(self, block: int) -> tuple[str, str]:
        """Prefix and suffix for a cut in the body of ``block`` (-1: outside code)."""
        return self.reopens[block] if block >= 0 else ("", "")

    def best_cut(self, pos: int, prefix: str) -> _Cut | None:
        """The best cut for the chunk that starts at ``pos`` with ``prefix``.

        None when the indentation at ``pos`` leaves no room for what follows it.
        """
        first = self.first_content(pos)
        prefix_units = text_length(prefix)
        room = self.max_chars - prefix_units
        # The last end that could fit; each cut up to it still needs its suffix checked.
        limit = bisect_right(self.units, self.units[pos] + room) - 1
        # tiers[0]: cuts outside any block that fits whole; tiers[1]: cuts inside one.
        tiers: tuple[list[_Cut], list[_Cut]] = ([], [])
        for i in range(bisect_right(self.cut_ends, first), bisect_right(self.cut_ends, limit)):
            cut = self.cuts[i]
            if self._content_units(pos, cut) <= room:
                tiers[self._tier(cut)].append(cut)
        self._add_cluster_cuts(pos, first, limit, room, tiers)

        def preference(cut: _Cut) -> tuple[bool, int, int]:
            half_full = 2 * (prefix_units + self._content_units(pos, cut)) >= self.max_chars
            return half_full, -cut.rank, cut.end

        for candidates in tiers:
            if candidates:
                return max(candidates, key=preference)
        return self._forced_cut(pos, first, limit, room)

    def _content_units(self, pos: int, cut: _Cut) -> int:
        """UTF-16 length of the chunk from ``pos`` to ``cut``, its suffix included."""
        close = self.close_units[cut.block] if cut.block >= 0 else 0
        return self.units[cut.end] - self.units[pos] + close

    def _tier(self, cut: _Cut) -> int:
        """1 for a cut inside a block that would fit whole in a chunk, else 0."""
        return int(cut.block >= 0 and self.fits[cut.block])

    def _add_cluster_cuts(
        self, pos: int, first: int, limit: int, room: int, tiers: tuple[list[_Cut], list[_Cut]]
    ) -> None:
        """Add the latest usable grapheme-cluster boundary of each tier, if any."""
        # Only the latest matters: all cluster cuts rank the same and the latest wins.
        wanted = [True, True]
        for i in range(bisect_right(self.bounds, limit) - 1, -1, -1):
            end = self.bounds[i]
            if end <= first or not wanted[0]:
                return
            # Next to whitespace, a whitespace cut is at least as good.
            if self.text[end - 1].isspace() or self.text[end].isspace():
                continue
            block = self._locate(end, end)
            if block is None or not self._mid_line_safe(end, end):
                continue
            cut = _Cut(end, end, _GRAPHEME, block)
            tier = self._tier(cut)
            if wanted[tier] and self._content_units(pos, cut) <= room:
                tiers[tier].append(cut)
                wanted[tier] = False

    def _forced_cut(self, pos: int, first: int, limit: int, room: int) -> _Cut | None:
        """Last resorts when no proper cut fits.

        First a cluster boundary on a line that starts like a fence (the fence may break);
        then None if dropping the indentation at ``pos`` would make room; only then a cut
        between code points, inside a cluster longer than the room.
        """
        lo, hi = bisect_right(self.bounds, first), bisect_right(self.bounds, limit)
        for ends in (reversed(self.bounds[lo:hi]), range(limit, first, -1)):
            for end in ends:
                block = self._locate(end, end)
                cut = _Cut(end, end, _GRAPHEME, -1 if block is None else block)
                if self._content_units(pos, cut) <= room:
                    return cut
            if first > pos:
                return None
        return None

    def _whitespace_cuts(self) -> list[_Cut]:
        """A cut for each usable run of whitespace, in text order."""
        opens = set(self.fence_starts)
        closes = {fence.end for fence in self.fences}
        cuts: list[_Cut] = []
        for run in _WHITESPACE_RUN.finditer(self.text, self.start, self.stop):
            run_start, run_end = run.span()
            newlines = self.text.count("\n", run_start, run_end)
            end = self._snap_forward(run_start)
            if newlines:
                # Only the line break(s) go; the next line's indentation stays.
                next_start = self.text.rindex("\n", run_start, run_end) + 1
            else:
                next_start = self._snap_back(run_end)
            if not self.start < end <= next_start < self.stop:
                continue
            block = self._locate(end, next_start)
            if block is None or (not newlines and not self._mid_line_safe(end, next_start)):
                continue
            if end == next_start:
                rank = _GRAPHEME  # whitespace glued to a mark: nothing to drop
            elif block >= 0:
                rank = _CODE_LINE if newlines else _WORD
            elif newlines > 1 or end in closes or next_start in opens:
                rank = _PARAGRAPH
            else:
                rank = _LINE if newlines else _WORD
            cuts.append(_Cut(end, next_start, rank, block))
        return cuts

    def _locate(self, end: int, next_start: int) -> int | None:
        """Where a cut falls: -1 outside code, or the index of the block it cuts the body of.

        None for a cut on a fence line or right beside one: it would leave an empty or
        broken block.
        """
        i = bisect_left(self.fence_starts, end) - 1
        if i < 0 or end >= self.fences[i].end:
            return -1
        fence = self.fences[i]
        return i if fence.opener_end < end and next_start < fence.close_start else None

    def _mid_line_safe(self, end: int, next_start: int) -> bool:
        """Whether a cut inside a line leaves neither half looking like a fence line."""
        i = bisect_right(self.fence_like_starts, end) - 1
        if i >= 0 and end <= self.fence_like[i][1]:
            return False
        return not _FENCE_LIKE.match(self.text, next_start)

    def _snap_forward(self, pos: int) -> int:
        """The first grapheme-cluster boundary at or after ``pos``."""
        return pos if self.is_bound[pos] else self.bounds[bisect_left(self.bounds, pos)]

    def _snap_back(self, pos: int) -> int:
        """The last grapheme-cluster boundary at or before ``pos``."""
        return pos if self.is_bound[pos] else self.bounds[bisect_right(self.bounds, pos) - 1]
