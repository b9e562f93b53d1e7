"""Many accounts, each at its own rate, through one send worker (issue 12, target 4).

**The fleet** (:mod:`bench.fleet`): :data:`ACCOUNTS` accounts, :data:`MESSAGES`
one-part messages each, dealt over :data:`CHATS` readers per account; each
account's own rate is spread on a log scale from :data:`SLOWEST_PER_MINUTE` to
:data:`FASTEST_PER_MINUTE` (set through the gate's per-account pace, the only
per-account rate the pipeline has). The rates add up to about 100 sends a second:
what one host should keep on schedule.

**The run**: a private redis-server, a PostgreSQL ledger, the simulator with no
limit of its own; every part is enqueued first (the chats' heads wait in the
broker, the rest in the ledger), then one send worker (prefork, concurrency 1,
prefetch 1, as ``delivery worker`` runs it) and a default-queue worker with beat
start, and the clock starts. Settings are the production defaults on the real
clock, except the rate (:data:`FASTEST_PER_MINUTE`, burst 1; slower accounts by
their pace) and reader limits (off: the simulator has none).

**Measured**: each send's lateness against its account's own schedule, ``t_k -
(t_0 + k × interval)`` in units of that account's interval, where ``t_0`` is the
account's first send (the simulator's arrival times); the delay of each account's
first send; throughput; the worker processes' resident memory and Redis's
``used_memory`` every second (:mod:`bench.sampling`). Then the guarantees
(:func:`bench.fleet.verify`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.fleet import Fleet, checks_text, fleet_pipeline, gate_interval_ms, make_fleet, verify
from bench.markdown import stamp, table
from bench.sampling import MemorySampler
from delivery.simulator import Snapshot

__all__ = ["TITLE", "lateness", "measure", "render", "run"]

ACCOUNTS, MESSAGES, CHATS = 1000, 10, 5
SLOWEST_PER_MINUTE, FASTEST_PER_MINUTE = 5.0, 7.0  # sends per account per minute, real clock
TIMEOUT_SECONDS = 1800.0
OVERRIDES = {
    "DELIVERY_SEND_BURST": "1",
    "DELIVERY_READER_LIMITS": "false",
}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def lateness(fleet: Fleet, snapshot: Snapshot, *, configured_ms: int, t0: float) -> dict[str, Any]:
    """Each send's lateness in its account's own intervals, and each first send's delay.

    Lateness is taken against the account's schedule from its own first send
    (``t_0 + k × interval``), and (``from_start``) against the schedule from the
    moment the workers were started (``t0 + k × interval``), which also counts
    the wait for the first send.
    """
    late: list[float] = []
    worst_by_account: dict[str, float] = {}
    first_delay: list[float] = []
    from_start: list[float] = []  # against t0 + k × interval: the schedule from the burst
    first_intervals: list[float] = []
    for account in fleet.accounts:
        times = snapshot.accounts[account.id].accepted_at
        if not times:
            continue
        interval = gate_interval_ms(account, configured_ms) / 1000
        first_delay.append(times[0] - t0)
        first_intervals.append((times[0] - t0) / interval)
        from_start += [(t - t0 - k * interval) / interval for k, t in enumerate(times)]
        own = [(t - times[0] - k * interval) / interval for k, t in enumerate(times) if k]
        late += own
        worst_by_account[account.id] = max(own, default=0.0)
    worst = max(worst_by_account, key=lambda a: worst_by_account[a])
    return {
        "sends": len(late),
        "max_intervals": max(late),
        "p99_intervals": _quantile(late, 0.99),
        "median_intervals": statistics.median(late),
        "accounts_over_2_intervals": sum(1 for v in worst_by_account.values() if v > 2),
        "worst_account": worst,
        "first_send_delay_seconds": {
            "median": statistics.median(first_delay),
            "max": max(first_delay),
        },
        "first_send_delay_intervals": {
            "median": statistics.median(first_intervals),
            "max": max(first_intervals),
        },
        "from_start": {
            "max_intervals": max(from_start),
            "p99_intervals": _quantile(from_start, 0.99),
            "median_intervals": statistics.median(from_start),
        },
    }


def run() -> dict[str, Any]:
    """The fleet through one send worker; the result as JSON-ready data."""
    return measure(
        accounts=ACCOUNTS,
        messages=MESSAGES,
        chats=CHATS,
        slowest_per_minute=SLOWEST_PER_MINUTE,
        fastest_per_minute=FASTEST_PER_MINUTE,
    )


def measure(
    *,
    accounts: int,
    messages: int,
    chats: int,
    slowest_per_minute: float,
    fastest_per_minute: float,
) -> dict[str, Any]:
    """One run of a fleet of this shape (``run`` is the one reported)."""
    fleet = make_fleet(
        accounts=accounts,
        messages=messages,
        chats=chats,
        slowest_per_minute=slowest_per_minute,
        fastest_per_minute=fastest_per_minute,
    )
    configured_ms = fleet.fastest_interval_ms
    overrides = OVERRIDES | {"DELIVERY_SEND_RATE_PER_MINUTE": f"{60_000 / configured_ms:.6g}"}
    print(
        f"accounts: {accounts} accounts x {messages} parts, own rates "
        f"{slowest_per_minute:g}-{fastest_per_minute:g}/min, "
        f"sum {fleet.sends_per_second:.1f} sends/s",
        flush=True,
    )
    with fleet_pipeline(
        fleet,
        name="accounts",
        backend="postgresql",
        overrides=overrides,
        configured_ms=configured_ms,
    ) as run:
        redis_idle = int(run.redis_client.info("memory")["used_memory"])
        enqueue_seconds = run.enqueue()
        redis_waiting = int(run.redis_client.info("memory")["used_memory"])
        print(f"  enqueued in {enqueue_seconds:.0f}s; starting the workers", flush=True)
        t0 = time.monotonic()
        run.start_workers(1)

        def open_messages() -> int:
            states = run.probe.statuses()
            return len(fleet.parts) - states["delivered"] - states["dead"]

        def pids() -> list[int]:
            workers = [*run.send_workers, run.default_worker]
            return [w.pid for w in workers if w is not None]

        with MemorySampler(
            pids=pids, client=run.redis_client, open_messages=open_messages, t0=t0
        ) as sampler:
            run.wait_done(timeout_seconds=TIMEOUT_SECONDS)
        snapshot = run.simulator.model.snapshot()
        statuses = run.probe.statuses()
        lpush = run.redis_client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    arrivals = sorted(t for r in snapshot.accounts.values() for t in r.accepted_at)
    late = lateness(fleet, snapshot, configured_ms=configured_ms, t0=t0)
    checks = verify(fleet, snapshot, statuses, configured_ms=configured_ms)
    memory = sampler.summary()
    result = {
        "workload": {
            "accounts": accounts,
            "messages_per_account": messages,
            "chats_per_account": chats,
            "parts": len(fleet.parts),
            "slowest_per_minute": slowest_per_minute,
            "fastest_per_minute": fastest_per_minute,
            "sum_sends_per_second": fleet.sends_per_second,
            "backend": "postgresql",
            "send_workers": 1,
        },
        "settings": overrides,
        "enqueue_seconds": enqueue_seconds,
        "redis_used_memory_idle": redis_idle,
        "redis_used_memory_waiting": redis_waiting,
        "drain_seconds": arrivals[-1] - t0,
        "throughput_parts_per_second": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
        "task_messages": lpush,
        "lateness": late,
        "checks": checks,
        "memory": memory,
    }
    print(_summary(result), flush=True)
    return result


def _summary(r: dict[str, Any]) -> str:
    late, checks, memory = r["lateness"], r["checks"], r["memory"]
    rss, used = memory["worker_rss_kib"], memory["redis_used_memory"]
    return (
        f"  lateness (own intervals): max {late['max_intervals']:.2f}, "
        f"p99 {late['p99_intervals']:.2f}, median {late['median_intervals']:.2f}; "
        f"{r['throughput_parts_per_second']:.1f} parts/s over {r['drain_seconds']:.0f}s\n"
        f"  worker RSS MiB start/peak/end {rss['start'] / 1024:.0f}/{rss['peak'] / 1024:.0f}/"
        f"{rss['end'] / 1024:.0f}; Redis used_memory MiB "
        f"{used['start'] / 2**20:.1f}/{used['peak'] / 2**20:.1f}/{used['end'] / 2**20:.1f}\n"
        f"  missing {checks['missing']}, twice {checks['arrived_twice']}, "
        f"out of order {checks['chats_out_of_order']}, "
        f"rate excess {checks['rate_excess_intervals']:.2f} intervals, "
        f"max in flight {checks['max_in_flight_per_account']}"
    )


TITLE = "11. Many accounts, each at its own rate"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
    return f"""## {TITLE}

{stamp(r)}

`python -m bench accounts`. **{w["accounts"]:,} accounts, {w["messages_per_account"]}
one-part messages each ({w["parts"]:,} parts)**, dealt over {w["chats_per_account"]} readers
per account; each account has its own rate, spread on a log scale from
{w["slowest_per_minute"]:g} to {w["fastest_per_minute"]:g} sends a minute (real clock), together
{w["sum_sends_per_second"]:.1f} sends/s: what one host should keep on schedule (the target is
100), asked of {w["send_workers"]} send worker(s) (section 12: more send processes on these 2
cores move no more). The
pipeline has one configured rate for every account (`DELIVERY_SEND_RATE_PER_MINUTE`,
here the fastest account's, with `DELIVERY_SEND_BURST=1`); what makes accounts differ is
the rate limit each has learned (`accounts.learned_rate_per_minute`). The benchmark
presets each account's own rate as its learned limit, so every account goes through the
production gate at its own interval, through the account's line (each part's task
published to run at its slot). Every part is enqueued first
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

{table(["schedule from", "max", "p99", "median"], late_rows)}

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

{table(["", "start", "peak", "end"], rows)}

{growth}

**Guarantees**: {checks_text(r["checks"])}. *Against its own rate* is, over every account and
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
