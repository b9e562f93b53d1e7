"""The migrations are the schema: they build it on both databases, and the models agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from delivery.errors import LedgerNotReady
from delivery.ledger.db import alembic_config, engine_for, ensure_ready, upgrade_head
from delivery.ledger.models import Base
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
