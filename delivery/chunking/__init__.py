r"""Split a long message text into chunks the platform accepts.

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

How: :mod:`~delivery.chunking.planner` holds what one text offers (its fenced
blocks from :mod:`~delivery.chunking.fences`, the cut each whitespace run makes),
:mod:`~delivery.chunking.window` searches one chunk's cuts backwards from the
furthest place it could end, and :mod:`~delivery.chunking.text` measures lengths
and finds grapheme-cluster boundaries only around the places it is asked about.
Nothing walks the whole text one character at a time in Python.

Example::

    >>> split_text("First paragraph here.\n\nSecond paragraph.", max_chars=30)
    ['First paragraph here.', 'Second paragraph.']
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.chunking.planner import Planner
from delivery.chunking.text import text_length
from delivery.chunking.window import Window
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


def plan_chunks(
    text: str, *, max_chars: int = DEFAULT_MAX_CHARS, reserve: int = 0
) -> list[ChunkPlan]:
    """Plan where to cut ``text`` so that every chunk is at most ``max_chars`` long.

    ``max_chars`` is in UTF-16 code units (see :func:`text_length`). The rules are in
    the module docstring. Returns ``[]`` for empty or whitespace-only text.
    ``reserve``: a text that needs more than one chunk is planned with ``max_chars -
    reserve`` instead, leaving room for something appended to a chunk later (a text
    that fits in one chunk is one chunk, as without it).

    Raises :class:`~delivery.errors.InvalidInput` (a ``ValueError``) when
    ``max_chars`` is below :data:`MIN_MAX_CHARS`.

    Example: ``plan_chunks("Hi.\\n\\nBye.")`` is
    ``[ChunkPlan(start=0, end=9, prefix="", suffix="")]``.
    """
    if max_chars < MIN_MAX_CHARS:
        raise InvalidInput(f"max_chars must be at least {MIN_MAX_CHARS}, got {max_chars}")
    if not text.strip():
        return []
    planner = Planner(text, max_chars)
    if reserve and planner.index.units(planner.start, planner.stop) > max_chars:
        max_chars -= reserve
        if max_chars < MIN_MAX_CHARS:
            raise InvalidInput(f"max_chars less reserve must be at least {MIN_MAX_CHARS}")
        planner = Planner(text, max_chars)
    plans: list[ChunkPlan] = []
    pos, prefix = planner.start, ""
    while text_length(prefix) + planner.index.units(pos, planner.stop) > max_chars:
        window = Window(planner, pos, text_length(prefix))
        cut = window.best(0) or window.best(1) or window.forced()
        if cut is None:
            # The indentation leaves no room: drop it rather than cut a cluster or send
            # a blank chunk.
            pos = window.first
            continue
        reopen, close = planner.block_ends(cut.block)
        plans.append(ChunkPlan(pos, cut.end, prefix, close))
        pos, prefix = cut.next_start, reopen
    plans.append(ChunkPlan(pos, planner.stop, prefix, ""))
    return plans


def split_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS, reserve: int = 0) -> list[str]:
    """The chunks of :func:`plan_chunks`, rendered; same units, rules and errors.

    Example: ``split_text("a " * 20, max_chars=16)`` is ``["a a a a a a a a"] * 2 + ["a a a a"]``.
    """
    return [plan.render(text) for plan in plan_chunks(text, max_chars=max_chars, reserve=reserve)]
