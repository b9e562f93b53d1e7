"""Celery configuration of ``delivery``, read by ``delivery.worker.app`` by its module path.

The app loads ``delivery.celeryconfig``, never a bare ``celeryconfig``: Celery's
command line puts the working directory first on ``sys.path``, so a stray
``celeryconfig.py`` there would otherwise be run and its broker URL taken. The
top-level ``celeryconfig.py`` only re-exports this module.

Values come from the settings (``DELIVERY_*`` environment variables), read when
Celery first looks at its configuration; :func:`delivery.worker.configuration.celery_config`
says how Celery uses them, here and for every publishing app.
"""

from __future__ import annotations

from delivery.settings import load_settings
from delivery.worker.configuration import celery_config

globals().update(celery_config(load_settings()))
