"""Burst under a minutes-long limit: the pipeline, the seed, and the seed's proposed fix.

**The platform** (one model, a fresh simulator for each policy): 20 sends per
account in any sliding 60 s window; the send that would exceed it is refused and
locks the account out for 5 minutes, and every send refused during the lockout
pushes its end 5 s further. That is far longer than the seed's 12 s of retries.

**The burst**: a morning of cron briefings, 40 messages of 1 to 6 chunks (141
chunks) for 8 chats, all due at once.

**The clock** is compressed by :data:`FACTOR` (1/25): every duration of the
platform, of the seed's policies and of the pipeline's settings is multiplied by
it, so 5 minutes of lockout take 12 s and the whole benchmark about two minutes.
Reported times are compressed seconds; divide by the factor for real ones.

**The policies**:

- *pipeline*: a send worker (prefork, concurrency 1, as the README runs it) plus a
  default-queue worker with beat (the reconciler), a private redis-server, a
  SQLite ledger; every time knob at its default times the factor, except the
  account rate, set to :data:`RATE_FRACTION` of the platform's allowed rate with
  burst 1. The burst is enqueued with one ``delivery.enqueue_many``.
- *seed* and *seed + fix*: :mod:`bench.seed_policies`, one thread per message.

Figures per policy come from the simulator (accepted, duplicates, refusals) and the
policy itself (when it finished). *Drain time* runs from the moment the burst is
handed over (``enqueue_many`` called, or the threads started) until the last message
is final: delivered, or given up (lost). The theoretical minimum is chunks ÷ the
allowed rate.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import delivery
from bench.common import BENCH_DIR, bench_stack, ledger_probe, start_workers
from bench.markdown import counts, stamp, table
from bench.observe import Arrivals, LockoutSampler, tally
from bench.plot import draw_burst
from bench.seed_policies import SeedTiming, fix_policy, run_policy, seed_policy
from bench.workload import ACCOUNT_ID, TOKEN, Briefing, briefings
from delivery.devstack import clock
from delivery.simulator import PlatformSimulator, SimulatorConfig

__all__ = ["FACTOR", "TITLE", "PlatformLimit", "PolicyRun", "render", "run"]

FACTOR = 1 / 25  # compressed seconds per real second
RATE_FRACTION = 0.95  # the pipeline's account rate, as a share of the platform's
MESSAGES, CHATS, SEED, MAX_CHUNKS = 40, 8, 40, 6
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class PlatformLimit:
    """The platform's frequency limit, in real seconds."""

    sends: int = 20
    window_seconds: float = 60.0
    lockout_seconds: float = 300.0
    lockout_extend_seconds: float = 5.0

    @property
    def per_minute(self) -> float:
        return self.sends * 60.0 / self.window_seconds

    def simulator_config(self, factor: float) -> SimulatorConfig:
        return SimulatorConfig(
            rate_limit_sends=self.sends,
            rate_limit_window_seconds=self.window_seconds * factor,
            lockout_seconds=self.lockout_seconds * factor,
            lockout_extend_seconds=self.lockout_extend_seconds * factor,
        )


@dataclass(frozen=True)
class PolicyRun:
    """One policy's burst, in compressed seconds after the burst was handed over."""

    policy: str
    messages: int
    messages_delivered: int
    messages_lost: int
    messages_partial: int  # lost, with some of their chunks delivered
    chunks: int
    chunks_delivered: int
    duplicates: int
    rate_limited: int
    sendmessage_requests: int
    chats_out_of_order: int
    drain_seconds: float
    last_accept_seconds: float | None
    min_drain_seconds: float
    accepted_at: list[float]
    lockouts: list[tuple[float, float]]
    notes: dict[str, Any]

    @property
    def drain_ratio(self) -> float:
        return self.drain_seconds / self.min_drain_seconds


def _policy_run(
    name: str,
    batch: list[Briefing],
    arrivals: Arrivals,
    *,
    drain_seconds: float,
    min_drain_seconds: float,
    lockouts: list[tuple[float, float]],
    notes: dict[str, Any],
) -> PolicyRun:
    return PolicyRun(
        policy=name,
        messages=len(batch),
        messages_delivered=arrivals.messages_delivered,
        messages_lost=len(batch) - arrivals.messages_delivered,
        messages_partial=arrivals.messages_partial,
        chunks=sum(len(b.chunks) for b in batch),
        chunks_delivered=arrivals.chunks_accepted,
        duplicates=arrivals.duplicates,
        rate_limited=arrivals.rate_limited,
        sendmessage_requests=arrivals.requests,
        chats_out_of_order=arrivals.chats_out_of_order,
        drain_seconds=drain_seconds,
        last_accept_seconds=arrivals.accepted_at[-1] if arrivals.accepted_at else None,
        min_drain_seconds=min_drain_seconds,
        accepted_at=arrivals.accepted_at,
        lockouts=lockouts,
        notes=notes,
    )


def _pipeline_overrides(limit: PlatformLimit) -> dict[str, str]:
    allowed_per_minute = limit.per_minute / FACTOR
    return clock.bench(
        FACTOR, send_rate_per_minute=allowed_per_minute * RATE_FRACTION, send_burst=1
    )


def run_pipeline(limit: PlatformLimit, batch: list[Briefing], min_drain: float) -> PolicyRun:
    """The pipeline with real workers, a private Redis and a SQLite ledger."""
    overrides = _pipeline_overrides(limit)
    config = limit.simulator_config(FACTOR)
    with bench_stack("burst", settings=overrides, simulator=config) as stack:
        simulator = stack.simulator
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        start_workers(stack)
        probe = ledger_probe(stack)
        messages = [delivery.OutboundMessage(ACCOUNT_ID, b.to_user_id, b.text) for b in batch]
        t0, t0_wall = time.monotonic(), time.time()
        with LockoutSampler(simulator, ACCOUNT_ID, t0=t0) as sampler:
            delivery.enqueue_many(messages)
            enqueued = time.monotonic() - t0
            deadline = t0 + 4 * min_drain + 60
            while (states := probe.statuses())["delivered"] + states["dead"] < len(batch):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pipeline not done: {dict(states)}")
                time.sleep(POLL_SECONDS)
        last = probe.last_final_at()
        assert last is not None
        arrivals = tally(simulator.model.snapshot(), batch, t0=t0)
        # kombu publishes every task message with one LPUSH: first publishes, next
        # chunks, and every retry of a waiting chunk (the reconciler's few included).
        assert stack.redis is not None
        lpush = stack.redis.client().info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
        notes = {
            "enqueue_many_seconds": enqueued,
            "task_messages": lpush,
            "ledger_statuses": dict(probe.statuses()),
            "ledger_attempts": probe.attempt_outcomes(),
            "settings": overrides,
        }
        return _policy_run(
            "pipeline",
            batch,
            arrivals,
            drain_seconds=last.timestamp() - t0_wall,
            min_drain_seconds=min_drain,
            lockouts=sampler.intervals,
            notes=notes,
        )


def run_seed(
    limit: PlatformLimit, batch: list[Briefing], min_drain: float, *, fixed: bool
) -> PolicyRun:
    """The seed's policy (or its proposed fix) against a fresh simulator."""
    timing = SeedTiming(factor=FACTOR)
    policy = fix_policy(timing) if fixed else seed_policy(timing)
    with PlatformSimulator(config=limit.simulator_config(FACTOR)) as simulator:
        simulator.model.register_account(ACCOUNT_ID, token=TOKEN)
        t0 = time.monotonic()
        with LockoutSampler(simulator, ACCOUNT_ID, t0=t0) as sampler:
            outcomes = run_policy(policy, batch, base_url=simulator.base_url, token=TOKEN)
        arrivals = tally(simulator.model.snapshot(), batch, t0=t0)
    notes = {
        "attempts_by_policy": sum(o.attempts for o in outcomes),
        "messages_given_up": sum(1 for o in outcomes if not o.delivered),
        "timing_real_seconds": asdict(timing),
    }
    return _policy_run(
        policy.name,
        batch,
        arrivals,
        drain_seconds=max(o.finished_at for o in outcomes) - t0,
        min_drain_seconds=min_drain,
        lockouts=sampler.intervals,
        notes=notes,
    )


def run() -> dict[str, Any]:
    """All three policies, one after the other; the result as JSON-ready data."""
    limit = PlatformLimit()
    batch = briefings(messages=MESSAGES, chats=CHATS, seed=SEED, max_chunks=MAX_CHUNKS)
    chunks = sum(len(b.chunks) for b in batch)
    min_drain = chunks / (limit.per_minute / 60.0) * FACTOR
    runs = []
    for name in ("pipeline", "seed", "seed + fix"):
        print(f"burst: running {name} ...", flush=True)
        if name == "pipeline":
            result = run_pipeline(limit, batch, min_drain)
        else:
            result = run_seed(limit, batch, min_drain, fixed=name == "seed + fix")
        print(_row(result), flush=True)
        runs.append(result)
    return {
        "factor": FACTOR,
        "limit_real": asdict(limit),
        "rate_fraction": RATE_FRACTION,
        "workload": {"messages": MESSAGES, "chats": CHATS, "seed": SEED, "chunks": chunks},
        "min_drain_seconds": min_drain,
        "runs": [asdict(r) | {"drain_ratio": r.drain_ratio} for r in runs],
    }


def _row(r: PolicyRun) -> str:
    tasks = r.notes.get("task_messages")
    runs = f"; {tasks / r.chunks:.1f} task runs per chunk" if tasks else ""
    return (
        f"  {r.policy:<11} delivered {r.messages_delivered}/{r.messages} messages, "
        f"lost {r.messages_lost}; chunks {r.chunks_delivered}/{r.chunks}; "
        f"duplicates {r.duplicates}; rate-limited {r.rate_limited}; "
        f"drain {r.drain_seconds:.1f}s = {r.drain_ratio:.2f} x minimum "
        f"({r.drain_seconds / FACTOR / 60:.1f} real min){runs}"
    )


PLOT = BENCH_DIR / "burst.png"


def figures(r: dict[str, Any]) -> list[Path]:
    """The burst's picture, ``bench/burst.png``."""
    draw_burst(r, PLOT)
    return [PLOT]


TITLE = "1. Burst under a minutes-long limit"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
    return f"""## {TITLE}

{stamp(r)}

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

{table(head, rows)}

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
{counts(pipe["notes"]["ledger_attempts"])} attempts.

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


def _mean_gap_ms(run: dict[str, Any]) -> float:
    times: list[float] = run["accepted_at"]
    return 1000 * (times[-1] - times[0]) / max(1, len(times) - 1)
