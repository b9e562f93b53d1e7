"""The account store on disk: where another process may leave a fresh token.

An agent that does its own QR login (the Hermes gateway keeps one JSON file per
account) can share it: point ``DELIVERY_ACCOUNT_STORE_DIR`` at a directory of
``<account_id>.json`` files holding ``{"token": "...", "base_url": "...",
"ilink_user_id": "..."}``. The session check reads the file of an expired
account and imports a token it has not seen. ``delivery login`` writes the file
too when the directory is set.

Example::

    store = FileAccountStore(Path("/var/lib/agent/weixin"))
    credentials = store.load("bot-1")     # None when there is no (usable) file
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from delivery.errors import InvalidInput
from delivery.validation import validate_account_id

__all__ = ["FileAccountStore", "StoredCredentials"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredCredentials:
    """A token and where to use it. The token never shows in a repr."""

    token: str = field(repr=False)
    base_url: str | None = None
    ilink_user_id: str | None = None


class FileAccountStore:
    """One JSON file per account in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, account_id: str) -> Path:
        return self.directory / f"{validate_account_id(account_id)}.json"

    def load(self, account_id: str) -> StoredCredentials | None:
        """The account's stored credentials; None (logged) when missing or unusable."""
        path = self.path(account_id)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
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
        self.directory.mkdir(parents=True, exist_ok=True)
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
