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

from bench.fleet import fleet_pipeline, make_fleet, verify
from bench.sampling import tree_cpu_seconds

__all__ = ["run", "run_workers"]

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
