"""The ``BENCHMARKS.md`` sections of the many-accounts benchmarks (``accounts``, ``scaling``).

Called by :func:`bench.report.render` with each result from ``bench/out/``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["accounts_section", "scaling_section"]

ACCOUNTS_TITLE = "11. Many accounts, each at its own rate"
SCALING_TITLE = "12. Scaling out"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _checks(c: dict[str, Any]) -> str:
    excess = c["rate_excess_intervals"]
    rate = "" if excess is None else f"; fastest against its own rate: {excess:+.2f} intervals"
    rejected = sum(c["rejected"].values())
    return (
        f"{c['arrived']:,} of {c['parts']:,} parts arrived, {c['missing']} missing, "
        f"{c['arrived_twice']} twice ({c['platform_duplicates']} duplicates seen by the "
        f"platform), {rejected} refused, {c['wrong_chat_or_account']} in a wrong chat, "
        f"{c['chats_out_of_order']} chats out of order, at most "
        f"{c['max_in_flight_per_account']} send per account in flight{rate}; ledger: "
        + ", ".join(f"{n:,} {s}" for s, n in c["ledger_statuses"].items())
    )


def accounts_section(r: dict[str, Any], stamp: str) -> str:
    w, late, memory = r["workload"], r["lateness"], r["memory"]
    rss, used = memory["worker_rss_kib"], memory["redis_used_memory"]
    first = late["first_send_delay_seconds"]
    per_part = (r["redis_used_memory_waiting"] - r["redis_used_memory_idle"]) / w["parts"]
    growth = _rss_growth(memory)
    rows = [
        [
            "worker processes' RSS (sum)",
            f"{rss['start'] / 1024:.0f} MiB",
            f"{rss['peak'] / 1024:.0f} MiB",
            f"{rss['end'] / 1024:.0f} MiB",
        ],
        [
            "Redis `used_memory`",
            f"{used['start'] / 2**20:.1f} MiB",
            f"{used['peak'] / 2**20:.1f} MiB",
            f"{used['end'] / 2**20:.1f} MiB",
        ],
        [
            "tasks in the send queue / held by the worker (`unacked`)",
            f"{memory['send_queue']['start']:,} / {memory['unacked']['start']:,}",
            f"{memory['send_queue']['peak']:,} / {memory['unacked']['peak']:,}",
            f"{memory['send_queue']['end']:,} / {memory['unacked']['end']:,}",
        ],
        [
            "open messages in the ledger",
            f"{memory['open_messages']['start']:,}",
            f"{memory['open_messages']['peak']:,}",
            f"{memory['open_messages']['end']:,}",
        ],
    ]
    late_rows = [
        [
            "its own first send",
            f"{late['max_intervals']:.2f}",
            f"{late['p99_intervals']:.2f}",
            f"{late['median_intervals']:.2f}",
        ]
    ]
    if "from_start" in late:
        start = late["from_start"]
        late_rows.append(
            [
                "the workers' start (the first send's wait included)",
                f"{start['max_intervals']:.2f}",
                f"{start['p99_intervals']:.2f}",
                f"{start['median_intervals']:.2f}",
            ]
        )
    from_start = ""
    if "from_start" in late:
        from_start = (
            ", and against the schedule from the moment the workers were started"
            " (`t_0` = then, every send counted)"
        )
    first_wait = ""
    if "first_send_delay_intervals" in late:
        in_intervals = late["first_send_delay_intervals"]
        first_wait = (
            f" ({in_intervals['median']:.2f} and {in_intervals['max']:.2f} of that account's"
            " intervals)"
        )
    return f"""## {ACCOUNTS_TITLE}

{stamp}

`python -m bench accounts`. **{w["accounts"]:,} accounts, {w["messages_per_account"]}
one-part messages each ({w["parts"]:,} parts)**, dealt over {w["chats_per_account"]} readers
per account; each account has its own rate, spread on a log scale from
{w["slowest_per_minute"]:g} to {w["fastest_per_minute"]:g} sends a minute (real clock), together
{w["sum_sends_per_second"]:.1f} sends/s, meant to stay under what one send worker does
(section 12; whether it did depends on what else the 2 cores ran, see Findings 10). The
pipeline has one configured rate for every account (`DELIVERY_SEND_RATE_PER_MINUTE`,
here the fastest account's, with `DELIVERY_SEND_BURST=1`); what makes accounts differ is
the rate limit each has learned (`accounts.learned_rate_per_minute`). The benchmark
presets each account's own rate as its learned limit, so every account goes through the
production gate at its own interval. (The run below was made before the gate had its
line and kept the learned limit in Redis as a fraction of the configured rate, the
`pace` key; it has not been repeated since.) Every part is enqueued first
({r["enqueue_seconds"]:.0f} s;
the chats' heads wait in the broker, the rest in the ledger); then one send worker
(prefork, concurrency 1, prefetch 1) and a default-queue worker with beat start, on a
{w["backend"]} ledger, a private redis-server and the simulator (no limit of its own);
every other setting at its production default, on the real clock.

**Lateness** of each send against its account's own schedule, `t_k − (t_0 + k ×
interval)` in that account's intervals, with `t_0` its first send (the simulator's
arrival times; {late["sends"]:,} sends after a first one){from_start};
{late["accounts_over_2_intervals"]} accounts had a send more than 2 intervals late
against their first send:

{_table(["schedule from", "max", "p99", "median"], late_rows)}

The first sends wait their turn behind each other: an account's first part arrived
{first["median"]:.1f} s (median) and at most {first["max"]:.1f} s after the workers were
started{first_wait}. **Throughput**: {r["throughput_parts_per_second"]:.1f} parts/s from the first
part to the last ({r["drain_seconds"]:.0f} s in all); {r["task_messages"] / w["parts"]:.1f}
task messages per part (first publishes, wakes and the waits for a reserved slot).

**Memory**, sampled every second from the moment the workers started (*start*: every
part still waiting) to the last part (*end*): the resident memory of the send and the
default worker (each a main process and its pool child) and Redis's `used_memory`.
Before the enqueue Redis used {r["redis_used_memory_idle"] / 2**20:.1f} MiB and after it
{r["redis_used_memory_waiting"] / 2**20:.1f} MiB: {per_part:.0f} bytes per waiting part, or
{per_part * w["parts"] / memory["send_queue"]["start"]:,.0f} per task in the broker (only the
chats' heads are; the other parts wait in the ledger). A head waiting for its reserved
slot is a task the send worker holds until its countdown (kombu's `unacked`), in the
worker's memory and in Redis.

{_table(["", "start", "peak", "end"], rows)}

{growth}

**Guarantees**: {_checks(r["checks"])}. *Against its own rate* is, over every account and
every pair of its sends `i < j`, the most `t_j − t_i` fell short of `j − i` intervals: the
gate lets a send that came back late catch up by at most half an interval, so up to
+0.50 is by design, and more would be a send too fast.
"""


def _rss_growth(memory: dict[str, Any]) -> str:
    """When the workers' memory stopped growing, and how flat it stayed after."""
    samples = memory["samples"]
    start, peak = samples[0]["worker_rss_kib"], memory["worker_rss_kib"]["peak"]
    near = next(s for s in samples if s["worker_rss_kib"] >= start + 0.95 * (peak - start))
    after = [s["worker_rss_kib"] for s in samples if s["at"] >= near["at"]]
    return (
        f"The workers' memory grew by {(peak - start) / 1024:.0f} MiB and reached 95% of "
        f"that {near['at']:.0f} s after the start, with {near['open_messages']:,} messages "
        f"still open; from then to the end it stayed between {min(after) / 1024:.0f} and "
        f"{max(after) / 1024:.0f} MiB while the rest drained."
    )


def scaling_section(r: dict[str, Any], stamp: str) -> str:
    w = r["workload"]
    runs = r["runs"]
    one = runs[0]["parts_per_second"]
    rows = [
        [
            str(run["send_workers"]),
            f"{run['parts_per_second']:.1f}",
            f"{run['parts_per_second_per_process']:.1f}",
            f"{run['parts_per_second'] / one:.2f}×",
            f"{run['machine_busy']:.0%}",
            f"{run['send_worker_cpu_ms_per_part']:.1f}",
            f"{run['redis_cpu_ms_per_part']:.2f}",
        ]
        for run in runs
    ]
    head = [
        "send workers",
        "parts/s",
        "per process",
        "vs 1",
        "machine busy",
        "send workers' CPU ms per part",
        "Redis CPU ms per part",
    ]
    checks = "\n".join(f"- {run['send_workers']}: {_checks(run['checks'])}" for run in runs)
    return f"""## {SCALING_TITLE}

{stamp}

`python -m bench scaling`. The many-accounts burst, smaller: {w["accounts"]:,} accounts,
{w["messages_per_account"]} one-part messages each over {w["chats_per_account"]} readers
({w["parts"]:,} parts), enqueued before any worker starts, through 1, 2 and 4 separate send
workers (each prefork, concurrency 1, prefetch 1: what 1, 2 and 4 hosts run) plus one
default-queue worker with beat, on one {r["cores"]}-core machine, a {w["backend"]} ledger,
a private redis-server and the simulator in the benchmark's own process. The rate is
set far above reach, so the workers are the bottleneck; the gate still holds one send
per account in flight across processes. *parts/s* counts from the moment the last
worker answered its ping to the last part; *machine busy* is every core's busy share
over that time (`/proc/stat`), the simulator's, PostgreSQL's and Redis's work included.

{_table(head, rows)}

{_where_it_stops(runs)}

Guarantees, per run:

{checks}
"""


def _where_it_stops(runs: list[dict[str, Any]]) -> str:
    best = max(runs, key=lambda run: run["parts_per_second"])
    first, last = runs[0], runs[-1]
    return (
        f"Throughput is highest with {best['send_workers']} send worker(s) "
        f"({best['parts_per_second']:.1f} parts/s). With one, the machine was already "
        f"{first['machine_busy']:.0%} busy: the worker's own CPU is "
        f"{first['send_worker_cpu_ms_per_part']:.0f} ms per part, and the simulator, "
        "PostgreSQL, Redis and the default worker take most of the rest. More send "
        "processes only share the same 2 cores: their CPU per part grows (to "
        f"{last['send_worker_cpu_ms_per_part']:.0f} ms with {last['send_workers']}), "
        "and the total does not. Hosts of a real deployment each bring their own cores; "
        'docs/deployment.md\'s "What N hosts should expect" says what that should give.'
    )
