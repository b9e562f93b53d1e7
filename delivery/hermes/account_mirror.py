"""Hermes's Weixin account file, mirrored into delivery's account.

Hermes keeps its login in ``$HERMES_HOME/weixin/accounts/<id>.json`` (``token``,
``base_url``, ``user_id``, ``saved_at``) and rewrites it on a QR login. The
mirror reads that file (never writes it) and hands what it holds to
:func:`delivery.add_account`, with ``owns_inbound`` off (Hermes stays the one
``getupdates`` poller). It does so again whenever the file changes (its mtime,
size or content), so a Hermes re-login is a token rotation for delivery, which
wakes the sends parked on the expired session: one login heals both.

:meth:`AccountMirror.sync` is cheap when nothing changed (one ``stat``); the plugin
calls it before each send and each inbound event, and a daemon thread calls it
every ``DEFAULT_WATCH_INTERVAL_SECONDS`` so a re-login heals parked sends even
while Hermes sends nothing.

Example::

    mirror = AccountMirror(hermes_home=Path("~/.hermes").expanduser(),
                           hermes_account_id="bot@im.bot", delivery_account_id="bot@im.bot")
    mirror.sync()    # True when it wrote the account
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import delivery
from delivery.errors import DeliveryError
from delivery.ilink.protocol import DEFAULT_BASE_URL

__all__ = [
    "DEFAULT_WATCH_INTERVAL_SECONDS",
    "AccountMirror",
    "HermesAccount",
    "account_file",
    "read_account",
]

log = logging.getLogger(__name__)

# How often the watcher looks at the file: a re-login heals parked sends this soon.
DEFAULT_WATCH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class HermesAccount:
    """What Hermes's account file holds that delivery uses. The token never shows."""

    token: str = field(repr=False)
    base_url: str | None = None
    user_id: str | None = None


def account_file(hermes_home: Path, account_id: str) -> Path:
    """Where Hermes keeps the login of ``account_id``."""
    return hermes_home / "weixin" / "accounts" / f"{account_id}.json"


def read_account(path: Path) -> HermesAccount | None:
    """The account in Hermes's file at ``path``; None when it is missing, unreadable,
    or holds no token (Hermes writes it whole, with a rename, so a half file is
    not expected, only a missing one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    token = str(data.get("token") or "").strip()
    if not token:
        return None
    base_url = str(data.get("base_url") or "").strip().rstrip("/") or None
    user_id = str(data.get("user_id") or "").strip() or None
    return HermesAccount(token=token, base_url=base_url, user_id=user_id)


class AccountMirror:
    """Keeps delivery's account ``delivery_account_id`` equal to Hermes's file."""

    def __init__(
        self, *, hermes_home: Path, hermes_account_id: str, delivery_account_id: str
    ) -> None:
        self.path = account_file(hermes_home, hermes_account_id)
        self.delivery_account_id = delivery_account_id
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) last read
        self._mirrored: HermesAccount | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> bool:
        """Mirror the file if it changed since the last look; True when the account
        was written. A file delivery refuses (a malformed token) or a ledger that
        is down is logged and tried again on the next look."""
        with self._lock:
            try:
                status = self.path.stat()
            except OSError:
                return False
            # Hermes replaces the file (write, rename): a new inode even within one mtime tick.
            seen = (status.st_mtime_ns, status.st_size, status.st_ino)
            if seen == self._seen:
                return False
            account = read_account(self.path)
            if account is None:
                return False
            if account == self._mirrored:
                self._seen = seen
                return False
            try:
                delivery.add_account(
                    self.delivery_account_id,
                    token=account.token,
                    base_url=account.base_url or DEFAULT_BASE_URL,
                    owns_inbound=False,
                )
            except DeliveryError as exc:
                log.error(
                    "Hermes account file %s not mirrored into account %s: %s",
                    self.path,
                    self.delivery_account_id,
                    exc,
                )
                return False
            self._seen, self._mirrored = seen, account
            log.info(
                "account %s mirrored from Hermes's account file %s",
                self.delivery_account_id,
                self.path,
            )
            return True

    def watch(self, *, interval_seconds: float = DEFAULT_WATCH_INTERVAL_SECONDS) -> None:
        """Look at the file every ``interval_seconds`` in a daemon thread, until
        :meth:`stop`. Watching twice starts one thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.sync()
                except Exception:  # the watcher must outlive any one look
                    log.exception("Hermes account file %s: look failed", self.path)

        self._thread = threading.Thread(target=run, name="delivery-hermes-account", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
