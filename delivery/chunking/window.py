"""The best cut for one chunk, found by searching back from the furthest place it could end.

The rule (see :mod:`delivery.chunking`): among the cuts of the better tier, one
that leaves the chunk at least half full beats one that does not, then the better
rank wins, then the later cut; among equal cuts the first in text order.

Two facts make a backward search enough. A chunk's length, its closing fence
included, grows with the cut's end (a cut after a block is past its closing line,
which is longer than the fence that would close it), so the cuts that fit are those
up to some offset and the half-full ones those from some offset. Hence for each
rank only the *latest* fitting cut matters: if it is not half full, none of that
rank is. :meth:`Window.best` asks for ranks best first and stops at the first
latest cut that is half full; once one rank has a cut, later ranks are searched
only after it, where a half-full cut could be. Each search jumps over stretches
that cannot hold what it looks for (a block's body when looking for paragraphs),
and whitespace is found with backward searches, never character by character.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator

import regex

from delivery.chunking.planner import (
    CODE_LINE,
    GRAPHEME,
    LINE,
    PARAGRAPH,
    WORD,
    Cut,
    Planner,
)
from delivery.chunking.text import SPACE_CHARS

__all__ = ["Window"]

_LAST_SPACE = regex.compile(f"(?r)[{SPACE_CHARS}]")
_LAST_SPACE_NOT_NEWLINE = regex.compile(f"(?r)[{SPACE_CHARS.replace(chr(10), '')}]")
_LAST_BLANK_LINE = regex.compile(f"(?r)\n[{SPACE_CHARS}]*\n")

# (run start, cut end, cut or None) of each whitespace run, latest first.
_Runs = Iterator[tuple[int, int, Cut | None]]


class Window:
    """The candidate cuts of the chunk that starts at ``pos`` after a prefix of ``prefix_units``."""

    def __init__(self, planner: Planner, pos: int, prefix_units: int) -> None:
        self.planner = planner
        self.text = text = planner.text
        self.index = index = planner.index
        self.pos, self.prefix_units = pos, prefix_units
        self.room = planner.max_chars - prefix_units
        self.first = index.first_content(pos)
        # The last end that could fit; each cut up to it still needs its suffix checked.
        self.limit = limit = index.reach(pos, self.room)
        # Searches for line breaks go to the end of the run at ``limit``, so that a run
        # that starts by ``limit`` is seen whole.
        run_end = index.first_content(limit) if text[limit].isspace() else limit + 1
        self.runs_end = min(run_end, planner.stop)
        self._lows: dict[int, int] = {}

    # --- what a cut is worth ------------------------------------------------------------

    def content_units(self, cut: Cut) -> int:
        """UTF-16 length of the chunk from ``pos`` to ``cut``, its closing fence included."""
        close = self.planner.close_units[cut.block] if cut.block >= 0 else 0
        return self.index.units(self.pos, cut.end) + close

    def fits(self, cut: Cut) -> bool:
        """Whether ``cut`` may end this chunk: after its first content, within the room."""
        return self.first < cut.end <= self.limit and self.content_units(cut) <= self.room

    def half_full(self, cut: Cut) -> bool:
        """Whether ``cut`` leaves the chunk, prefix and suffix included, at least half full."""
        return 2 * (self.prefix_units + self.content_units(cut)) >= self.planner.max_chars

    # --- the choice ---------------------------------------------------------------------

    def best(self, tier: int) -> Cut | None:
        """The best cut of ``tier`` (0: outside blocks that fit whole, 1: inside one)."""
        fallback: Cut | None = None  # the best rank's latest cut, none being half full
        floor = self.first  # a better choice than ``fallback`` ends after this
        for rank in (PARAGRAPH, LINE, CODE_LINE, WORD, GRAPHEME):
            if tier and rank in (PARAGRAPH, LINE):
                continue  # those are outside code, so never in tier 1
            cut = self._latest(rank, tier, floor)
            if cut is None:
                continue
            if self.half_full(cut):
                return cut
            fallback = fallback or cut
            floor = cut.end
        return fallback

    def forced(self) -> Cut | None:
        """Last resorts when no proper cut fits.

        First a cluster boundary on a line that starts like a fence (the fence may break);
        then None if dropping the indentation at ``pos`` would make room; only then a cut
        between code points, inside a cluster longer than the room.
        """
        boundaries = self.index.boundaries_back(self.limit, self.first)
        for ends in (boundaries, range(self.limit, self.first, -1)):
            for end in ends:
                block = self.planner.locate(end, end)
                cut = Cut(end, end, GRAPHEME, -1 if block is None else block)
                if self.content_units(cut) <= self.room:
                    return cut
            if self.first > self.pos:
                return None
        return None

    # --- the searches -------------------------------------------------------------------

    def _latest(self, rank: int, tier: int, floor: int) -> Cut | None:
        """The latest cut of ``rank`` and ``tier`` that fits and ends after ``floor``."""
        if rank == PARAGRAPH:
            return self._latest_paragraph(floor)
        if rank == GRAPHEME:
            return self._latest_grapheme(tier, floor)
        if rank == WORD:
            runs = self._runs(self._spaces_not_newline, self.limit + 1, floor, tier=tier)
        else:
            runs = self._runs(self._newlines, self.runs_end, floor, tier=tier, code=rank)
        return self._first_fitting(runs, rank, tier)[1]

    def _latest_paragraph(self, floor: int) -> Cut | None:
        """Paragraph cuts: blank lines, and the line breaks around a fenced block."""
        runs = self._runs(self._blank_lines, self.runs_end, floor, tier=0, code=PARAGRAPH)
        best_start, best = self._first_fitting(runs, PARAGRAPH, 0)
        low = self._low(floor)
        fences = self.planner.fences
        first_fence = bisect_left(self.planner.fence_ends, low)
        for fence in fences[first_fence : bisect_right(self.planner.fence_starts, self.runs_end)]:
            for site in (fence.start - 1, fence.end):
                if not (low <= site < self.runs_end and self.text[site].isspace()):
                    continue
                run_start, run_end = self.planner.run_at(site)
                cut = self.planner.run_cut(run_start, run_end) if run_start < run_end else None
                if cut is None or cut.rank != PARAGRAPH or cut.end <= floor or not self.fits(cut):
                    continue
                if best is None or (cut.end, -run_start) > (best.end, -best_start):
                    best_start, best = run_start, cut
        return best

    def _latest_grapheme(self, tier: int, floor: int) -> Cut | None:
        """Whitespace glued into a cluster, or a boundary between two clusters."""
        runs = self._runs(self._spaces, self.limit + 1, floor, tier=tier)
        _, best = self._first_fitting(runs, GRAPHEME, tier)
        # A whitespace cut comes first in text order, so it wins a tie with a cluster cut.
        low = max(floor, best.end) if best else floor
        text, planner = self.text, self.planner
        high = self.limit
        while high > low:
            for end in self.index.boundaries_back(high, low):
                # Skip what cannot hold a cut of this tier: the rest of a block, a fence line.
                skip = min(self._skip(end, tier, WORD), self._fence_like_line_start(end) - 1)
                if skip < end:
                    high = skip
                    break
                # Next to whitespace, a whitespace cut is at least as good: skip the run.
                if text[end - 1].isspace():
                    high = self.index.run_start(end - 1) - 1
                    break
                if text[end].isspace():
                    continue
                block = planner.locate(end, end)
                if block is None or not planner.mid_line_safe(end, end):
                    continue
                cut = Cut(end, end, GRAPHEME, block)
                if planner.tier(cut) == tier and self.content_units(cut) <= self.room:
                    return cut
            else:
                break
        return best

    def _fence_like_line_start(self, end: int) -> int:
        """The start of the line that starts like a fence and holds ``end``; else ``end + 1``."""
        planner = self.planner
        i = bisect_right(planner.fence_like_starts, end) - 1
        if i >= 0 and end <= planner.fence_like[i][1]:
            return planner.fence_like[i][0]
        return end + 1

    def _first_fitting(self, runs: _Runs, rank: int, tier: int) -> tuple[int, Cut | None]:
        """The latest fitting cut of ``rank`` and ``tier`` in ``runs``, and its run's start.

        Of cuts that end at the same offset, the first in text order wins.
        """
        best_start, best = -1, None
        for run_start, end, cut in runs:
            if best is not None and end < best.end:
                break
            if cut and cut.rank == rank and self.planner.tier(cut) == tier and self.fits(cut):
                best_start, best = run_start, cut
        return best_start, best

    def _runs(
        self,
        find: Callable[[int, int], int],
        high: int,
        floor: int,
        *,
        tier: int,
        code: int = WORD,
    ) -> _Runs:
        """Whitespace runs with a site ``find`` finds before ``high``, latest first.

        Stops at the first run whose cut would end by ``floor``. ``code`` says what is
        looked for: PARAGRAPH or LINE (outside code), CODE_LINE (in a block of
        ``tier``), WORD (in any place of ``tier``); stretches without it are skipped.
        """
        planner = self.planner
        low = self._low(floor)
        while high > low:
            site = find(low, high)
            if site < 0:
                return
            run_start, run_end = planner.run_at(site)
            end = self.index.snap_forward(run_start)
            if end <= floor:
                return
            cut = planner.run_cut(run_start, run_end)
            yield run_start, end, cut
            high = min(run_start, self._skip(end, tier, code))
            if cut is None and self.text.find("\n", run_start, run_end) < 0:
                # No mid-line cut on a line that starts like a fence: skip to its start.
                high = min(high, self._fence_like_line_start(end))

    def _skip(self, end: int, tier: int, code: int) -> int:
        """Where the search may go on from, below a run whose cut ends at ``end``."""
        planner = self.planner
        block = planner.zone(end)
        if block >= 0:
            # Only block cuts (or none) end between the opening fence and the block's end.
            wanted = code in (CODE_LINE, WORD) and planner.fits[block] == bool(tier)
            return end if wanted else planner.fences[block].start
        if code != CODE_LINE and not tier:
            return end
        # Looking for block cuts: the last block that ends before this run.
        previous = bisect_left(planner.fence_starts, end) - 1
        return planner.fences[previous].end if previous >= 0 else -1

    def _low(self, floor: int) -> int:
        """Where searches stop: a run starting before it would end by ``floor``."""
        low = self._lows.get(floor)
        if low is None:
            # Only a run glued into the cluster that holds ``floor`` starts before it and
            # ends after it; in a long cluster without whitespace, searching it is waste.
            low = max(self.planner.start, self.index.snap_back(floor))
            if low < floor and self.index.space_free(low, floor):
                low = floor
            self._lows[floor] = low
        return low

    # --- sites: one whitespace character of each run --------------------------------------

    def _newlines(self, low: int, high: int) -> int:
        return self.text.rfind("\n", low, high)

    def _blank_lines(self, low: int, high: int) -> int:
        match = _LAST_BLANK_LINE.search(self.text, low, high)
        return match.start() if match else -1

    def _spaces(self, low: int, high: int) -> int:
        match = _LAST_SPACE.search(self.text, low, high)
        return match.start() if match else -1

    def _spaces_not_newline(self, low: int, high: int) -> int:
        match = _LAST_SPACE_NOT_NEWLINE.search(self.text, low, high)
        return match.start() if match else -1
