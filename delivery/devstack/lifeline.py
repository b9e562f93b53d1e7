"""Children that die with their parent, even when the parent is killed with SIGKILL.

A parent that is killed (``kill -9``, the OOM killer) runs no cleanup, so the
workers, beat and redis-server it started would run on, orphaned. On Linux
:func:`die_with_parent` returns a ``preexec_fn`` that asks the kernel
(``prctl(PR_SET_PDEATHSIG)``) to send the child SIGTERM when its parent dies:
a Celery worker then makes its warm shutdown (a send in flight finishes and is
recorded), beat and redis-server stop. Elsewhere it returns None and the
children are not tied to the parent: stop the parent with SIGTERM there, which
stops its children.

The signal follows the *thread* that started the child: start children from the
main thread (as ``delivery worker``, the demo and the tests do), or they die
when that thread ends.

Example::

    subprocess.Popen(argv, preexec_fn=die_with_parent())
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that gives the child ``signum`` when its parent dies; None off Linux.

    Raises:
        OSError: (in the parent, from ``Popen``) the kernel refused the request.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, in the parent: the child, between fork and exec, only calls it.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        if prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), signum)

    return arm
