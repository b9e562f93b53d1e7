"""The Celery application. ``celery -A delivery worker`` finds it as ``delivery.app``.

Every worker of the app runs the liveness watchdog (:mod:`delivery.worker.liveness`).
"""

from __future__ import annotations

from celery import Celery

from delivery.worker.liveness import WatchdogStep

__all__ = ["app", "use_broker_url"]

app = Celery("delivery", include=["delivery.worker.tasks"])
# By its module path: a bare "celeryconfig" would find a stray file in the working
# directory first (Celery's command line puts it on sys.path) and take its broker.
app.config_from_object("delivery.celeryconfig")
app.steps["worker"].add(WatchdogStep)


def use_broker_url(url: str) -> None:
    """Point this process's publishing at another broker (the demo's own Redis).

    The app caches its connection and producer pools; they are dropped so the
    next publish connects to ``url``. Kombu keeps pools per URL, so the old ones
    are left open for whoever else uses them.
    """
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None
