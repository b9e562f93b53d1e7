"""Ledger size: what a chunk and a metrics scrape cost with a million messages behind them.

Two PostgreSQL ledgers, one empty and one holding :data:`HISTORY_MESSAGES`
delivered messages of :data:`HISTORY_CHUNKS` chunks, one accepted attempt each,
spread over the last :data:`HISTORY_DAYS` days (younger than retention's 30, so
nothing is pruned) and over :data:`HISTORY_CHATS` chats of the same account,
among them the burst's. The history is written by the server itself, three
``INSERT ... SELECT`` over ``generate_series``, its running totals (what the
ledger verbs would have counted) by one more, then ``VACUUM ANALYZE``, as
autovacuum would have done for a ledger that grew over weeks.

**Cost per chunk.** :func:`bench.cost.run_pipeline` on each ledger (one prefork
worker, no platform limit, no gaps): steady chunks per second, from the
simulator's arrival times; the best of :data:`REPEATS` runs per ledger.

**Scrape.** The exporter's collector (ledger only, no Redis) rendered as
Prometheus text, the median of :data:`SCRAPES` after two warm-ups. Next to it
the aggregates a scrape ran before the counters (messages and attempts grouped,
the latency histogram recounted), for scale.

**No scan of a big table.** On the million-message ledger, every statement of a
scrape, a reconciler run and a retention batch is captured and ``EXPLAIN``-ed
(any ``Seq Scan`` on ``messages``, ``chunks`` or ``attempts`` is listed); and
PostgreSQL's own counters (``pg_stat_user_tables``) say how many rows of those
tables were read by sequential scans while the worker sent the burst.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, event, text

from bench.cost import PipelineRun, run_pipeline
from bench.markdown import stamp, table
from bench.workload import ACCOUNT_ID, TOKEN
from delivery.ledger import accounts, retention
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.outbox import Armed
from delivery.ledger.states import MessageStatus
from delivery.ledger.types import utcnow
from delivery.monitoring import DeliveryCollector, SqlLedgerSource
from delivery.pipeline.reconcile import reconcile

__all__ = ["TITLE", "render", "run"]

HISTORY_MESSAGES = 1_000_000
HISTORY_CHUNKS = 2
HISTORY_DAYS = 29
HISTORY_CHATS = 10_000
REPEATS = 2
SCRAPES = 20
BIG_TABLES = ("messages", "chunks", "attempts")

# The history, written by PostgreSQL itself; :n messages, :chunks each, :days long.
_FILL = (
    """
    INSERT INTO messages (account_id, to_user_id, status, source, text_sha256, text_chars,
                          chunk_count, created_at, deadline_at, delivered_at, replay_count)
    SELECT :account, 'user' || (g % :chats) || '@im.wechat', 'delivered', 'history',
           repeat('0', 64), 3000, :chunks, t.at, t.at + interval '1 day',
           t.at + (g % 600) * interval '1 second', 0
    FROM generate_series(1, :n) AS g,
         LATERAL (SELECT now() - :days * interval '1 day' * (1 - g::float8 / :n) AS at) AS t
    """,
    """
    INSERT INTO chunks (message_id, seq, text, status, client_id, attempt_count, failure_count,
                        next_attempt_at, sent_at, last_outcome, generation)
    SELECT m.id, s, 'history part ' || s, 'sent', 'h-' || m.id || '-' || s, 1, 0,
           m.created_at, m.delivered_at, 'accepted', 1
    FROM messages AS m CROSS JOIN generate_series(1, :chunks) AS s
    WHERE m.source = 'history'
    """,
    """
    INSERT INTO attempts (chunk_id, attempt_no, started_at, duration_ms, http_status, ret,
                          outcome, used_context_token, worker_host)
    SELECT id, 1, sent_at, 40, 200, 0, 'accepted', false, 'history' FROM chunks
    """,
    # What the ledger verbs would have counted as these were delivered (shard 0).
    """
    INSERT INTO ledger_counters (metric, label, shard, n, total)
    SELECT 'messages', 'delivered', 0, COUNT(*), 0 FROM messages WHERE status = 'delivered'
    UNION ALL
    SELECT 'attempts', 'accepted', 0, COUNT(*), 0 FROM attempts WHERE outcome = 'accepted'
    UNION ALL
    SELECT 'delivery_latency', '+Inf', 0, COUNT(*),
           SUM(EXTRACT(EPOCH FROM delivered_at - created_at))
    FROM messages WHERE status = 'delivered'
    UNION ALL
    SELECT 'delivery_latency', b.label, 0,
           SUM(CASE WHEN EXTRACT(EPOCH FROM m.delivered_at - m.created_at) <= b.bound
               THEN 1 ELSE 0 END), 0
    FROM messages AS m CROSS JOIN (VALUES
        ('1.0', 1), ('5.0', 5), ('15.0', 15), ('30.0', 30), ('60.0', 60), ('120.0', 120),
        ('300.0', 300), ('600.0', 600), ('1800.0', 1800), ('3600.0', 3600),
        ('21600.0', 21600), ('86400.0', 86400)) AS b(label, bound)
    WHERE m.status = 'delivered'
    GROUP BY b.label
    ON CONFLICT (metric, label, shard) DO UPDATE
    SET n = ledger_counters.n + excluded.n, total = ledger_counters.total + excluded.total
    """,
)

# The big tables' unique constraints and other indexes (not their primary keys), to
# drop before the fill and make again after it, from their own definitions.
_UNIQUE_CONSTRAINTS = """
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint AS c
    WHERE c.contype = 'u' AND c.conrelid::regclass::text IN ('messages', 'chunks', 'attempts')
"""
_PLAIN_INDEXES = """
    SELECT x.indexrelid::regclass::text, pg_get_indexdef(x.indexrelid)
    FROM pg_index AS x
    WHERE x.indrelid::regclass::text IN ('messages', 'chunks', 'attempts')
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
"""

# What a scrape ran before the counters: every message and attempt, grouped.
_RECOUNT = (
    "SELECT status, COUNT(*) FROM messages GROUP BY status",
    "SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome",
    "SELECT COUNT(*), SUM(EXTRACT(EPOCH FROM delivered_at - created_at)), "  # noqa: S608 - constants
    + ", ".join(
        f"SUM(CASE WHEN EXTRACT(EPOCH FROM delivered_at - created_at) <= {b} THEN 1 ELSE 0 END)"
        for b in (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)
    )
    + " FROM messages WHERE status = 'delivered' AND delivered_at IS NOT NULL",
)


def _psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def fill(url: str, *, messages: int = HISTORY_MESSAGES) -> float:
    """Write the history into the ledger at ``url``; returns the seconds it took."""
    with session_scope(engine_for(url)) as db:
        accounts.store_account(
            db,
            ACCOUNT_ID,
            token=TOKEN,
            base_url="http://127.0.0.1:9",
            owns_inbound=None,
            ilink_user_id=None,
            now=utcnow(),
        )
    started = time.perf_counter()
    params = {
        "account": ACCOUNT_ID,
        "n": messages,
        "chunks": HISTORY_CHUNKS,
        "days": HISTORY_DAYS,
        "chats": HISTORY_CHATS,
    }
    with engine_for(url).begin() as connection:
        # Foreign keys hold by construction here: their per-row checks are skipped, and
        # the big tables' indexes are built once at the end rather than row by row.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        rebuild = []
        for table, name, definition in connection.execute(text(_UNIQUE_CONSTRAINTS)).all():
            connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
            rebuild.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for name, definition in connection.execute(text(_PLAIN_INDEXES)).all():
            connection.execute(text(f"DROP INDEX {name}"))
            rebuild.append(definition)
        for statement in _FILL:
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            connection.execute(text(statement), used)
        for statement in rebuild:
            connection.execute(text(statement))
    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def scrape_ms(url: str) -> list[float]:
    """Milliseconds of each of :data:`SCRAPES` scrapes (after two warm-ups)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(ledger=SqlLedgerSource(engine_for(url)), redis=None))
    times = []
    for _ in range(SCRAPES + 2):
        started = time.perf_counter()
        generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    return times[2:]


def recount_ms(url: str) -> float:
    """Milliseconds of the aggregates a scrape ran before the counters (median of 3)."""
    times = []
    with engine_for(url).connect() as connection:
        for _ in range(3):
            started = time.perf_counter()
            for statement in _RECOUNT:
                connection.execute(text(statement)).all()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextmanager
def _captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def seq_scans_in(url: str, work: Callable[[Engine], object]) -> dict[str, Any]:
    """``EXPLAIN`` every statement ``work`` runs; those planned as a scan of a big table."""
    engine = engine_for(url)
    with _captured(engine) as statements:
        work(engine)
    planned = 0
    scans = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            head = statement.lstrip().split(None, 1)[0].upper()
            if head not in ("SELECT", "UPDATE", "DELETE", "WITH", "INSERT"):
                continue
            if isinstance(parameters, list):  # an executemany: its plan is the first row's
                parameters = parameters[0] if parameters else None
            plan = "\n".join(
                row[0]
                for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters or None)
            )
            planned += 1
            scans += [
                {"table": table, "statement": " ".join(statement.split())[:300], "plan": plan}
                for table in BIG_TABLES
                if f"Seq Scan on {table} " in plan + " "
            ]
        connection.rollback()
    return {"statements": planned, "seq_scans": scans}


def _publish_nothing(armed: Sequence[Armed]) -> int:
    return 0


def _reconcile(engine: Engine) -> object:
    return reconcile(engine, _publish_nothing, grace_seconds=60.0)


def _retention_batch(engine: Engine) -> object:
    with session_scope(engine) as db:
        statuses = [MessageStatus.DELIVERED, MessageStatus.SUPERSEDED]
        before = utcnow() - dt.timedelta(days=30)
        return retention.prune_batch(db, before=before, statuses=statuses, limit=500)


def _table_scans(url: str) -> dict[str, tuple[int, int]]:
    """Sequential scans so far, and rows they read, of each big table."""
    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s)",
            (list(BIG_TABLES),),
        ).fetchall()
    return {name: (int(scans), int(read)) for name, scans, read in rows}


def _settled_table_scans(url: str) -> dict[str, tuple[int, int]]:
    """:func:`_table_scans` once the worker's backends have reported theirs (they report
    at most once a second while busy, within ten seconds when idle)."""
    time.sleep(11)
    return _table_scans(url)


def measure(history: int) -> dict[str, Any]:
    """The cost runs on a ledger holding ``history`` delivered messages, with its scrapes."""
    found: dict[str, Any] = {"history_messages": history, "runs": []}

    def prepare(url: str) -> None:
        if history:
            found["fill_seconds"] = fill(url, messages=history)
            print(f"  filled {history:,} messages in {found['fill_seconds']:.0f} s", flush=True)
        times = scrape_ms(url)
        found.setdefault("scrape_ms", []).extend(times)
        found["recount_ms"] = recount_ms(url)
        if history:
            found["explain"] = {
                "scrape": seq_scans_in(url, lambda e: SqlLedgerSource(e).read()),
                "reconcile": seq_scans_in(url, _reconcile),
                "retention": seq_scans_in(url, _retention_batch),
            }
        found["_scans_before"] = _table_scans(url)

    def inspect(url: str) -> None:
        before, after = found.pop("_scans_before"), _settled_table_scans(url)
        found.setdefault("burst_seq_scans", []).append(
            {t: [after[t][0] - before[t][0], after[t][1] - before[t][1]] for t in BIG_TABLES}
        )

    for _ in range(REPEATS):
        one: PipelineRun = run_pipeline("postgresql", prepare=prepare, inspect=inspect)
        found["runs"].append(asdict(one))
        print(
            f"  {one.steady_chunks_per_second:.1f} chunks/s steady "
            f"({1000 / one.steady_chunks_per_second:.2f} ms a chunk)",
            flush=True,
        )
    best = max(found["runs"], key=lambda r: r["steady_chunks_per_second"])
    found["chunks_per_second"] = best["steady_chunks_per_second"]
    found["ms_per_chunk"] = 1000 / best["steady_chunks_per_second"]
    found["scrape_ms_median"] = statistics.median(found["scrape_ms"])
    print(
        f"  scrape: median {found['scrape_ms_median']:.1f} ms "
        f"(the recount it replaces: {found['recount_ms']:.0f} ms)",
        flush=True,
    )
    return found


def run() -> dict[str, Any]:
    """An empty ledger, then one with the history, side by side."""
    print("ledger_size: an empty PostgreSQL ledger", flush=True)
    empty = measure(0)
    print(f"ledger_size: {HISTORY_MESSAGES:,} delivered messages already in it", flush=True)
    full = measure(HISTORY_MESSAGES)
    ratio = full["ms_per_chunk"] / empty["ms_per_chunk"]
    scans = [s for part in full["explain"].values() for s in part["seq_scans"]]
    print(
        f"ledger_size: cost per chunk {ratio:.2f}x the empty ledger's; "
        f"scrape {empty['scrape_ms_median']:.1f} -> {full['scrape_ms_median']:.1f} ms; "
        f"statements planned as a scan of a big table: {len(scans)}",
        flush=True,
    )
    return {
        "history": {
            "messages": HISTORY_MESSAGES,
            "chunks_per_message": HISTORY_CHUNKS,
            "days": HISTORY_DAYS,
            "chats": HISTORY_CHATS,
        },
        "repeats": REPEATS,
        "scrapes": SCRAPES,
        "empty": empty,
        "full": full,
        "cost_ratio": ratio,
    }


TITLE = "9. Ledger size"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    history = r["history"]
    empty, full = r["empty"], r["full"]
    rows = [
        [
            f"{side['history_messages']:,} delivered" if side["history_messages"] else "empty",
            f"{side['chunks_per_second']:.1f}",
            f"{side['ms_per_chunk']:.2f} ms",
            ", ".join(f"{run['steady_chunks_per_second']:.1f}" for run in side["runs"]),
            f"{side['scrape_ms_median']:.1f} ms",
            f"{side['recount_ms']:,.0f} ms",
        ]
        for side in (empty, full)
    ]
    head = [
        "ledger",
        "chunks/s (best)",
        "per chunk",
        "runs, chunks/s",
        "scrape, median",
        "the recount it replaces",
    ]
    planned = {part: found["statements"] for part, found in full["explain"].items()}
    scans = [s for found in full["explain"].values() for s in found["seq_scans"]]
    burst = full["burst_seq_scans"]
    read_by_scans = {t: sum(b[t][1] for b in burst) for t in burst[0]}
    fill = full.get("fill_seconds", 0.0)
    return f"""## {TITLE}

{stamp(r)}

Two PostgreSQL ledgers: one empty, one already holding {history["messages"]:,} delivered
messages of {history["chunks_per_message"]} chunks with one accepted attempt each (spread
over the last {history["days"]} days and {history["chats"]:,} chats of the burst's account,
its own chats among them), written by the server with `INSERT ... SELECT generate_series`
in {fill:.0f} s (indexes built after the rows; then `VACUUM ANALYZE`). On each, the
pipeline-cost burst (section 2: one prefork worker, no platform limit, no gaps), best of
{r["repeats"]} runs; and the exporter's ledger scrape, rendered as Prometheus text, median
of {r["scrapes"]}. *The recount it replaces*: the aggregates a scrape ran before the
running totals (`delivery.ledger.counters`), on the same ledger.

{table(head, rows)}

Cost per chunk with the history: **{r["cost_ratio"]:.2f}x** the empty ledger's.

No big table is scanned: on the full ledger, every statement of a scrape
({planned["scrape"]}), a reconciler run ({planned["reconcile"]}) and a retention batch
({planned["retention"]}) was `EXPLAIN`-ed, and {_planned_scans(len(scans))} as a
sequential scan of `messages`, `chunks` or `attempts`. While the worker sent the bursts, sequential
scans read {", ".join(f"{n:,} rows of `{t}`" for t, n in read_by_scans.items())}
(`pg_stat_user_tables`).
"""


def _planned_scans(count: int) -> str:
    return (
        "none was planned" if count == 0 else f"{count} {'was' if count == 1 else 'were'} planned"
    )
