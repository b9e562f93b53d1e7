"""Inbound relay: how long a reader's message takes from the platform to the agent.

**The set-up**, once on a SQLite ledger and once on PostgreSQL, on the real clock
(no compression: the relay's own defaults, the platform's 35 s long poll): the
simulator with one account whose inbound side the service owns; ``delivery
relay`` in a process of its own; the agent's Celery worker
(:mod:`delivery.devstack.agent`, consuming ``DELIVERY_INBOUND_TASK``) and its
webhook (:class:`~delivery.devstack.handover_side.InboundReceiver`, checking the
signature of every POST).

**The workload**: 50 readers write 4 messages each, 200 in all, at
:data:`RATE_PER_SECOND` (one reader after another), after one message to warm up.

**Measured**, per message, from the moment it was queued at the platform (wall
clock): *recorded*, the relay read the poll's answer (the ledger's
``received_at``; its transaction commits next, before any hand-over); *webhook*
and *task*, the agent's webhook got it and its task ran (their own clocks, the
same machine's). Reported: median, p95 and max, and how
many messages each receiver got more than once (none expected).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import delivery
from bench.common import Backend, bench_stack
from bench.markdown import stamp, table
from bench.workload import ACCOUNT_ID, TOKEN
from delivery.devstack.handover_side import (
    AgentWorker,
    InboundReceiver,
    agent_settings,
)

__all__ = ["MESSAGES", "RATE_PER_SECOND", "READERS", "TITLE", "render", "run"]

READERS = 50
PER_READER = 4
MESSAGES = READERS * PER_READER
RATE_PER_SECOND = 20.0
DEADLINE_SECONDS = 120.0
POLL_SECONDS = 0.05


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "median_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max_ms": ordered[-1],
    }


def _wait(condition: Any, *, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"inbound: {what} not done after {DEADLINE_SECONDS:g}s")
        time.sleep(POLL_SECONDS)


def _run(backend: Backend) -> dict[str, Any]:
    with bench_stack("inbound", ledger=backend) as stack, InboundReceiver() as receiver:
        simulator = stack.simulator
        stack.configure({**receiver.settings(timeout_seconds=10), **agent_settings()})
        stack.add_account(ACCOUNT_ID, token=TOKEN, owns_inbound=True)
        agent = AgentWorker(env=stack.env(), log_dir=stack.workdir)
        stack.processes.append(agent.process)
        stack.start_relay()

        def both_have(keys: set[str]) -> bool:
            return keys <= set(receiver.counts()) and keys <= set(agent.counts())

        warm = simulator.model.inbound(ACCOUNT_ID, from_user_id="warm@im.wechat", text="hi")
        _wait(lambda: both_have({f"{ACCOUNT_ID}:{warm.message_id}"}), what="the warm-up")
        written: dict[str, float] = {}
        started = time.monotonic()
        for n in range(MESSAGES):
            delay = started + n / RATE_PER_SECOND - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the readers' arrival rate
            peer = f"reader{n // PER_READER}@im.wechat"
            sent = simulator.model.inbound(ACCOUNT_ID, from_user_id=peer, text=f"message {n}")
            written[f"{ACCOUNT_ID}:{sent.message_id}"] = time.time()
        _wait(lambda: both_have(set(written)), what="every message at both receivers")
        recorded = {
            f"{ACCOUNT_ID}:{entry.platform_message_id}": entry.received_at.timestamp()
            for entry in delivery.list_inbox(ACCOUNT_ID, limit=MESSAGES + 10)
        }
        by_webhook, by_task = receiver.first_arrival(), agent.first_arrival()
        webhook_counts, task_counts = receiver.counts(), agent.counts()

        def ms(arrivals: dict[str, float]) -> list[float]:
            return [1000 * (arrivals[key] - at) for key, at in written.items()]

        return {
            "backend": backend,
            "messages": MESSAGES,
            "readers": READERS,
            "rate_per_second": RATE_PER_SECOND,
            "recorded": _percentiles(ms(recorded)),
            "webhook": _percentiles(ms(by_webhook)),
            "task": _percentiles(ms(by_task)),
            "twice_webhook": sum(1 for k in written if webhook_counts[k] > 1),
            "twice_task": sum(1 for k in written if task_counts[k] > 1),
        }


def run() -> dict[str, Any]:
    """Both ledgers; JSON-ready results."""
    runs = []
    for backend in ("sqlite", "postgresql"):
        print(f"inbound: {backend} ...", flush=True)
        result = _run(backend)
        runs.append(result)
        print(
            f"  recorded {result['recorded']['median_ms']:.0f} ms median; to the agent: "
            f"webhook {result['webhook']['median_ms']:.0f} ms median, "
            f"{result['webhook']['p95_ms']:.0f} ms p95; task "
            f"{result['task']['median_ms']:.0f} ms median, {result['task']['p95_ms']:.0f} ms p95",
            flush=True,
        )
    return {"runs": runs}


TITLE = "8. Inbound relay"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
    return f"""## {TITLE}

{stamp(r)}

`python -m bench inbound`. An account whose inbound side the service owns; `delivery
relay` in a process of its own, polling the simulator (the platform's 35 s long poll,
answered as soon as a message arrives); the agent's Celery worker consuming
`DELIVERY_INBOUND_TASK` and its webhook (every POST's HMAC-SHA256 signature checked).
{readers} readers write {each} messages each, {total} in all, {rate:g} a second, on the
real clock. Latency runs from the moment a message is queued at the platform; a
message is recorded in the ledger (and its reader's state updated) before it is
handed over.

{table(["ledger", "until", "median", "p95", "max"], rows)}

Handed over more than once: {twice}.
"""
