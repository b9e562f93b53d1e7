"""Pipeline cost: what one chunk costs in the pipeline, next to a plain ``requests`` loop.

**Throughput.** After a small warm-up, a burst (120 messages, 411 chunks, 30 chats)
goes through one send worker as the README runs it (prefork, concurrency 1,
prefetch 1, events on, log level WARNING) to a simulator with no limit; the account
rate is set very high and every chunk gap to 0, all other settings at their
defaults. Chunks per second is taken from the simulator's arrival times, first to
last accepted chunk (the steady state); the end-to-end figure also counts the
``enqueue_many`` call and the first chunk's latency. The best of
:data:`THROUGHPUT_REPEATS` runs is reported. The *plain loop*
(:mod:`bench.plain_loop`) sends the same texts with one ``ILinkClient`` in its own
process. Both on SQLite and PostgreSQL.

**Where the time goes.** The same burst again through a worker with ``--pool solo``
(tasks in the main thread), its stack sampled about every millisecond with wall and
CPU time (:mod:`bench.profiled_worker`); :mod:`bench.profile_split` sorts the
samples into HTTP, SQL, the account gate, publishing the next chunk, Celery and the
rest, and counts SQL statements and commits per chunk.

**Memory.** Peak RSS (``VmHWM``) of the prefork worker's main process and of its
pool child, read just before it stops.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import delivery
from bench.common import QUIET, Backend, ledger_probe, peak_rss_kib, scratch_dir
from bench.markdown import stamp, table
from bench.profile_split import CATEGORIES, IDLE, Split, split_profile
from bench.workload import ACCOUNT_ID, TOKEN, Briefing, briefings
from delivery.devstack.stack import local_stack
from delivery.simulator import PlatformSimulator
from delivery.worker.queues import SEND_QUEUE

__all__ = ["TITLE", "PipelineRun", "render", "run", "run_pipeline", "run_plain_loop", "workload"]

MESSAGES, CHATS, SEED = 120, 30, 7
# A cron burst where every message starts a chat of its own: 120 readers, 1 to 3 parts
# each. Before the line handed slots on, first parts slept on estimated turns here.
MANY_CHATS = {"messages": 120, "chats": 120, "seed": 11, "max_chunks": 3}
WARMUP_MESSAGES = 4  # sent and waited for first: imports, connections, statement caches
LOOP_REPEATS = 3
# Other work on the machine only ever slows a run down: the best of a few is reported.
THROUGHPUT_REPEATS = 2
DONE_TIMEOUT_SECONDS = 180.0
# No limit and no gaps: the account rate far above anything one worker reaches.
UNLIMITED = {
    "DELIVERY_SEND_RATE_PER_MINUTE": "6000000",
    "DELIVERY_SEND_BURST": "1000",
    "DELIVERY_CHUNK_GAP_SECONDS": "0",
    "DELIVERY_CHUNK_GAP_BASE_SECONDS": "0",
    "DELIVERY_CHUNK_GAP_PER_CHUNK_SECONDS": "0",
}


def workload() -> list[Briefing]:
    """The cost benchmark's burst (the plain loop sends the same texts)."""
    return briefings(messages=MESSAGES, chats=CHATS, seed=SEED)


@dataclass(frozen=True)
class PipelineRun:
    """One burst through one worker; seconds are real."""

    backend: str
    pool: str
    chunks: int
    enqueue_seconds: float
    first_accept_seconds: float  # after enqueue_many returned
    steady_chunks_per_second: float
    end_to_end_chunks_per_second: float
    peak_rss_kib: dict[str, int]
    measured_since: float  # time.monotonic() when the measured burst was enqueued
    max_gap_ms: float = 0.0  # the longest time between two sends of the burst
    p99_gap_ms: float = 0.0


def _wait_accepted(simulator: PlatformSimulator, count: int) -> list[float]:
    """Wait until ``count`` chunks were accepted in all; their arrival times, sorted."""
    deadline = time.monotonic() + DONE_TIMEOUT_SECONDS
    while True:
        snapshot = simulator.model.snapshot()
        if snapshot.counters.accepted >= count:
            return sorted(m.arrived_at for ms in snapshot.messages.values() for m in ms)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {snapshot.counters.accepted} of {count} chunks arrived")
        time.sleep(0.02)


def _outbound(batch: list[Briefing]) -> list[delivery.OutboundMessage]:
    return [delivery.OutboundMessage(ACCOUNT_ID, b.to_user_id, b.text) for b in batch]


def run_pipeline(
    backend: Backend,
    *,
    pool: str = "prefork",
    profile: Path | None = None,
    prepare: Callable[[str], None] | None = None,
    inspect: Callable[[str], None] | None = None,
    batch: list[Briefing] | None = None,
) -> PipelineRun:
    """A warm-up, then the burst (``batch``, the cost burst by default) through one
    worker; with ``profile``, under the sampler.

    ``prepare`` gets the new ledger's URL before the worker starts (to fill it), and
    ``inspect`` after the burst's last commit, before anything is stopped.
    """
    batch = workload() if batch is None else batch
    warmup = briefings(messages=WARMUP_MESSAGES, chats=2, seed=1)
    chunks = sum(len(b.chunks) for b in batch)
    warm_chunks = sum(len(b.chunks) for b in warmup)
    with (
        scratch_dir(f"cost-{backend}") as workdir,
        local_stack(workdir, settings=UNLIMITED, ledger=backend) as stack,
    ):
        simulator, database_url = stack.simulator, stack.database_url
        if prepare is not None:
            prepare(database_url)
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        wrapper = ["-m", "bench.profiled_worker", str(profile)] if profile else None
        worker = stack.start_worker(
            queues=SEND_QUEUE, log_name="worker", loglevel=QUIET, pool=pool, wrapper=wrapper
        )
        delivery.enqueue_many(_outbound(warmup))
        _wait_accepted(simulator, warm_chunks)
        started = time.monotonic()
        delivery.enqueue_many(_outbound(batch))
        enqueued = time.monotonic()
        arrivals = [t for t in _wait_accepted(simulator, warm_chunks + chunks) if t >= started]
        probe = ledger_probe(stack)
        while probe.open_messages():  # the last commit
            time.sleep(0.02)
        if inspect is not None:
            inspect(database_url)
        peaks = peak_rss_kib(worker.pid)
        roles = {"main": peaks.pop(worker.pid, 0)}
        if peaks:
            roles["pool child"] = max(peaks.values())
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    return PipelineRun(
        backend=backend,
        pool=pool,
        chunks=len(arrivals),
        enqueue_seconds=enqueued - started,
        first_accept_seconds=arrivals[0] - enqueued,
        steady_chunks_per_second=(len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
        end_to_end_chunks_per_second=len(arrivals) / (arrivals[-1] - started),
        peak_rss_kib=roles,
        measured_since=started,
        max_gap_ms=1000 * gaps[-1],
        p99_gap_ms=1000 * gaps[min(len(gaps) - 1, round(0.99 * len(gaps)))],
    )


def run_plain_loop() -> dict[str, float]:
    """The same sends from one ILinkClient in a loop, best and median of a few runs."""
    chunks = sum(len(b.chunks) for b in workload())
    rates = []
    for _ in range(LOOP_REPEATS):
        with PlatformSimulator() as simulator:
            simulator.model.register_account(ACCOUNT_ID, token=TOKEN)
            argv = [sys.executable, "-m", "bench.plain_loop", simulator.base_url, TOKEN]
            out = subprocess.run([*argv, str(chunks)], check=True, capture_output=True, text=True)
            result = json.loads(out.stdout)
            rates.append(result["chunks"] / result["seconds"])
    return {
        "chunks": chunks,
        "median_chunks_per_second": statistics.median(rates),
        "best_chunks_per_second": max(rates),
    }


def run() -> dict[str, Any]:
    """The plain loop, then throughput (best of a few) and profile on both backends."""
    with scratch_dir("profiles") as profiles:
        return _run(profiles)


def _run(profiles: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "workload": {"messages": MESSAGES, "chats": CHATS, "seed": SEED},
        "many_chats_workload": MANY_CHATS,
    }
    print("cost: plain requests loop ...", flush=True)
    result["plain_loop"] = run_plain_loop()
    print(f"  {result['plain_loop']['median_chunks_per_second']:.0f} chunks/s", flush=True)
    backends: list[Backend] = ["sqlite", "postgresql"]
    for backend in backends:
        print(f"cost: pipeline on {backend} ...", flush=True)
        runs = []
        for _ in range(THROUGHPUT_REPEATS):
            runs.append(run_pipeline(backend))
            print(
                f"  {runs[-1].steady_chunks_per_second:.1f} chunks/s steady, "
                f"{runs[-1].end_to_end_chunks_per_second:.1f} end to end; "
                f"peak RSS {runs[-1].peak_rss_kib} KiB",
                flush=True,
            )
        best = max(runs, key=lambda r: r.steady_chunks_per_second)
        print(f"cost: a burst of {MANY_CHATS['chats']} chats on {backend} ...", flush=True)
        many = run_pipeline(backend, batch=briefings(**MANY_CHATS))
        print(
            f"  {many.chunks} parts, {many.steady_chunks_per_second:.1f} chunks/s; longest gap "
            f"between two sends {many.max_gap_ms:.0f} ms (p99 {many.p99_gap_ms:.0f} ms)",
            flush=True,
        )
        print(f"cost: profiling the pipeline on {backend} (solo pool, stack sampling) ...")
        profile = profiles / f"{backend}-samples.json"
        profiled = run_pipeline(backend, pool="solo", profile=profile)
        split = split_profile(profile, chunks=profiled.chunks, since=profiled.measured_since)
        print(_split_text(split), flush=True)
        result[backend] = {
            "throughput": asdict(best),
            "throughput_runs": [asdict(r) for r in runs],
            "many_chats": asdict(many),
            "profiled": asdict(profiled),
            "split": asdict(split)
            | {"busy_wall_ms": split.busy_wall_ms, "busy_cpu_ms": split.busy_cpu_ms},
        }
    return result


def _split_text(split: Split) -> str:
    parts = ", ".join(
        f"{name} {ms:.1f}/{split.cpu_ms_per_chunk[name]:.1f}"
        for name, ms in split.wall_ms_per_chunk.items()
    )
    return (
        f"  per chunk, ms wall/CPU (busy {split.busy_wall_ms:.1f}/{split.busy_cpu_ms:.1f}): {parts}"
        f"\n  per chunk: {split.statements_per_chunk:.2f} statements (and "
        f"{split.transaction_control_per_chunk:.2f} BEGIN), {split.commits_per_chunk:.2f} "
        f"commits, {split.task_runs_per_chunk:.3f} task runs"
    )


TITLE = "2. Pipeline cost"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    loop = r["plain_loop"]
    repeats = max(
        (len(r[b].get("throughput_runs", [])) for b in ("sqlite", "postgresql") if b in r),
        default=1,
    )
    rows = [
        [
            "plain loop (`ILinkClient`, one session)",
            "—",
            f"{loop['median_chunks_per_second']:.0f}",
            "—",
            f"{1000 / loop['median_chunks_per_second']:.1f}",
        ]
    ]
    splits = []
    for backend in ("sqlite", "postgresql"):
        if backend not in r:
            continue
        for key, what in (
            ("throughput", "prefork, as run in production"),
            ("profiled", "solo pool, sampled"),
        ):
            run = r[backend][key]
            rows.append(
                [
                    f"pipeline, 1 worker ({what})",
                    backend,
                    f"{run['steady_chunks_per_second']:.1f}",
                    f"{run['end_to_end_chunks_per_second']:.1f}",
                    f"{1000 / run['steady_chunks_per_second']:.1f}",
                ]
            )
        splits.append((backend, r[backend]["split"]))
    split_rows = []
    for name in (*CATEGORIES, IDLE):
        row = [name if name != IDLE else "idle (waiting for the next task)"]
        for _, split in splits:
            wall, cpu = split["wall_ms_per_chunk"][name], split["cpu_ms_per_chunk"][name]
            share = f" ({wall / split['busy_wall_ms']:.0%})" if name != IDLE else ""
            row += [f"{wall:.1f}{share}", f"{cpu:.1f}"]
        split_rows.append(row)
    busy = ["**busy total**"]
    for _, split in splits:
        busy += [f"**{split['busy_wall_ms']:.1f}**", f"**{split['busy_cpu_ms']:.1f}**"]
    split_rows.append(busy)
    split_head = ["per chunk, ms"]
    for backend, _ in splits:
        split_head += [f"{backend} wall", f"{backend} CPU"]
    sql_rows = [
        [
            backend,
            f"{split['statements_per_chunk']:.1f}",
            f"{split['commits_per_chunk']:.1f}",
            ", ".join(f"`{site}` {ms:.1f}" for site, ms in split["top_sql_sites"][:6]),
        ]
        for backend, split in splits
    ]
    statements = splits[0][1]["top_statements"] if splits else []
    statement_lines = "\n".join(f"- {n:.1f} × `{text}…`" for text, n in statements)
    rss_rows = []
    for backend in ("sqlite", "postgresql"):
        if backend in r:
            peaks = r[backend]["throughput"]["peak_rss_kib"]
            rss_rows.append(
                [backend] + [f"{peaks.get(k, 0) / 1024:.0f} MiB" for k in ("main", "pool child")]
            )
    return f"""## {TITLE}

{stamp(r)}

One send worker, a simulator with no limit (no latency), the account rate set far above
reach and every chunk gap 0, all other settings at their defaults; a burst of
{r["workload"]["messages"]} messages ({loop["chunks"]} chunks) for {r["workload"]["chats"]}
chats after a small warm-up. *Steady* chunks per second is the simulator's count from
the first to the last accepted chunk; *end to end* includes `enqueue_many` and the first
chunk's latency; the prefork figure is the best of {repeats} runs (other work on
the machine only slows runs down). The plain loop sends the same texts from its own
process (median of 3). Real seconds; no compression.

{table(["path", "ledger", "chunks/s steady", "chunks/s end to end", "ms per chunk"], rows)}

**Where a chunk's time goes.** The profiled run is the same burst through a worker with
`--pool solo` (tasks run in the main thread), started by `bench/profiled_worker.py`: a
thread samples the main thread's stack about every 1 ms (`sys._current_frames`) and
weighs each sample by the wall-clock and the CPU time (the thread's
`pthread_getcpuclockid` clock) since the previous one; each stack is sorted by the
first matching frame: HTTP (`delivery.ilink`, requests, urllib3), SQL (SQLAlchemy,
psycopg, sqlite3), the account gate (`delivery.ratelimit`), publishing the next chunk
(`delivery.pipeline.dispatch`), other pipeline code, Celery/kombu (receive, ack, retry,
events, loop). In one solo-against-solo comparison the sampler slowed the worker
by about 4%. Wall time includes waiting on
sockets and on the CPU, which the simulator, Redis and PostgreSQL share on 2 cores;
CPU is the worker's own.

{table(split_head, split_rows)}

SQL statements and transactions per chunk (SQLAlchemy engine events in the profiled
worker), and the `delivery` functions whose SQL took the most wall time (ms per chunk):

{table(["ledger", "statements", "commits", "heaviest callers"], sql_rows)}

Statements per chunk on SQLite (first words):

{statement_lines}

**Peak memory** (max RSS, `VmHWM`) of the prefork worker after the burst:

{table(["ledger", "main process", "pool child"], rss_rows)}
"""
