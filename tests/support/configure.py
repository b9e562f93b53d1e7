"""This process's settings for one test: a runtime of its own, and the environment
of the processes the test starts.

A test never changes environment variables to configure this process: it asks for
``configure(name=value, ...)`` (setting names, as :func:`delivery.settings.load_settings`
takes them), which installs a :class:`~delivery.runtime.Runtime` built from the
session's settings plus every value given so far in the test; the previous runtime
comes back afterwards. A worker or relay the test starts gets the same settings
as environment variables (:func:`child_env`).

Example::

    def test_x(configure: Configure) -> None:
        configure(reader_limits=False)
        delivery.enqueue(...)                  # this process runs without reader limits
        start_worker(env=child_env())          # and so does the worker
"""

from __future__ import annotations

import os
from typing import Any

from delivery import runtime
from delivery.runtime import Runtime
from delivery.settings import ENV_PREFIX, Settings, as_env, load_settings

__all__ = ["Configure", "child_env"]


class Configure:
    """``configure(**values)``: see the module. :meth:`restore` at the end of the test."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._made: list[Runtime] = []
        self._previous = runtime.current()

    def __call__(self, **values: Any) -> Runtime:
        """Install a runtime of the session's settings plus ``values`` (and those given
        before in this test).

        Raises:
            ConfigError: a value is invalid, or a name is no setting.
        """
        self._values.update(values)
        made = Runtime(load_settings(**self._values))
        self._made.append(made)
        runtime.install(made)
        return made

    def from_environment(self) -> None:
        """This process reads its settings from the environment again, as a command
        started on its own does (the next :func:`delivery.runtime.current` makes one)."""
        runtime.install(None)

    def restore(self) -> None:
        """The runtime from before the test again; the test's runtimes closed."""
        left = runtime.install(self._previous)
        if left is not None and left is not self._previous and left not in self._made:
            left.close()  # made from the environment after from_environment()
        for made in self._made:
            made.close()
        self._made.clear()


def child_env(**variables: str) -> dict[str, str]:
    """The environment of a process this test starts: this process's environment
    without its settings' variables, the current runtime's settings as variables
    (:func:`delivery.settings.as_env`), then ``variables``."""
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(as_env(runtime.current().settings))
    env.update(variables)
    return env
