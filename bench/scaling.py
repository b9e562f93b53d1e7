"""Scaling out: the many-accounts burst through 1, 2 and 4 send workers (issue 12, target 5).

**The fleet** (:mod:`bench.fleet`): :data:`ACCOUNTS` accounts, :data:`MESSAGES`
one-part messages each over :data:`CHATS` readers, enqueued before any worker
starts. The rate is set far above reach and the simulator has no limit, so the
workers are the bottleneck; the gate still keeps one send per account in
flight, across every process.

**Each run**: a fresh private redis-server, PostgreSQL ledger and simulator; the
fleet is enqueued; then ``N`` separate send workers (each prefork, concurrency 1,
prefetch 1: ``N`` hosts' worth, on one machine) and one default-queue worker with
beat start. Throughput is counted from the moment the last worker answered its
ping to the last part accepted (the simulator's arrival times). CPU: the
machine's busy share over that window (``/proc/stat``), and the CPU seconds of
the send workers (their process trees) and of Redis, per part.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.fleet import checks_text, fleet_pipeline, make_fleet, verify
from bench.markdown import stamp, table
from bench.sampling import tree_cpu_seconds

__all__ = ["TITLE", "render", "run", "run_workers"]

ACCOUNTS, MESSAGES, CHATS = 1000, 3, 3
PROCESSES = (1, 2, 4)
TIMEOUT_SECONDS = 900.0
UNLIMITED = {
    "DELIVERY_SEND_RATE_PER_MINUTE": "6000000",
    "DELIVERY_SEND_BURST": "1000",
    "DELIVERY_READER_LIMITS": "false",
}


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_workers(send_workers: int) -> dict[str, Any]:
    """One run of the fleet through ``send_workers`` send workers."""
    fleet = make_fleet(
        accounts=ACCOUNTS,
        messages=MESSAGES,
        chats=CHATS,
        slowest_per_minute=60.0,
        fastest_per_minute=60.0,
    )
    with fleet_pipeline(fleet, name="scaling", backend="postgresql", overrides=UNLIMITED) as run:
        enqueue_seconds = run.enqueue()
        run.start_workers(send_workers)
        ready = time.monotonic()
        busy0, total0 = _machine_busy()
        cpu0 = sum(tree_cpu_seconds(w.pid) for w in run.send_workers)
        redis_cpu0 = _redis_cpu(run.redis_client.info("cpu"))
        run.wait_done(timeout_seconds=TIMEOUT_SECONDS)
        busy1, total1 = _machine_busy()
        cpu1 = sum(tree_cpu_seconds(w.pid) for w in run.send_workers)
        redis_cpu1 = _redis_cpu(run.redis_client.info("cpu"))
        snapshot = run.simulator.model.snapshot()
        statuses = run.probe.statuses()
    arrivals = sorted(t for r in snapshot.accounts.values() for t in r.accepted_at)
    measured = [t for t in arrivals if t >= ready]
    per_second = (len(measured) - 1) / (measured[-1] - measured[0])
    return {
        "send_workers": send_workers,
        "enqueue_seconds": enqueue_seconds,
        "parts_before_all_ready": len(arrivals) - len(measured),
        "measured_parts": len(measured),
        "measured_seconds": measured[-1] - measured[0],
        "parts_per_second": per_second,
        "parts_per_second_per_process": per_second / send_workers,
        "machine_busy": (busy1 - busy0) / (total1 - total0),
        "send_worker_cpu_ms_per_part": 1000 * (cpu1 - cpu0) / len(measured),
        "redis_cpu_ms_per_part": 1000 * (redis_cpu1 - redis_cpu0) / len(measured),
        "checks": verify(fleet, snapshot, statuses, configured_ms=None),
    }


def _redis_cpu(info: dict[str, Any]) -> float:
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run() -> dict[str, Any]:
    """1, 2 and 4 send workers, one after the other."""
    runs = []
    for n in PROCESSES:
        print(f"scaling: {n} send worker(s) ...", flush=True)
        runs.append(run_workers(n))
        r = runs[-1]
        print(
            f"  {r['parts_per_second']:.1f} parts/s, {r['parts_per_second_per_process']:.1f} "
            f"per process; machine {r['machine_busy']:.0%} busy; send workers "
            f"{r['send_worker_cpu_ms_per_part']:.1f} ms CPU per part; "
            f"missing {r['checks']['missing']}, twice {r['checks']['arrived_twice']}, "
            f"out of order {r['checks']['chats_out_of_order']}, "
            f"max in flight {r['checks']['max_in_flight_per_account']}",
            flush=True,
        )
    return {
        "workload": {
            "accounts": ACCOUNTS,
            "messages_per_account": MESSAGES,
            "chats_per_account": CHATS,
            "parts": ACCOUNTS * MESSAGES,
            "backend": "postgresql",
        },
        "settings": UNLIMITED,
        "cores": os.cpu_count(),
        "runs": runs,
    }


TITLE = "12. Scaling out"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
    checks = "\n".join(f"- {run['send_workers']}: {checks_text(run['checks'])}" for run in runs)
    return f"""## {TITLE}

{stamp(r)}

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

{table(head, rows)}

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
