"""Render ``BENCHMARKS.md`` and ``bench/burst.png`` from the results in ``bench/out/``.

Run by ``python -m bench`` after the benchmarks, or alone with
``python -m bench report``. A benchmark without a result file is reported as
not run. ``bench/findings.md``, written by hand after reading a run, is
included as it stands.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bench.common import BENCH_DIR, OUT_DIR, environment
from bench.plot import draw_burst
from bench.profile_split import CATEGORIES, IDLE
from bench.report_fleet import ACCOUNTS_TITLE, SCALING_TITLE, accounts_section, scaling_section

__all__ = ["render"]

REPORT = BENCH_DIR.parent / "BENCHMARKS.md"
PLOT = BENCH_DIR / "burst.png"
FINDINGS = BENCH_DIR / "findings.md"


def _load(name: str) -> dict[str, Any] | None:
    path = OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _stamp(result: dict[str, Any]) -> str:
    meta = result["meta"]
    before = "/".join(f"{x:.1f}" for x in meta["loadavg_before"])
    after = "/".join(f"{x:.1f}" for x in meta["loadavg_after"])
    return (
        f"*Measured {meta['measured_at']} with `{meta['command']}` "
        f"({meta['seconds']:.0f} s; load average {before} before, {after} after).*"
    )


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _mean_gap_ms(run: dict[str, Any]) -> float:
    times: list[float] = run["accepted_at"]
    return 1000 * (times[-1] - times[0]) / max(1, len(times) - 1)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items(), key=lambda i: -i[1]))


def _burst(r: dict[str, Any]) -> str:
    factor, limit = r["factor"], r["limit_real"]
    scale = round(1 / factor)
    runs = {run["policy"]: run for run in r["runs"]}
    rows = [
        [
            f"**{run['policy']}**",
            f"{run['messages_delivered']} / {run['messages']}",
            f"{run['messages_lost']} ({run['messages_partial']})",
            f"{run['chunks_delivered']} / {run['chunks']}",
            str(run["duplicates"]),
            str(run["rate_limited"]),
            str(run["sendmessage_requests"]),
            f"{run['drain_seconds']:.1f} s",
            f"{run['drain_seconds'] / factor / 60:.1f} min",
            f"{run['drain_ratio']:.2f}",
        ]
        for run in r["runs"]
    ]
    head = [
        "policy",
        "messages delivered",
        "lost (partly delivered)",
        "chunks delivered",
        "duplicates",
        "rate-limit rejections",
        "sendmessage calls",
        "drain time",
        "real time",
        "drain ÷ minimum",
    ]
    pipe, seed, fix = runs["pipeline"], runs["seed"], runs["seed + fix"]
    settings = pipe["notes"]["settings"]
    lockout_end = max((b for _, b in seed["lockouts"]), default=0.0)
    return f"""## 1. Burst under a minutes-long limit

{_stamp(r)}

**Platform** (the simulator; a fresh one with the same model for each policy): at most
{limit["sends"]} sends per account in any sliding {limit["window_seconds"]:g} s window
({limit["sends"] * 60 / limit["window_seconds"]:g} a minute); the send that would exceed
it is refused and locks the account out for {limit["lockout_seconds"]:g} s, and every send
refused during a lockout pushes its end {limit["lockout_extend_seconds"]:g} s further
(the seed retried for only 12 s). **Clock compressed {scale}×** (factor 1/{scale}): every
duration of the platform, of both seed policies and of the pipeline's settings is
multiplied by 1/{scale}; the window is {limit["window_seconds"] * factor:g} s, the lockout
{limit["lockout_seconds"] * factor:g} s, the seed's 3 s wait {3 * factor:g} s. Times below are
compressed seconds; *real time* multiplies them back by {scale}.

**Burst**: a morning of cron briefings, {r["workload"]["messages"]} messages of 1–6
chunks ({r["workload"]["chunks"]} chunks) for {r["workload"]["chats"]} chats, all due at
once. **Theoretical minimum** drain: chunks ÷ allowed rate =
{r["min_drain_seconds"]:.1f} s ({r["min_drain_seconds"] / factor / 60:.2f} min real).

{_table(head, rows)}

*Lost* = not every chunk arrived; *partly delivered* = lost, but some chunks reached the
chat (a briefing cut off mid-way). *Drain time* runs from handing the burst over
(`enqueue_many` called, or the threads started) to the last message being final:
delivered, or given up. Counts are the simulator's.

Ratios measured in this run:
- the pipeline delivered {pipe["messages_delivered"]}/{pipe["messages"]} messages in
  {pipe["drain_ratio"]:.2f}× the theoretical minimum, with {pipe["rate_limited"]}
  rate-limit rejections; its account rate was {r["rate_fraction"]:.0%} of the allowed
  rate, so {1 / r["rate_fraction"]:.2f}× is its own floor; its sends were
  {_mean_gap_ms(pipe):.0f} ms apart on average against the configured
  {60_000 / float(settings["DELIVERY_SEND_RATE_PER_MINUTE"]):.0f} ms, and the send queue carried
  {pipe["notes"].get("task_messages", 0) / pipe["chunks"]:.1f} task runs per chunk (see
  Findings 2);
- the seed + fix took {fix["drain_seconds"] / pipe["drain_seconds"]:.1f}× as long as the
  pipeline ({fix["drain_ratio"]:.1f}× the minimum) and still lost
  {fix["messages_lost"]} messages ({fix["messages_partial"]} of them cut off mid-way),
  after {fix["rate_limited"]} refused sends and {len(fix["lockouts"])} lockouts;
- the seed gave up on {seed["messages_lost"]} of {seed["messages"]} messages within
  {seed["drain_seconds"]:.1f} s ({seed["drain_seconds"] / factor:.0f} s real); its
  {seed["rate_limited"]} refused retries kept the account locked out until
  {lockout_end:.0f} s ({lockout_end / factor / 60:.0f} min real).

![chunks delivered over time](bench/burst.png)

**Pipeline set-up**: a send worker (`-Q delivery.send`, prefork, concurrency 1, prefetch 1)
and a default-queue worker with embedded beat (the reconciler), a private redis-server,
a SQLite ledger; every `DELIVERY_*_SECONDS` default × 1/{scale}, the account rate
`DELIVERY_SEND_RATE_PER_MINUTE={settings["DELIVERY_SEND_RATE_PER_MINUTE"]}` (compressed;
{r["rate_fraction"]:.0%} of the platform's) with `DELIVERY_SEND_BURST=1`; cooldown
{settings["DELIVERY_COOLDOWN_BASE_SECONDS"]} s, chunk gap
`max({settings["DELIVERY_CHUNK_GAP_SECONDS"]}, {settings["DELIVERY_CHUNK_GAP_BASE_SECONDS"]}
+ {settings["DELIVERY_CHUNK_GAP_PER_CHUNK_SECONDS"]} × n)` s. The ledger recorded
{_counts(pipe["notes"]["ledger_attempts"])} attempts.

**Seed policies** (`bench/seed_policies.py`): one thread per message, real HTTP through
`ILinkClient`. *seed*: 5 attempts per chunk, fixed 3 s wait, fixed 1.5 s gap, not
serialised, a failed chunk aborts and drops the message. *seed + fix*: wait
`min(9 s × 2^attempt + uniform(0, 2 s), 60 s)` (base_wait = 3 × retry_delay),
`threading.Semaphore(1)` around each whole send (sleeps included), gap
`max(1.5, 2.0 + 0.3 × n)` s, and still 5 attempts (the seed's count, which the issue
keeps), no resend. `client_id`: a fresh `seed-<uuid>` per chunk per message send, reused
by that chunk's retries within the send; since neither policy resends a message, no
chunk is ever sent under two ids, hence no duplicates here.
"""


def _cost(r: dict[str, Any]) -> str:
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
    return f"""## 2. Pipeline cost

{_stamp(r)}

One send worker, a simulator with no limit (no latency), the account rate set far above
reach and every chunk gap 0, all other settings at their defaults; a burst of
{r["workload"]["messages"]} messages ({loop["chunks"]} chunks) for {r["workload"]["chats"]}
chats after a small warm-up. *Steady* chunks per second is the simulator's count from
the first to the last accepted chunk; *end to end* includes `enqueue_many` and the first
chunk's latency; the prefork figure is the best of {repeats} runs (other work on
the machine only slows runs down). The plain loop sends the same texts from its own
process (median of 3). Real seconds; no compression.

{_table(["path", "ledger", "chunks/s steady", "chunks/s end to end", "ms per chunk"], rows)}

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

{_table(split_head, split_rows)}

SQL statements and transactions per chunk (SQLAlchemy engine events in the profiled
worker), and the `delivery` functions whose SQL took the most wall time (ms per chunk):

{_table(["ledger", "statements", "commits", "heaviest callers"], sql_rows)}

Statements per chunk on SQLite (first words):

{statement_lines}

**Peak memory** (max RSS, `VmHWM`) of the prefork worker after the burst:

{_table(["ledger", "main process", "pool child"], rss_rows)}
"""


def _enqueue(r: dict[str, Any]) -> str:
    rows = [
        [
            run["backend"],
            f"`{run['mode']}`",
            f"{run['messages_per_second']:.0f}",
            f"{run['chunks_per_second']:.0f}",
            str(run["messages"]),
            f"{run['seconds']:.2f}",
        ]
        for run in r["runs"]
    ]
    return f"""## 4. Enqueue

{_stamp(r)}

Messages per second into a fresh ledger, publishing to a private redis-server (no worker
runs). Each message is a briefing of 1–6 chunks of 1,500 characters (3.5 on average)
for one of {r["chats"]} chats, with an idempotency key; `enqueue` is called once per
message, `enqueue_many` with batches of 100 or 500. The time covers validation,
chunking, the transaction and publishing new conversation heads. *chunker alone* is
`split_text` on the same texts, with no ledger or broker.

{_table(["ledger", "call", "messages/s", "chunks/s", "messages", "seconds"], rows)}
"""


def _chunker(r: dict[str, Any]) -> str:
    runs = r["runs"]
    rows = [
        [
            name,
            f"{runs[key]['median_chars_per_second'] / 1e6:.1f} M",
            f"{runs[key]['best_chars_per_second'] / 1e6:.1f} M",
        ]
        for key, name in (
            ("before", "before (`tests/support/chunking_reference.py`)"),
            ("after", "after (`delivery.chunking`)"),
        )
    ]
    speedup = runs["after"]["median_chars_per_second"] / runs["before"]["median_chars_per_second"]
    size_rows = [
        [f"{s['size']:,}", str(s["texts"]), f"{s['median_chars_per_second'] / 1e6:.1f} M"]
        for s in r["after_by_size"]
    ]
    worst_rows = [
        [
            p["text"],
            f"{p['characters']:,}",
            f"{p['before_chars_per_second'] / 1e6:.2f} M",
            f"{p['after_chars_per_second'] / 1e6:.2f} M",
        ]
        for p in r["pathological"]
    ]
    return f"""## 6. Chunker

{_stamp(r)}

`split_text(text, max_chars={r["max_chars"]})` over a mixed corpus (`bench/corpus.py`):
{r["documents"]} documents of {r["sizes"][0]:,} to {r["sizes"][-1]:,} characters
({r["characters"]:,} in all, {r["chunks"]:,} chunks), made of English paragraphs with an
emoji now and then, Chinese paragraphs without spaces (some longer than a chunk), bullet
lists and fenced code blocks (some cut, closed and reopened). *Before* is the chunker as
it was before issue 12, kept unchanged in `tests/support/chunking_reference.py`; both
run in one process, alternating, {r["repeats"]} times each, timed with
`time.perf_counter` around the whole corpus; both give the same chunks (checked
before timing, and by `tests/unit/test_chunking_reference.py` on generated texts).

{_table(["chunker", "characters/s, median", "best"], rows)}

After ÷ before: {speedup:.0f}×. The new chunker by document size (median characters/s; a
text that fits one chunk needs no cut at all):

{_table(["characters per document", "documents", "characters/s"], size_rows)}

Worst cases: texts built to defeat looking near a cut (best of 2 runs each). A cluster
longer than a few hundred characters makes the new chunker segment the whole text once,
as the old one always did; a prepend mark glued to every space leaves no word break, so
each chunk's search walks every run of its window, where the old one walked each once.

{_table(["text", "characters", "before", "after"], worst_rows)}
"""


def _retention(r: dict[str, Any]) -> str:
    rows = [
        [
            run["backend"],
            f"{run['messages']:,}",
            f"{run['chunks']:,} / {run['attempts']:,}",
            f"{run['messages_per_second']:,.0f}",
            str(run["batches"]),
            f"{run['batch_ms_median']:.0f} ms",
            f"{run['batch_ms_max']:.0f} ms",
            f"{run['open_left']:,} of {r['open_messages']:,}",
        ]
        for run in r["runs"]
    ]
    head = [
        "ledger",
        "messages pruned",
        "chunks / attempts",
        "messages/s",
        "batches",
        "batch, median",
        "batch, max",
        "open messages left",
    ]
    return f"""## 7. Retention

{_stamp(r)}

A fresh ledger holds {r["messages"]:,} delivered messages of {r["chunks_per_message"]}
chunks with one attempt each, all ended 40 days ago, and {r["open_messages"]:,} open ones;
`delivery.retention.prune` deletes what ended more than 30 days ago, {r["batch_messages"]}
messages per transaction (as beat and `delivery prune` do). A batch is timed from before
its transaction begins to after its commit: the longest a send's transaction could wait
behind it (on PostgreSQL a batch skips rows another transaction holds, so it never waits
itself).

{_table(head, rows)}
"""


def _ledger_size(r: dict[str, Any]) -> str:
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
    return f"""## 9. Ledger size

{_stamp(r)}

Two PostgreSQL ledgers: one empty, one already holding {history["messages"]:,} delivered
messages of {history["chunks_per_message"]} chunks with one accepted attempt each (spread
over the last {history["days"]} days and {history["chats"]:,} chats of the burst's account,
its own chats among them), written by the server with `INSERT ... SELECT generate_series`
in {fill:.0f} s (indexes built after the rows; then `VACUUM ANALYZE`). On each, the
pipeline-cost burst (section 2: one prefork worker, no platform limit, no gaps), best of
{r["repeats"]} runs; and the exporter's ledger scrape, rendered as Prometheus text, median
of {r["scrapes"]}. *The recount it replaces*: the aggregates a scrape ran before the
running totals (`delivery.ledger.counters`), on the same ledger.

{_table(head, rows)}

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


def _recovery(r: dict[str, Any] | None) -> str:
    if not r or "paths" not in r:
        return "## 3. Recovery\n\n**Not run.** `python -m bench recovery` measures it.\n"
    scale = round(1 / r["factor"])
    rows = [
        [
            via,
            f"{p['median']:.2f} s",
            f"{p['max']:.2f} s",
            f"{p['median'] * scale:.0f} s",
            ", ".join(f"{s:.2f}" for s in p["seconds"]),
        ]
        for via, p in r["paths"].items()
    ]
    return f"""## 3. Recovery

{_stamp(r)}

Time from a good token being stored to the platform's first accepted chunk, with
sends parked on an expired session. Clock compressed {scale}x: the parked sends
look again every {r["recheck_seconds"]:g} s (`DELIVERY_SESSION_RECHECK_SECONDS`,
{r["recheck_seconds"] * scale:g} s by default) and beat checks sessions every
{r["check_interval_seconds"]:g} s (`DELIVERY_SESSION_CHECK_INTERVAL_SECONDS`,
{r["check_interval_seconds"] * scale:g} s by default). *rotation*: an operator
stores the token in the ledger (`delivery account add`); *account store*: an agent
writes it to its file and beat's check imports it. {r["trials"]} trials each.

{_table(["token stored by", "median", "max", "median, real clock", "trials (s)"], rows)}

Expected: within one recheck for a rotation, within one check interval plus one
recheck for the store.
"""


def _readers(r: dict[str, Any]) -> str:
    scale = round(1 / r["factor"])
    all_open, two_closed = r["closed_readers"]
    wakeups = ", ".join(f"{s:.2f} s" for s in two_closed["reader_wakeup_seconds"])
    closed_rows = [
        [
            run["name"],
            f"{run['drain_seconds']:.2f} s",
            str(run["refused_reader"]),
            str(run["refused_rate"]),
            str(run["lockouts"]),
            "yes" if run["strikes_or_pace_left"] else "no",
        ]
        for run in (all_open, two_closed)
    ]
    closed_head = [
        "run",
        "open readers drained",
        "reader refusals",
        "rate refusals",
        "lockouts",
        "strikes or pace learned",
    ]
    limit_rows = [
        [
            run["name"],
            str(run["lockouts"]),
            str(run["refused_rate"] + run["refused_reader"]),
            "-" if run["refusals_per_lockout"] is None else f"{run['refusals_per_lockout']:.1f}",
            f"{run['drain_seconds']:.1f} s",
        ]
        for run in r["rate_limit"]
    ]
    return f"""## 5. Readers

{_stamp(r)}

`python -m bench readers`. The simulator refuses a reader who did not write within a
day (or past 10 sends per message) with a bare `{{"ret": -2}}`, the same answer as its
rate limit (20 sends per 60 s, then a 5-minute lockout); the clock is compressed
{scale}x. **Closed readers**: a burst of one message to each of 20 readers at 95% of
the platform's rate; in *two closed*, two of them (back to back in the burst) did not
write for a day, and the pipeline knows none of the 20.

{_table(closed_head, closed_rows)}

The 18 open readers drained in **{r["drain_ratio_18_vs_20"]:.2f}x** the time the 20 took
with everyone open (target: within 1.15x), with no cooldown and no pace change. Once
the two wrote (`record_inbound`), their messages were delivered after {wakeups}.

**A true rate limit among readers**: the burst of section 1 (40 messages, 141 chunks,
8 chats) with the account configured at twice the platform's rate. *today*: without
reader limits, a bare `-2` is the account's limit, as before readers existed.

{_table(["run", "lockouts", "refusals", "refusals per lockout", "drain"], limit_rows)}
"""


def _inbound(r: dict[str, Any]) -> str:
    runs = r["runs"]
    readers, total, rate = runs[0]["readers"], runs[0]["messages"], runs[0]["rate_per_second"]
    each = total // readers

    def row(run: dict[str, Any], what: str, label: str) -> list[str]:
        figures = run[what]
        return [
            run["backend"],
            label,
            f"{figures['median_ms']:.0f} ms",
            f"{figures['p95_ms']:.0f} ms",
            f"{figures['max_ms']:.0f} ms",
        ]

    rows = []
    for run in runs:
        rows.append(row(run, "recorded", "read by the relay"))
        rows.append(row(run, "webhook", "**the agent's webhook got it**"))
        rows.append(row(run, "task", "**the agent's task ran**"))
    twice = "; ".join(
        f"{run['backend']}: {run['twice_webhook']} by webhook, {run['twice_task']} by task"
        for run in runs
    )
    return f"""## 8. Inbound relay

{_stamp(r)}

`python -m bench inbound`. An account whose inbound side the service owns; `delivery
relay` in a process of its own, polling the simulator (the platform's 35 s long poll,
answered as soon as a message arrives); the agent's Celery worker consuming
`DELIVERY_INBOUND_TASK` and its webhook (every POST's HMAC-SHA256 signature checked).
{readers} readers write {each} messages each, {total} in all, {rate:g} a second, on the
real clock. Latency runs from the moment a message is queued at the platform; a
message is recorded in the ledger (and its reader's state updated) before it is
handed over.

{_table(["ledger", "until", "median", "p95", "max"], rows)}

Handed over more than once: {twice}.
"""


def _learned(per_minute: float | None, factor: float, platform: dict[str, Any]) -> str:
    """A learned rate on the compressed clock, as real sends a minute and x the limit."""
    if per_minute is None:
        return "-"
    real = per_minute * factor
    limit = platform["sends"] * 60 / platform["window_seconds"]
    return f"{real:.1f}/min ({real / limit:.2f}x)"


def _pace(r: dict[str, Any]) -> str:
    platform, scale = r["platform"], round(1 / r["factor"])
    rows = [
        [
            f"{g['guess']:g}x ({g['configured_per_minute']:g}/min)",
            str(g["lockouts"]),
            str(g["refused"]),
            f"{g['drain_seconds']:.0f} s",
            f"{g['minimum_seconds']:.0f} s",
            f"{g['locked_seconds']:.0f} s",
            f"{g['ratio']:.2f}",
            f"{g['ratio_after_lockouts']:.2f}",
            _learned(g["learned_per_minute"], r["factor"], platform),
            f"{g['delivered']}/{g['messages']}, {g['duplicates']} dup",
        ]
        for g in r["guesses"]
    ]
    b = r["backlog"]
    return f"""## 10. Pace: a guessed rate, and long messages in a backlog

{_stamp(r)}

**A guessed rate.** The platform allows {platform["sends"]} sends in any sliding
{platform["window_seconds"]:g} s window ({platform["sends"] * 60 / platform["window_seconds"]:g}
a minute) and locks the account out for {platform["lockout_seconds"]:g} s (each send refused
meanwhile adds {platform["lockout_extend_seconds"]:g} s); each send arrives after 0 to
{platform["jitter_seconds"]:g} s of network jitter and is answered {platform["latency_seconds"]:g} s
later. `DELIVERY_SEND_RATE_PER_MINUTE` is set to a multiple of that limit (burst 1, every other
knob at its default) and two send workers drain 40 briefings ({r["guesses"][0]["parts"]} parts,
one chat each). The clock is compressed {scale}x; times below are real seconds. *Minimum*: the
parts at the platform's rate; *locked*: time the account spent locked out; *÷ (min + locked)*:
drain against the minimum plus the lockouts.

{
        _table(
            [
                "configured",
                "lockouts",
                "refused",
                "drain",
                "minimum",
                "locked",
                "÷ min",
                "÷ (min + locked)",
                "learned",
                "delivered",
            ],
            rows,
        )
    }

**Long messages in a backlog.** {b["messages"]} briefings of 2 to 4 parts ({b["parts"]} parts),
one chat each, enqueued at once into an account at 15 sends a minute (one per
{b["interval_seconds"]:g} s; the platform does not limit here; clock compressed
{round(1 / r["backlog_factor"])}x). The next part of a message already started goes before
every first part. First part to last, against (parts - 1) x the interval: median
**{b["ratio_median"]:.2f}x**, 95th percentile **{b["ratio_p95"]:.2f}x** (against the interval
the sends really kept, {b["sent_interval_seconds"]:.2f} s: {b["sent_ratio_median"]:.2f}x and
{b["sent_ratio_p95"]:.2f}x); in seconds: median {b["span_median_seconds"]:.1f}, p95
{b["span_p95_seconds"]:.1f}, max {b["span_max_seconds"]:.1f}, while the backlog took
{b["drain_seconds"]:.0f} s. Messages completed in enqueue order, displaced by at most
{b["order_displacement_max"]} place(s) ({b["order_adjacent_inversions"]} adjacent pair(s)
swapped); {b["duplicates"]} duplicates.
"""


def _header(env: dict[str, str]) -> str:
    return f"""# Benchmarks

Figures from real processes on one machine: **{env["cores"]} cores** ({env["cpu"]}),
{env["memory"]} RAM, Linux {env["kernel"]}; Python {env["python"]}, Celery
{env["celery"]}, SQLAlchemy {env["sqlalchemy"]}, redis-server {env["redis"]} (a private one
per run), PostgreSQL {env["postgresql"]}, SQLite {env["sqlite"]}. Other work shared the
machine during the runs (see each section's load average), so read small differences as
noise.

**Reproduce**: from the repository root, in the project's virtualenv,

```bash
python -m bench              # everything (about 45 minutes), then this file and bench/burst.png
python -m bench burst        # or: cost, enqueue, recovery, readers, chunker, retention,
                             #     inbound, ledger_size, pace, accounts, scaling
python -m bench report       # re-render from bench/out/*.json only
```

Each benchmark starts its own redis-server on a free port (`delivery.devstack.LocalRedis`),
real Celery workers, the simulator, and temporary ledgers (a SQLite file under the
system's temporary directory, here on the same ext4 disk as PostgreSQL's data; a
`delivery_bench_*` PostgreSQL database on `BENCH_PG_DSN`, default
`postgresql://postgres@127.0.0.1:5432/postgres`), and stops or drops all of them when it
ends, also on Ctrl-C. Raw figures: `bench/out/<name>.json` (not committed).
"""


def _previous_sections() -> dict[str, str]:
    """The sections of the ``BENCHMARKS.md`` there is, by their heading."""
    if not REPORT.exists():
        return {}
    chunks = re.split(r"(?m)^(?=## )", REPORT.read_text())
    return {c.splitlines()[0][3:].strip(): c.rstrip() + "\n" for c in chunks if c.startswith("## ")}


def render() -> None:
    """Write ``BENCHMARKS.md`` (and the plot, if the burst was run).

    A benchmark without a result in ``bench/out/`` keeps the section the file had
    (the figures of its last run), so running one benchmark re-renders only it.
    """
    previous = _previous_sections()

    def section(title: str, rendered: str | None) -> str:
        return rendered or previous.get(title) or f"## {title}\n\nNot run yet.\n"

    parts = [_header(environment())]
    burst = _load("burst")
    if burst is not None:
        draw_burst(burst, PLOT)
    parts.append(section("1. Burst under a minutes-long limit", _burst(burst) if burst else None))
    cost = _load("cost")
    parts.append(section("2. Pipeline cost", _cost(cost) if cost else None))
    recovery = _load("recovery")
    parts.append(section("3. Recovery", _recovery(recovery) if recovery else None))
    enqueue = _load("enqueue")
    parts.append(section("4. Enqueue", _enqueue(enqueue) if enqueue else None))
    readers = _load("readers")
    parts.append(section("5. Readers", _readers(readers) if readers else None))
    chunker = _load("chunker")
    parts.append(section("6. Chunker", _chunker(chunker) if chunker else None))
    pruning = _load("retention")
    parts.append(section("7. Retention", _retention(pruning) if pruning else None))
    inbound = _load("inbound")
    parts.append(section("8. Inbound relay", _inbound(inbound) if inbound else None))
    size = _load("ledger_size")
    parts.append(section("9. Ledger size", _ledger_size(size) if size else None))
    pace = _load("pace")
    pace_title = "10. Pace: a guessed rate, and long messages in a backlog"
    parts.append(section(pace_title, _pace(pace) if pace else None))
    fleet = _load("accounts")
    parts.append(section(ACCOUNTS_TITLE, accounts_section(fleet, _stamp(fleet)) if fleet else None))
    scaling = _load("scaling")
    parts.append(
        section(SCALING_TITLE, scaling_section(scaling, _stamp(scaling)) if scaling else None)
    )
    if FINDINGS.exists():
        parts.append(FINDINGS.read_text())
    REPORT.write_text("\n".join(parts))
    print(
        f"report: wrote {REPORT.name}"
        + (f" and {PLOT.relative_to(REPORT.parent)}" if burst else "")
    )
