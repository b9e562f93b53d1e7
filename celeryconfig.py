"""The project's Celery configuration under its conventional top-level name.

A thin re-export of :mod:`delivery.celeryconfig`, which is what the app loads (by
that module path, so a stray ``celeryconfig.py`` in a working directory is
never used). Kept for tools that look for ``celeryconfig`` by name.
"""

from __future__ import annotations

from delivery.celeryconfig import *  # noqa: F403
