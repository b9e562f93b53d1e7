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

from bench.fleet import Fleet, fleet_pipeline, gate_interval_ms, make_fleet, verify
from bench.sampling import MemorySampler
from delivery.simulator import Snapshot

__all__ = ["lateness", "measure", "run"]

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
