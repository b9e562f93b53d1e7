"""Engines, sessions and the schema check: the ledger's boundary with SQLAlchemy.

Connectivity errors from the database are translated here, and only here, into
:class:`~delivery.errors.LedgerError`. Engines hide SQL parameters from exception
text, because parameters include tokens and message text.

SQLite (the embedded default) runs in WAL mode with ``BEGIN IMMEDIATE``, so that
several processes (a worker, beat, the CLI) queue for the write lock instead of
failing when one upgrades a read to a write. PostgreSQL is the choice for
several hosts.

Example::

    engine = engine_for("sqlite:///delivery.sqlite3")
    with session_scope(engine) as session:
        session.add(...)
    # committed here; rolled back if the block raised
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from delivery.errors import ConfigError, LedgerError, LedgerNotReady

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "engine_for",
    "ensure_ready",
    "redact_url",
    "session_scope",
    "upgrade_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0  # how long a writer queues for SQLite's lock
_READONLY = "delivery_readonly"  # execution option of a read-only session

_ready_lock = threading.Lock()
_ready: set[str] = set()


def redact_url(url: str) -> str:
    """A database or Redis URL fit for a log line: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable url>"


@functools.cache
def engine_for(url: str) -> Engine:
    """The process-wide engine for ``url`` (created on first use).

    Raises:
        ConfigError: the URL cannot be parsed or names no installed driver.
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(f"DELIVERY_DATABASE_URL is not a database URL: {exc}") from None
    options: dict[str, Any] = {"hide_parameters": True, "future": True}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
            "check_same_thread": False,
        }
    else:
        options.update(pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=1800)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver this project installs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, **options)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise ConfigError(f"DELIVERY_DATABASE_URL cannot be used: {exc}") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A reader takes no write lock: WAL lets it read while a writer writes.
        readonly = connection.get_execution_options().get(_READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


@functools.cache
def _sessionmaker(engine: Engine, readonly: bool) -> sessionmaker[Session]:
    bind = engine.execution_options(**{_READONLY: True}) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(
    engine: Engine, *, readonly: bool = False, hint: bool = False
) -> Iterator[Session]:
    """A transaction: commit when the block ends, roll back if it raises.

    ``readonly`` is a promise not to write: on SQLite it starts a plain
    (deferred) transaction that takes no write lock, so readers (status,
    metrics, a send's first look at the ledger) never queue behind writers.

    ``hint`` says the writes may be lost in a database *crash* without harm,
    because the reconciler redoes them (arming a head after an enqueue): on
    PostgreSQL the commit then does not wait for its WAL flush
    (``synchronous_commit = off`` for this transaction, about 1.5 ms saved). The
    database stays consistent; only the last moments' hints can be lost.

    Raises:
        LedgerNotReady: the schema is missing (run ``delivery db upgrade``).
        LedgerError: the database is unreachable or refused the transaction.
    """
    ensure_ready(engine)
    session = _sessionmaker(engine, readonly)()
    try:
        if hint and engine.dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        yield session
        session.commit()
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.ProgrammingError) as exc:
        session.rollback()
        raise _translate(exc, engine) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _translate(exc: sa_exc.DBAPIError, engine: Engine) -> LedgerError:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    where = engine.url.render_as_string(hide_password=True)
    # SQLite says "no such table"; PostgreSQL raises SQLSTATE 42P01 (undefined_table).
    if "no such table" in text or getattr(exc.orig, "sqlstate", None) == "42P01":
        return LedgerNotReady(f"the ledger at {where} has no schema; run `delivery db upgrade`")
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc.orig).__name__
    return LedgerError(f"the ledger at {where} failed: {first_line}")


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` for ``url`` that finds the project's migrations."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise LedgerNotReady(
            f"migrations not found at {MIGRATIONS_DIR}; install from a checkout (pip install -e .)"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on a '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_head(url: str) -> None:
    """Bring the database at ``url`` to the newest migration (``alembic upgrade head``)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    with _ready_lock:
        _ready.discard(url)


def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def ensure_ready(engine: Engine) -> None:
    """Check once per process that the schema is at the migration head.

    Raises:
        LedgerNotReady: no schema, or an older one; the message says what to run.
        LedgerError: the database cannot be reached to check.
    """
    key = engine.url.render_as_string(hide_password=False)
    if key in _ready:
        return
    with _ready_lock:
        if key in _ready:
            return
        try:
            with engine.connect() as connection:
                current = None
                if inspect(connection).has_table("alembic_version"):
                    current = connection.scalar(text("SELECT version_num FROM alembic_version"))
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise _translate(exc, engine) from exc
        head = _head_revision() if MIGRATIONS_DIR.exists() else current
        where = redact_url(key)
        if current is None:
            raise LedgerNotReady(f"the ledger at {where} has no schema; run `delivery db upgrade`")
        if current != head:
            raise LedgerNotReady(
                f"the ledger at {where} is at migration {current}, the code expects {head}; "
                "run `delivery db upgrade`"
            )
        _ready.add(key)
