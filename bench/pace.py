"""The account's pace: a guessed rate against the platform's sliding window, and a
backlog of long messages (``python -m bench pace``).

**Learning the limit** (issue: one lockout per wrong guess). The platform allows 5
sends in any sliding 30 s window and locks an account out for 2 minutes, each send
refused during a lockout pushing its end 5 s further, the first two refusals of each
lockout a bare ``{"ret": -2}`` (as the real platform sometimes answers); every send reaches it after
a random 0-1 s of network jitter, and is answered 0.4 s later. The pipeline's rate
is configured at 0.8x, 1x, 2x and 5x of that limit (its burst 1; every other knob at
its default), two send workers drain a morning's burst of 40 briefings (87 parts,
over 40 chats). Per run: lockouts started, sends refused, the drain time against
the theoretical minimum (parts at the platform's rate) plus the time spent locked
out, and the limit the account learned.

**A started message finishes first.** 200 briefings of 2 to 4 parts, one chat each,
all enqueued at once into an account at 15 sends a minute (the default; the
platform does not limit here): the time from a message's first part to its last,
against ``(parts - 1)`` x the send interval, and how far completion strays from
enqueue order.

The clock is compressed by :data:`FACTOR` (1/10) for the first, and
:data:`BACKLOG_FACTOR` (1/40) for the second: every duration of the platform and
of the pipeline's settings is multiplied by it. Times are reported in real
(uncompressed) seconds.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import create_engine, select

import delivery
from bench.burst import PlatformLimit
from bench.common import bench_stack, ledger_probe, start_workers
from bench.markdown import stamp, table
from bench.observe import LedgerProbe, LockoutSampler, tally
from bench.workload import ACCOUNT_ID, TOKEN, Briefing, briefings
from delivery.devstack import clock
from delivery.ledger.models import Account
from delivery.simulator import SimulatorConfig

__all__ = ["TITLE", "render", "run"]

FACTOR = 1 / 10
BACKLOG_FACTOR = 1 / 40
GUESSES = (0.8, 1.0, 2.0, 5.0)  # configured rate / the platform's
MESSAGES, SEED, MAX_CHUNKS = 40, 40, 4
BACKLOG_MESSAGES, BACKLOG_SEED = 200, 11
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Platform(PlatformLimit):
    """The platform's limit and network, in real seconds."""

    sends: int = 5
    window_seconds: float = 30.0
    lockout_seconds: float = 120.0
    latency_seconds: float = 0.4
    jitter_seconds: float = 1.0
    bare_refusals: int = 2  # the first refusals of each lockout carry no errmsg

    def config(self, factor: float) -> SimulatorConfig:
        return replace(
            self.simulator_config(factor),
            send_latency_seconds=self.latency_seconds * factor,
            send_jitter_seconds=self.jitter_seconds * factor,
            rate_limit_bare_refusals=self.bare_refusals,
        )


def _learned(database_url: str) -> tuple[float | None, str | None]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(Account.learned_rate_per_minute, Account.learned_from).where(
                    Account.id == ACCOUNT_ID
                )
            ).one()
            return row[0], row[1]
    finally:
        engine.dispose()


def _wait_final(probe: LedgerProbe, count: int, *, deadline: float) -> None:
    while (states := probe.statuses())["delivered"] + states["dead"] < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline not done: {dict(states)}")
        time.sleep(POLL_SECONDS)


def run_guess(guess: float, platform: Platform, batch: list[Briefing]) -> dict[str, Any]:
    """One burst with the rate configured at ``guess`` x the platform's limit."""
    overrides = clock.bench(
        FACTOR, send_rate_per_minute=platform.per_minute * guess / FACTOR, send_burst=1
    )
    parts = sum(len(b.chunks) for b in batch)
    minimum = parts / (platform.per_minute / 60.0)  # real seconds
    with bench_stack("pace", settings=overrides, simulator=platform.config(FACTOR)) as stack:
        simulator, database_url = stack.simulator, stack.database_url
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        start_workers(stack, send_workers=2)
        probe = ledger_probe(stack)
        messages = [delivery.OutboundMessage(ACCOUNT_ID, b.to_user_id, b.text) for b in batch]
        t0 = time.monotonic()
        with LockoutSampler(simulator, ACCOUNT_ID, t0=t0) as sampler:
            delivery.enqueue_many(messages)
            _wait_final(probe, len(batch), deadline=t0 + 6 * minimum * FACTOR + 120)
            drain = time.monotonic() - t0
        snapshot = simulator.model.snapshot()
        arrivals = tally(snapshot, batch, t0=t0)
        learned, evidence = _learned(database_url)
    locked = sum(end - start for start, end in sampler.intervals) / FACTOR
    return {
        "guess": guess,
        "configured_per_minute": platform.per_minute * guess,
        "parts": parts,
        "delivered": arrivals.messages_delivered,
        "messages": len(batch),
        "duplicates": arrivals.duplicates,
        "out_of_order": arrivals.chats_out_of_order,
        "lockouts": snapshot.accounts[ACCOUNT_ID].lockouts,
        "refused": arrivals.rate_limited,
        "drain_seconds": drain / FACTOR,
        "minimum_seconds": minimum,
        "locked_seconds": locked,
        "ratio": drain / FACTOR / minimum,
        "ratio_after_lockouts": drain / FACTOR / (minimum + locked),
        "learned_per_minute": learned,
        "learned_from": evidence,
    }


def run_backlog() -> dict[str, Any]:
    """200 briefings enqueued at once into an account at its default rate."""
    overrides = clock.bench(BACKLOG_FACTOR, send_burst=1)
    interval = 60.0 / 15.0  # real seconds between two sends at the default rate
    long_ones = [
        b
        for b in briefings(messages=3 * BACKLOG_MESSAGES, chats=1, seed=BACKLOG_SEED, max_chunks=4)
        if len(b.chunks) >= 2
    ][:BACKLOG_MESSAGES]
    # One chat each; ``index`` is the place in enqueue order.
    batch = [Briefing(i, f"user{i}@im.wechat", b.text, b.chunks) for i, b in enumerate(long_ones)]
    with bench_stack("pace-backlog", settings=overrides) as stack:
        simulator = stack.simulator
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        start_workers(stack)
        probe = ledger_probe(stack)
        parts = sum(len(b.chunks) for b in batch)
        t0 = time.monotonic()
        delivery.enqueue_many(
            [delivery.OutboundMessage(ACCOUNT_ID, b.to_user_id, b.text) for b in batch]
        )
        _wait_final(probe, len(batch), deadline=t0 + 4 * parts * interval * BACKLOG_FACTOR + 120)
        snapshot = simulator.model.snapshot()
    arrived = {b.index: [m.arrived_at for m in snapshot.messages[b.to_user_id]] for b in batch}
    first = min(min(times) for times in arrived.values())
    drain = (max(max(times) for times in arrived.values()) - first) / BACKLOG_FACTOR
    sent_interval = drain / (parts - 1)
    ratios, sent_ratios, spans = [], [], []
    for b in batch:
        times = arrived[b.index]
        span = (max(times) - min(times)) / BACKLOG_FACTOR
        spans.append(span)
        ratios.append(span / ((len(b.chunks) - 1) * interval))
        sent_ratios.append(span / ((len(b.chunks) - 1) * sent_interval))
    finished = sorted(batch, key=lambda b: max(arrived[b.index]))
    displacement = [abs(place - order) for place, order in enumerate(b.index for b in finished)]
    inversions = sum(
        1 for i in range(len(finished) - 1) if finished[i].index > finished[i + 1].index
    )
    return {
        "messages": len(batch),
        "parts": parts,
        "interval_seconds": interval,
        "sent_interval_seconds": sent_interval,
        "drain_seconds": drain,
        "span_median_seconds": statistics.median(spans),
        "span_p95_seconds": _p95(spans),
        "span_max_seconds": max(spans),
        "ratio_median": statistics.median(ratios),
        "ratio_p95": _p95(ratios),
        "sent_ratio_median": statistics.median(sent_ratios),
        "sent_ratio_p95": _p95(sent_ratios),
        "order_displacement_max": max(displacement),
        "order_adjacent_inversions": inversions,
        "duplicates": snapshot.counters.duplicates,
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run() -> dict[str, Any]:
    platform = Platform()
    batch = [
        Briefing(b.index, f"user{b.index}@im.wechat", b.text, b.chunks)
        for b in briefings(messages=MESSAGES, chats=1, seed=SEED, max_chunks=MAX_CHUNKS)
    ]
    guesses = []
    for guess in GUESSES:
        print(f"pace: configured at {guess:g}x the platform's limit ...", flush=True)
        result = run_guess(guess, platform, batch)
        print(
            f"  lockouts {result['lockouts']}, refused {result['refused']}, drain "
            f"{result['drain_seconds']:.0f} s = {result['ratio']:.2f}x minimum "
            f"({result['ratio_after_lockouts']:.2f}x with the lockouts), learned "
            f"{result['learned_per_minute']}",
            flush=True,
        )
        guesses.append(result)
    print("pace: a backlog of 200 long messages ...", flush=True)
    backlog = run_backlog()
    print(
        f"  first to last part: median {backlog['ratio_median']:.2f}x, p95 "
        f"{backlog['ratio_p95']:.2f}x of (parts - 1) x interval; order displacement max "
        f"{backlog['order_displacement_max']}",
        flush=True,
    )
    return {
        "factor": FACTOR,
        "backlog_factor": BACKLOG_FACTOR,
        "platform": asdict(platform),
        "guesses": guesses,
        "backlog": backlog,
    }


TITLE = "10. Pace: a guessed rate, and long messages in a backlog"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
            _learned_text(g["learned_per_minute"], r["factor"], platform),
            f"{g['delivered']}/{g['messages']}, {g['duplicates']} dup",
        ]
        for g in r["guesses"]
    ]
    b = r["backlog"]
    return f"""## {TITLE}

{stamp(r)}

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
        table(
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


def _learned_text(per_minute: float | None, factor: float, platform: dict[str, Any]) -> str:
    """A learned rate on the compressed clock, as real sends a minute and x the limit."""
    if per_minute is None:
        return "-"
    real = per_minute * factor
    limit = platform["sends"] * 60 / platform["window_seconds"]
    return f"{real:.1f}/min ({real / limit:.2f}x)"
