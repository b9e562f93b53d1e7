"""Readers: two closed readers in a burst, and a true rate limit among readers.

**The platform** (the simulator, one fresh per run, clock compressed by
:data:`FACTOR` like the burst benchmark): 20 sends per account in any sliding 60 s
window, a 5-minute lockout beyond it; each reader gets the bot's messages only
within a day of their own last message (and 10 per message); a refusal of either
kind is the same bare ``{"ret": -2}``.

**Closed readers.** A burst of one message to each of 20 readers, at 95% of the
platform's rate. *All open*: every reader wrote lately (the platform knows; the
pipeline was not told). *Two closed*: two of them, back to back in the burst, did
not write for a day. Reported: how long the 18 others take against the 20 of the
all-open run, the account's cooldowns and pace changes, and, once the two write
(``record_inbound``), how long until their messages are delivered.

**A true rate limit.** The briefing burst of ``bench.burst`` (40 messages, 141
chunks, 8 chats) with the account configured at twice the platform's rate: *today*
is the pipeline without reader limits (``DELIVERY_READER_LIMITS=false``: a bare
``-2`` is the account's limit, as before readers existed); *known readers* has
every reader's last message recorded; *unknown readers* has none. Reported:
lockouts, refusals, refusals per lockout, drain time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

import delivery
from bench.common import bench_stack, ledger_probe, start_workers
from bench.markdown import stamp, table
from bench.observe import LockoutSampler
from bench.workload import ACCOUNT_ID, TOKEN, briefings
from delivery.devstack import clock
from delivery.simulator import PlatformSimulator, SimulatorConfig

__all__ = ["FACTOR", "TITLE", "render", "run"]

FACTOR = 1 / 25
RATE_FRACTION = 0.95
READERS, CLOSED = 20, (5, 6)
DAY = 86_400.0
POLL_SECONDS = 0.01


def _platform(*, budget: int | None) -> SimulatorConfig:
    return SimulatorConfig(
        rate_limit_sends=20,
        rate_limit_window_seconds=60.0 * FACTOR,
        lockout_seconds=300.0 * FACTOR,
        lockout_extend_seconds=5.0 * FACTOR,
        rate_limit_errmsg=None,  # a bare -2, like a reader's refusal
        reader_window_seconds=DAY * FACTOR,
        reader_budget=budget,
    )


def _reader(n: int) -> str:
    return f"reader{n}@im.wechat"


@dataclass(frozen=True)
class Run:
    """One run, in compressed seconds from the moment the burst was enqueued."""

    name: str
    drain_seconds: float  # until every message of the open readers was delivered
    messages: int
    lockouts: int
    refused_rate: int
    refused_reader: int
    strikes_or_pace_left: bool  # the account's gate learned a slower pace / counted strikes
    reader_wakeup_seconds: list[float]  # record_inbound -> delivered, per closed reader
    attempts: dict[str, int]

    @property
    def refusals_per_lockout(self) -> float | None:
        if not self.lockouts:
            return None
        return (self.refused_rate + self.refused_reader) / self.lockouts


def _run(
    name: str,
    *,
    config: SimulatorConfig,
    overrides: dict[str, str],
    messages: list[delivery.OutboundMessage],
    open_readers: set[str],
    told: bool,
    closed: list[str],
) -> Run:
    with bench_stack("readers", settings=overrides, simulator=config) as stack:
        simulator = stack.simulator
        stack.add_account(ACCOUNT_ID, token=TOKEN)
        for peer in sorted(open_readers):
            _writes(simulator, peer, told=told)
        start_workers(stack)
        probe = ledger_probe(stack)
        t0 = time.monotonic()
        with LockoutSampler(simulator, ACCOUNT_ID, t0=t0) as sampler:
            ids = delivery.enqueue_many(messages)
            waiting = {m: i for m, i in zip(messages, ids, strict=True) if m.to_user_id in closed}
            going = [i for i in ids if i not in waiting.values()]
            drain = _until_delivered(going, t0=t0, limit=600 * FACTOR * 10)
            wakeups = []
            for message, message_id in waiting.items():
                _until_status(message_id, "awaiting_reader")
                started = time.monotonic()
                _writes(simulator, message.to_user_id, told=True)
                _until_delivered([message_id], t0=started, limit=30)
                wakeups.append(time.monotonic() - started)
        rejected = simulator.model.snapshot().counters.rejected
        gate = redis.Redis.from_url(stack.redis_url)
        learned = any(
            gate.exists(f"delivery:acct:{{{ACCOUNT_ID}}}:{key}") for key in ("strikes", "pace")
        )
        return Run(
            name=name,
            drain_seconds=drain,
            messages=len(ids),
            lockouts=len(sampler.intervals),
            refused_rate=rejected.get("rate_limited", 0),
            refused_reader=rejected.get("reader_refused", 0),
            strikes_or_pace_left=learned,
            reader_wakeup_seconds=wakeups,
            attempts=probe.attempt_outcomes(),
        )


def _writes(simulator: PlatformSimulator, peer: str, *, told: bool) -> None:
    token = simulator.model.inject_inbound(ACCOUNT_ID, from_user_id=peer, text="hello")
    if told:
        delivery.record_inbound(ACCOUNT_ID, peer, context_token=token)


def _until_delivered(message_ids: list[str], *, t0: float, limit: float) -> float:
    deadline = time.monotonic() + limit
    while any(delivery.get_status(m).status != "delivered" for m in message_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not delivered after {limit:g}s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - t0


def _until_status(message_id: str, status: str, *, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while delivery.get_status(message_id).status != status:
        if time.monotonic() > deadline:
            raise RuntimeError(f"message {message_id} never {status}")
        time.sleep(POLL_SECONDS)


def _settings(rate_factor: float, **extra: str) -> dict[str, str]:
    allowed_per_minute = 20 / FACTOR  # 20 a minute on the compressed clock
    env = clock.bench(FACTOR, send_rate_per_minute=allowed_per_minute * rate_factor, send_burst=1)
    return env | extra


def run() -> dict[str, Any]:
    """The closed-readers pair and the rate-limit trio; JSON-ready results."""
    everyone = {_reader(n) for n in range(READERS)}
    closed = [_reader(n) for n in CLOSED]
    burst = [
        delivery.OutboundMessage(ACCOUNT_ID, _reader(n), f"morning briefing for reader {n}")
        for n in range(READERS)
    ]
    runs = []
    for name, open_readers in (("all open", everyone), ("two closed", everyone - set(closed))):
        print(f"readers: {name} ...", flush=True)
        runs.append(
            _run(
                name,
                config=_platform(budget=10),
                overrides=_settings(RATE_FRACTION),
                messages=burst,
                open_readers=open_readers,
                told=False,
                closed=[r for r in closed if r not in open_readers],
            )
        )
        print(f"  {_row(runs[-1])}", flush=True)
    batch = briefings(messages=40, chats=8, seed=40, max_chunks=6)
    chats = {b.to_user_id for b in batch}
    heavy = [delivery.OutboundMessage(ACCOUNT_ID, b.to_user_id, b.text) for b in batch]
    limits = []
    for name, extra, told in (
        ("today (no reader limits)", {"DELIVERY_READER_LIMITS": "false"}, True),
        ("known readers", {"DELIVERY_READER_BUDGET": "1000"}, True),
        ("unknown readers", {"DELIVERY_READER_BUDGET": "1000"}, False),
    ):
        print(f"readers: rate limit, {name} ...", flush=True)
        limits.append(
            _run(
                name,
                config=_platform(budget=None),
                overrides=_settings(2.0, **extra),
                messages=heavy,
                open_readers=chats,
                told=told,
                closed=[],
            )
        )
        print(f"  {_row(limits[-1])}", flush=True)
    all_open, two_closed = runs
    return {
        "factor": FACTOR,
        "closed_readers": [asdict(r) for r in runs],
        "drain_ratio_18_vs_20": two_closed.drain_seconds / all_open.drain_seconds,
        "rate_limit": [
            asdict(r) | {"refusals_per_lockout": r.refusals_per_lockout} for r in limits
        ],
    }


def _row(r: Run) -> str:
    per = r.refusals_per_lockout
    return (
        f"{r.name}: drain {r.drain_seconds:.2f}s; lockouts {r.lockouts}; refused "
        f"{r.refused_rate} (rate) + {r.refused_reader} (reader)"
        + (f" = {per:.1f} per lockout" if per is not None else "")
        + f"; strikes/pace left: {r.strikes_or_pace_left}"
        + (
            f"; woken {', '.join(f'{s:.2f}s' for s in r.reader_wakeup_seconds)}"
            if r.reader_wakeup_seconds
            else ""
        )
    )


TITLE = "5. Readers"


def render(r: dict[str, Any]) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
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
    return f"""## {TITLE}

{stamp(r)}

`python -m bench readers`. The simulator refuses a reader who did not write within a
day (or past 10 sends per message) with a bare `{{"ret": -2}}`, the same answer as its
rate limit (20 sends per 60 s, then a 5-minute lockout); the clock is compressed
{scale}x. **Closed readers**: a burst of one message to each of 20 readers at 95% of
the platform's rate; in *two closed*, two of them (back to back in the burst) did not
write for a day, and the pipeline knows none of the 20.

{table(closed_head, closed_rows)}

The 18 open readers drained in **{r["drain_ratio_18_vs_20"]:.2f}x** the time the 20 took
with everyone open (target: within 1.15x), with no cooldown and no pace change. Once
the two wrote (`record_inbound`), their messages were delivered after {wakeups}.

**A true rate limit among readers**: the burst of section 1 (40 messages, 141 chunks,
8 chats) with the account configured at twice the platform's rate. *today*: without
reader limits, a bare `-2` is the account's limit, as before readers existed.

{table(["run", "lockouts", "refusals", "refusals per lockout", "drain"], limit_rows)}
"""
