"""Chunker: characters per second of ``split_text`` on mixed text, before and after issue 12.

*Before* is the chunker as it was (``tests/support/chunking_reference.py``, kept
for the differential tests), *after* is ``delivery.chunking``; both split the same
corpus (:mod:`bench.corpus`: prose with emoji, Chinese, lists and code fences, 70
documents of 1,500 to 100,000 characters) into chunks of 2,000, in this process,
timed with ``time.perf_counter`` around the whole corpus. Each is run
:data:`REPEATS` times, alternating, and the median and the best are kept; the
chunks of both are checked to be the same. A few pathological texts (a cluster of
thousands of combining marks, thousands of emoji without a space, a prepend mark
glued to every space) show the worst cases.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import DOCUMENT_SIZES, mixed_corpus
from bench.markdown import stamp, table
from delivery.chunking import split_text

__all__ = ["TITLE", "render", "run"]

DOCUMENTS = 70  # ten of each size in DOCUMENT_SIZES
SEED = 12
MAX_CHARS = 2000
REPEATS = 5
PATHOLOGICAL = {
    "one cluster of 20,000 combining marks": "e" + "\u0301" * 20_000,
    "20,000 emoji, no space": "😀👍🏽" * 6_667,
    "a prepend mark before each of 10,000 spaces": "\u0600 " * 10_000,
}

Splitter = Callable[..., list[str]]


def _reference() -> Splitter:
    """The chunker before issue 12, from the tests' support package."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.support.chunking_reference import split_text as before

    return before


def _seconds(split: Splitter, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        split(text, max_chars=MAX_CHARS)
    return time.perf_counter() - started


def _rates(seconds: list[float], chars: int) -> dict[str, float]:
    return {
        "median_chars_per_second": chars / statistics.median(seconds),
        "best_chars_per_second": chars / min(seconds),
    }


def run() -> dict[str, Any]:
    """Both chunkers on the mixed corpus, per document size, and on pathological texts."""
    print("chunker: characters per second, before and after", flush=True)
    before, after = _reference(), split_text
    corpus = mixed_corpus(documents=DOCUMENTS, seed=SEED)
    chars = sum(map(len, corpus))
    chunks = [after(text, max_chars=MAX_CHARS) for text in corpus]
    if chunks != [before(text, max_chars=MAX_CHARS) for text in corpus]:
        raise AssertionError("the chunkers disagree on the corpus")
    timings: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(REPEATS):
        timings["before"].append(_seconds(before, corpus))
        timings["after"].append(_seconds(after, corpus))
    result: dict[str, Any] = {
        "documents": DOCUMENTS,
        "characters": chars,
        "chunks": sum(map(len, chunks)),
        "max_chars": MAX_CHARS,
        "repeats": REPEATS,
        "sizes": list(DOCUMENT_SIZES),
        "runs": {name: _rates(seconds, chars) for name, seconds in timings.items()},
    }
    for name, rates in result["runs"].items():
        print(f"  {name:<7} {rates['median_chars_per_second'] / 1e6:6.2f} M chars/s (median)")
    by_size = []
    for size in DOCUMENT_SIZES:
        texts = [text for text in corpus if len(text) == size]
        seconds = [_seconds(after, texts) for _ in range(REPEATS)]
        by_size.append({"size": size, "texts": len(texts), **_rates(seconds, size * len(texts))})
    result["after_by_size"] = by_size
    result["pathological"] = [
        {
            "text": name,
            "characters": len(text),
            "before_chars_per_second": len(text) / min(_seconds(before, [text]) for _ in "ab"),
            "after_chars_per_second": len(text) / min(_seconds(after, [text]) for _ in "ab"),
        }
        for name, text in PATHOLOGICAL.items()
    ]
    return result


TITLE = "6. Chunker"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    runs = r["runs"]
    rows = [
        [
            name,
            f"{runs[key]['median_chars_per_second'] / 1e6:.1f} M",
            f"{runs[key]['best_chars_per_second'] / 1e6:.1f} M",
        ]
        for key, name in (
            ("before", "before (`tests/support/chunking_reference.py`)"),
            ("after", "after (`delivery.chunking`)"),
        )
    ]
    speedup = runs["after"]["median_chars_per_second"] / runs["before"]["median_chars_per_second"]
    size_rows = [
        [f"{s['size']:,}", str(s["texts"]), f"{s['median_chars_per_second'] / 1e6:.1f} M"]
        for s in r["after_by_size"]
    ]
    worst_rows = [
        [
            p["text"],
            f"{p['characters']:,}",
            f"{p['before_chars_per_second'] / 1e6:.2f} M",
            f"{p['after_chars_per_second'] / 1e6:.2f} M",
        ]
        for p in r["pathological"]
    ]
    return f"""## {TITLE}

{stamp(r)}

`split_text(text, max_chars={r["max_chars"]})` over a mixed corpus (`bench/corpus.py`):
{r["documents"]} documents of {r["sizes"][0]:,} to {r["sizes"][-1]:,} characters
({r["characters"]:,} in all, {r["chunks"]:,} chunks), made of English paragraphs with an
emoji now and then, Chinese paragraphs without spaces (some longer than a chunk), bullet
lists and fenced code blocks (some cut, closed and reopened). *Before* is the chunker as
it was before issue 12, kept unchanged in `tests/support/chunking_reference.py`; both
run in one process, alternating, {r["repeats"]} times each, timed with
`time.perf_counter` around the whole corpus; both give the same chunks (checked
before timing, and by `tests/unit/test_chunking_reference.py` on generated texts).

{table(["chunker", "characters/s, median", "best"], rows)}

After ÷ before: {speedup:.0f}×. The new chunker by document size (median characters/s; a
text that fits one chunk needs no cut at all):

{table(["characters per document", "documents", "characters/s"], size_rows)}

Worst cases: texts built to defeat looking near a cut (best of 2 runs each). A cluster
longer than a few hundred characters makes the new chunker segment the whole text once,
as the old one always did; a prepend mark glued to every space leaves no word break, so
each chunk's search walks every run of its window, where the old one walked each once.

{table(["text", "characters", "before", "after"], worst_rows)}
"""
