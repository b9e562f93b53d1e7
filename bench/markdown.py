"""What every section of ``BENCHMARKS.md`` is written with: the run's stamp, tables,
counts.

Example::

    f"## {TITLE}\n\n{stamp(result)}\n\n{table(['backend', 'chunks/s'], rows)}\n"
"""

from __future__ import annotations

from typing import Any

__all__ = ["counts", "stamp", "table"]


def stamp(result: dict[str, Any]) -> str:
    """When and how a result was measured, and the machine's load around it."""
    meta = result["meta"]
    before = "/".join(f"{x:.1f}" for x in meta["loadavg_before"])
    after = "/".join(f"{x:.1f}" for x in meta["loadavg_after"])
    return (
        f"*Measured {meta['measured_at']} with `{meta['command']}` "
        f"({meta['seconds']:.0f} s; load average {before} before, {after} after).*"
    )


def table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def counts(numbers: dict[str, int]) -> str:
    """``{"delivered": 3, "dead": 1}`` as ``3 delivered, 1 dead``, most first."""
    return ", ".join(f"{n} {what}" for what, n in sorted(numbers.items(), key=lambda i: -i[1]))
