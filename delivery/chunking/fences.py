"""Fenced code blocks: where they are, and how a cut one is closed and reopened.

Only lines that start like a fence (up to three spaces, then ```` ``` ```` or
``~~~``) can open or close a block, so one compiled search finds them and the
CommonMark rules run on those lines alone, not on every line of the text.

Example::

    lines = fence_like_lines("Intro\\n```py\\nx = 1\\n```")
    find_fences("Intro\\n```py\\nx = 1\\n```", lines)
    # [Fence(start=6, opener_end=11, close_start=18, end=21, opener='```py', fence='```')]
"""

from __future__ import annotations

import re
from typing import NamedTuple

from delivery.chunking.text import text_length

__all__ = ["FENCE_LIKE", "Fence", "fence_like_lines", "find_fences", "reopen"]

_OPENER = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_CLOSER = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})\s*")
# A line starting like this could turn into a fence if cut short, so it is never cut mid-line.
FENCE_LIKE = re.compile(r" {0,3}(?:```|~~~)")
_FENCE_MARKS = ("```", "~~~")


class Fence(NamedTuple):
    """One fenced code block, as code-point offsets into the text."""

    start: int  # first character of the opening line
    opener_end: int  # end of the opening line, trailing whitespace excluded
    close_start: int  # first character of the closing line; len(text) if unclosed
    end: int  # end of the closing line, trailing whitespace excluded; len(text) if unclosed
    opener: str  # the opening line as written, e.g. "```python"
    fence: str  # its bare fence, e.g. "```"


def fence_like_lines(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every line that starts like a fence, in text order.

    A line is one of ``text.split("\\n")``; it starts like a fence when it starts
    with :data:`FENCE_LIKE`. Found by looking for the marks, then at their lines.
    """
    starts = set()
    for mark in _FENCE_MARKS:
        at = text.find(mark)
        while at >= 0:
            line_start = text.rfind("\n", 0, at) + 1
            if FENCE_LIKE.match(text, line_start):
                starts.add(line_start)
            # A later mark on the same line cannot start it.
            line_end = text.find("\n", at)
            at = text.find(mark, line_end) if line_end >= 0 else -1
    lines = []
    for line_start in sorted(starts):
        line_end = text.find("\n", line_start)
        lines.append((line_start, line_end if line_end >= 0 else len(text)))
    return lines


def find_fences(text: str, lines: list[tuple[int, int]]) -> list[Fence]:
    """The fenced code blocks of ``text`` in order, by the CommonMark rules.

    ``lines`` are the text's :func:`fence_like_lines`: no other line can open or
    close a block.
    """
    fences: list[Fence] = []
    opening: tuple[int, str, str] | None = None  # (start, opener, fence) of the open block
    for line_start, line_end in lines:
        line = text[line_start:line_end]
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
                    Fence(start, start + len(opener), line_start, close_end, opener, fence)
                )
                opening = None
    if opening is not None:
        start, opener, fence = opening
        fences.append(Fence(start, start + len(opener), len(text), len(text), opener, fence))
    return fences


def reopen(fence: Fence, max_chars: int) -> tuple[str, str]:
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
