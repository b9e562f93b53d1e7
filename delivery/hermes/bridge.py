"""What the plugin holds while Hermes runs: where Hermes lives, which account it
sends through, and one account mirror per Hermes account.

Example::

    bridge = get_bridge()
    bridge.use_account("bot@im.bot")    # the adapter knows its account
    bridge.mirror("bot@im.bot").sync()
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from delivery.hermes.account_mirror import AccountMirror
from delivery.hermes.outbound import delivery_account

__all__ = ["Bridge", "get_bridge", "hermes_home"]


def hermes_home() -> Path:
    """Hermes's home: what Hermes says when it is importable, else ``$HERMES_HOME``
    or ``~/.hermes`` (Hermes's own default)."""
    try:
        from hermes_constants import get_hermes_home
    except ImportError:
        return Path(os.environ.get("HERMES_HOME") or "~/.hermes").expanduser()
    return Path(get_hermes_home())


class Bridge:
    """The plugin's state in one Hermes process."""

    def __init__(self, *, home: Path | None = None, watch: bool = True) -> None:
        self._home = home
        self._watch = watch
        self._mirrors: dict[str, AccountMirror] = {}
        self._account: str | None = None
        self._lock = threading.Lock()

    @property
    def home(self) -> Path:
        return self._home if self._home is not None else hermes_home()

    def use_account(self, hermes_account_id: str) -> None:
        """Hermes's Weixin account is ``hermes_account_id`` (its adapter says so)."""
        if hermes_account_id:
            self._account = hermes_account_id

    def account(self) -> str | None:
        """Hermes's Weixin account: the adapter's, else ``WEIXIN_ACCOUNT_ID``."""
        return self._account or os.environ.get("WEIXIN_ACCOUNT_ID", "").strip() or None

    def mirror(self, hermes_account_id: str) -> AccountMirror:
        """The mirror of ``hermes_account_id``'s file (watched from its first use)."""
        with self._lock:
            mirror = self._mirrors.get(hermes_account_id)
            if mirror is None:
                mirror = AccountMirror(
                    hermes_home=self.home,
                    hermes_account_id=hermes_account_id,
                    delivery_account_id=delivery_account(hermes_account_id),
                )
                self._mirrors[hermes_account_id] = mirror
                if self._watch:
                    mirror.watch()
            return mirror

    def close(self) -> None:
        """Stop every watcher (tests; Hermes's process just exits)."""
        with self._lock:
            for mirror in self._mirrors.values():
                mirror.stop()
            self._mirrors.clear()


_bridge: Bridge | None = None
_bridge_lock = threading.Lock()


def get_bridge() -> Bridge:
    """This process's bridge, made on first use."""
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            _bridge = Bridge()
        return _bridge
