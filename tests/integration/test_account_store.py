"""The account store trusts only what its own user alone can write, and a base URL
never changes without a log line.

Whoever can write a store file can point an account at another host (every
message and the new token would go there), so a group- or world-writable file
or directory, or one owned by another user, is refused, naming the path and the
fix. The session check imports through the real store, simulator and ledger.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import delivery
from delivery.ilink.pool import ClientPool
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account
from delivery.sessions.alerts import Alerter
from delivery.sessions.check import SessionChecker
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.simulator import PlatformSimulator
from tests.conftest import Ledger
from tests.support.inprocess import Published

OLD_TOKEN = "tok-test-0000-secret-OLD"
NEW_TOKEN = "tok-test-0000-secret-NEW"
NOBODY = 65534


@pytest.fixture
def store(tmp_path: Path) -> FileAccountStore:
    """A store as its owner makes it: a private directory, files written by ``save``."""
    return FileAccountStore(tmp_path / "store")


def test_a_private_store_file_is_read(store: FileAccountStore) -> None:
    store.save("bot-1", StoredCredentials(token=NEW_TOKEN, base_url="https://a.example"))

    loaded = store.load("bot-1")

    assert loaded == StoredCredentials(token=NEW_TOKEN, base_url="https://a.example")
    assert oct(store.directory.stat().st_mode & 0o777) == "0o700"
    assert oct(store.path("bot-1").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["group", "world", "both"])
def test_a_store_file_others_can_write_is_refused_naming_the_fix(
    store: FileAccountStore, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    # Given a store file that its group or anyone may write
    path = store.save("bot-1", StoredCredentials(token=NEW_TOKEN, base_url="https://evil.example"))
    path.chmod(mode)

    # When it is loaded
    with caplog.at_level(logging.ERROR, logger="delivery.sessions.store"):
        loaded = store.load("bot-1")

    # Then nothing is taken from it, and the ERROR line names the path and the fix
    assert loaded is None
    assert f"refusing {path}" in caplog.text
    assert f"chmod go-w {path}" in caplog.text
    assert NEW_TOKEN not in caplog.text


def test_a_store_directory_others_can_write_is_refused(
    store: FileAccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a private file in a directory anyone may write (they could replace it)
    store.save("bot-1", StoredCredentials(token=NEW_TOKEN))
    store.directory.chmod(0o777)

    with caplog.at_level(logging.ERROR, logger="delivery.sessions.store"):
        loaded = store.load("bot-1")

    assert loaded is None
    assert f"{store.directory} is group- or world-writable (mode 0o777)" in caplog.text
    assert f"chmod go-w {store.directory}" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_store_file_owned_by_another_user_is_refused(
    store: FileAccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    path = store.save("bot-1", StoredCredentials(token=NEW_TOKEN))
    os.chown(path, NOBODY, NOBODY)

    with caplog.at_level(logging.ERROR, logger="delivery.sessions.store"):
        loaded = store.load("bot-1")

    assert loaded is None
    assert f"{path} is owned by uid {NOBODY}, not by this process's uid 0" in caplog.text


# -- through the session check: the real path a stored token and base URL take ----------


def checker(ledger: Ledger, store: FileAccountStore) -> SessionChecker:
    return SessionChecker(
        engine=ledger.engine,
        clients=ClientPool(timeout_seconds=2),
        gate=None,
        store=store,
        alerter=Alerter(webhook_url=None, callback=None),
        publisher=Published(),
    )


def ledger_account(ledger: Ledger) -> tuple[str, str]:
    with session_scope(engine_for(ledger.url)) as session:
        row = session.get(Account, "bot-1")
        assert row is not None
        return row.token, row.base_url


def expired_account_with_a_fresh_store_file(
    simulator: PlatformSimulator, store: FileAccountStore, *, stored_base_url: str
) -> Path:
    """The ledger's token is expired; the store holds the new one and another base URL."""
    simulator.model.register_account("bot-1", token=NEW_TOKEN)
    delivery.add_account("bot-1", token=OLD_TOKEN, base_url=simulator.base_url)
    return store.save("bot-1", StoredCredentials(token=NEW_TOKEN, base_url=stored_base_url))


def test_a_base_url_changed_from_the_store_is_logged_from_and_to(
    sqlite_ledger: Ledger,
    sim: PlatformSimulator,
    store: FileAccountStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an expired account and a trusted store file naming another base URL
    moved = sim.base_url.replace("127.0.0.1", "localhost")
    expired_account_with_a_fresh_store_file(sim, store, stored_base_url=moved)

    # When the session check heals it from the store
    with caplog.at_level(logging.INFO, logger="delivery"):
        result = checker(sqlite_ledger, store).check("bot-1")

    # Then the new token and base URL are in use, and a WARNING says from -> to
    assert result.action == "healed"
    assert ledger_account(sqlite_ledger) == (NEW_TOKEN, moved)
    changed = [r for r in caplog.records if "base URL changed" in r.getMessage()]
    assert [r.levelno for r in changed] == [logging.WARNING]
    assert changed[0].getMessage() == (
        f"account bot-1: base URL changed from {sim.base_url} to {moved} by the account store"
    )


def test_an_untrusted_store_file_changes_nothing(
    sqlite_ledger: Ledger,
    sim: PlatformSimulator,
    store: FileAccountStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the same store file, but world-writable
    path = expired_account_with_a_fresh_store_file(
        sim, store, stored_base_url="http://attacker.invalid"
    )
    path.chmod(0o666)

    # When the session check runs
    with caplog.at_level(logging.INFO, logger="delivery"):
        result = checker(sqlite_ledger, store).check("bot-1")

    # Then the account stays expired on its own token and base URL; the log says why
    assert result.action == "expired"
    assert ledger_account(sqlite_ledger) == (OLD_TOKEN, sim.base_url)
    assert f"refusing {path}" in caplog.text
    assert "base URL changed" not in caplog.text
    assert json.loads(path.read_text())["base_url"] == "http://attacker.invalid"
