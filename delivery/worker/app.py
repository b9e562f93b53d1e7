"""The Celery application. ``celery -A delivery worker`` finds it as ``delivery.app``.

Every worker of the app runs the liveness watchdog (:mod:`delivery.worker.liveness`).
It is configured from the environment once, and the runtime a process makes from
that environment publishes through it; a runtime built from other settings publishes
through an app of its own (:func:`delivery.worker.configuration.publishing_app`), so a
process may publish on another broker without touching this one.
"""

from __future__ import annotations

from celery import Celery

from delivery import runtime
from delivery.worker.liveness import WatchdogStep

__all__ = ["app"]

app = Celery("delivery", include=["delivery.worker.tasks"])
# By its module path: a bare "celeryconfig" would find a stray file in the working
# directory first (Celery's command line puts it on sys.path) and take its broker.
app.config_from_object("delivery.celeryconfig")
app.steps["worker"].add(WatchdogStep)
# The runtime this process makes from its environment publishes through this app.
runtime.use_process_app(app)
