"""The migrations are the schema: they build it on both databases, and the models agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect

from delivery.errors import LedgerNotReady
from delivery.ledger import counters
from delivery.ledger.db import (
    alembic_config,
    engine_for,
    ensure_ready,
    session_scope,
    upgrade_head,
)
from delivery.ledger.models import Account, Attempt, Base, Chunk, Message
from tests.support import services


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        yield url
        engine_for(url).dispose()
        return
    services.postgres_available()
    with services.temporary_pg_database() as url:
        yield url
        engine_for(url).dispose()


def test_upgrade_head_builds_the_schema_the_models_describe(empty_database: str) -> None:
    upgrade_head(empty_database)
    with engine_for(empty_database).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_downgrade_to_base_and_back_up(empty_database: str) -> None:
    upgrade_head(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    tables = set(inspect(engine_for(empty_database)).get_table_names()) - {"alembic_version"}
    assert tables == set()
    upgrade_head(empty_database)
    assert {"accounts", "messages", "chunks", "attempts", "readers"} <= set(
        inspect(engine_for(empty_database)).get_table_names()
    )


def test_an_unmigrated_database_is_refused_with_the_command_to_run(empty_database: str) -> None:
    with pytest.raises(LedgerNotReady, match="run `delivery db upgrade`"):
        ensure_ready(engine_for(empty_database))


def test_upgrading_counts_the_outcomes_already_in_the_ledger(empty_database: str) -> None:
    # Given a ledger at 0009 holding delivered, dead and queued messages, and attempts
    command.upgrade(alembic_config(empty_database), "0009")
    engine = engine_for(empty_database)
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    message = {
        "account_id": "bot-1",
        "to_user_id": "u1",
        "text_sha256": "0" * 64,
        "text_chars": 1,
        "chunk_count": 1,
        "deadline_at": now,
        "replay_count": 0,
    }
    ended = [("delivered", 4), ("delivered", 200), ("delivered", 90000), ("dead", None)]
    with engine.begin() as connection:
        connection.execute(insert(Account), [{"id": "bot-1", "base_url": "x", "token": "t"}])
        connection.execute(
            insert(Message),
            [
                {
                    **message,
                    "id": number,
                    "status": status,
                    "created_at": now - dt.timedelta(seconds=seconds or 1),
                    "delivered_at": now if seconds else None,
                }
                for number, (status, seconds) in enumerate([*ended, ("queued", None)], start=1)
            ],
        )
        connection.execute(
            insert(Chunk),
            [
                {"id": n, "message_id": n, "seq": 1, "text": "x", "client_id": f"c{n}"}
                for n in range(1, 6)
            ],
        )
        outcomes = ["accepted", "accepted", "transient", "accepted", "permanent", "in_flight"]
        connection.execute(
            insert(Attempt),
            [
                {"chunk_id": min(n, 5), "attempt_no": n, "outcome": outcome}
                for n, outcome in enumerate(outcomes, start=1)
            ],
        )

    # When it is upgraded
    upgrade_head(empty_database)

    # Then the running totals start from what the rows say (in_flight is read live)
    with session_scope(engine, readonly=True) as db:
        totals = counters.read_totals(db)
    engine.dispose()
    latency = {label: n for (metric, label), (n, _) in totals.items() if metric == counters.LATENCY}
    assert {k: v for k, v in totals.items() if k[0] != counters.LATENCY} == {
        ("messages", "delivered"): (3, 0.0),
        ("messages", "dead"): (1, 0.0),
        ("attempts", "accepted"): (3, 0.0),
        ("attempts", "transient"): (1, 0.0),
        ("attempts", "permanent"): (1, 0.0),
    }
    assert totals[(counters.LATENCY, counters.TOTAL_LABEL)] == (3, pytest.approx(90204))
    assert latency["1.0"] == 0
    assert latency["5.0"] == 1
    assert latency["300.0"] == 2
    assert latency["86400.0"] == 2
