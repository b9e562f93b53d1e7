"""The account store on disk: where another process may leave a fresh token.

An agent that does its own QR login (the Hermes gateway keeps one JSON file per
account) can share it: point ``DELIVERY_ACCOUNT_STORE_DIR`` at a directory of
``<account_id>.json`` files holding ``{"token": "...", "base_url": "...",
"ilink_user_id": "..."}``. The session check reads the file of an expired
account and imports a token it has not seen. ``delivery login`` writes the file
too when the directory is set.

Whoever can write a store file can redirect an account's messages (its
``base_url``) and hand it a token of their choosing, so the store trusts only
what its own user alone can write: a directory or file that is group- or
world-writable, or owned by another user, is refused with an ERROR line naming
the path and the fix (``chmod go-w PATH``, ``chown``). A base URL that does change
is logged by :func:`delivery.api.account_admin.add_account` (from -> to).

Example::

    store = FileAccountStore(Path("/var/lib/agent/weixin"))
    credentials = store.load("bot-1")     # None when there is no (usable, trusted) file
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from delivery.errors import InvalidInput
from delivery.validation import validate_account_id

__all__ = ["FileAccountStore", "StoredCredentials", "untrusted_because"]

log = logging.getLogger(__name__)

# Write bits for the group and for others: either lets another user change the file.
_FOREIGN_WRITE_BITS = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class StoredCredentials:
    """A token and where to use it. The token never shows in a repr."""

    token: str = field(repr=False)
    base_url: str | None = None
    ilink_user_id: str | None = None


def untrusted_because(path: Path, status: os.stat_result, *, uid: int) -> str | None:
    """Why a store file or directory with this ``stat`` cannot be trusted; None when it can.

    Trusted means: owned by ``uid`` (this process's effective user) and writable by
    no group or other user.

    Example::

        untrusted_because(path, os.stat(path), uid=os.geteuid())
        # "/srv/store/bot-1.json is group- or world-writable (mode 0o666); fix: chmod go-w ..."
    """
    if status.st_uid != uid:
        return (
            f"{path} is owned by uid {status.st_uid}, not by this process's uid {uid}; "
            f"fix: chown {uid} {path} (and chmod go-w {path})"
        )
    if status.st_mode & _FOREIGN_WRITE_BITS:
        mode = oct(stat.S_IMODE(status.st_mode))
        return f"{path} is group- or world-writable (mode {mode}); fix: chmod go-w {path}"
    return None


class FileAccountStore:
    """One JSON file per account in ``directory``, trusted only when its user alone can write."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, account_id: str) -> Path:
        return self.directory / f"{validate_account_id(account_id)}.json"

    def load(self, account_id: str) -> StoredCredentials | None:
        """The account's stored credentials; None when missing, unusable or untrusted.

        An unusable file is a WARNING line; an untrusted one (see
        :func:`untrusted_because`) an ERROR line naming the path and the fix.
        """
        path = self.path(account_id)
        try:
            with path.open("rb") as handle:
                problem = self._untrusted(path, os.fstat(handle.fileno()))
                raw = b"" if problem else handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("account store: cannot read %s (%s)", path, type(exc).__name__)
            return None
        if problem:
            log.error(
                "account store: refusing %s: %s; whoever can write it could redirect the "
                "account's messages and token",
                path,
                problem,
            )
            return None
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            log.warning("account store: cannot read %s (%s)", path, type(exc).__name__)
            return None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token.strip():
            log.warning("account store: %s has no token", path)
            return None
        base_url = payload.get("base_url") or payload.get("baseurl")
        user = payload.get("ilink_user_id")
        return StoredCredentials(
            token=token.strip(),
            base_url=base_url if isinstance(base_url, str) and base_url else None,
            ilink_user_id=user if isinstance(user, str) and user else None,
        )

    def save(self, account_id: str, credentials: StoredCredentials) -> Path:
        """Write the account's file atomically, readable by its owner only.

        Raises:
            InvalidInput: the account id cannot name a file.
        """
        path = self.path(account_id)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = {
            "token": credentials.token,
            "base_url": credentials.base_url,
            "ilink_user_id": credentials.ilink_user_id,
        }
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(payload, out)
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
        return path

    def _untrusted(self, path: Path, status: os.stat_result) -> str | None:
        """The first reason the directory or the opened file cannot be trusted."""
        uid = os.geteuid()
        return untrusted_because(
            self.directory, os.stat(self.directory), uid=uid
        ) or untrusted_because(path, status, uid=uid)
