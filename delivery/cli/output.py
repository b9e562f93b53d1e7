"""Where the CLI prints: a terminal gets rich's layout, a pipe gets lines that do not wrap."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console"]

_PIPE_WIDTH = 1000  # wide enough that a table piped to grep keeps one row per line


def console() -> Console:
    """A console sized to the terminal, or unwrapped when output is not a terminal."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=_PIPE_WIDTH)
