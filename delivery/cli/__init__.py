"""The ``delivery`` command line. Each command group lives in its own module."""

from __future__ import annotations

from delivery.cli.main import cli, main

__all__ = ["cli", "main"]
