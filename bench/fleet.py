"""Many accounts at once: the workload, the pipeline around it, and what to check after.

A *fleet* is ``accounts`` bot accounts, each with its own send interval and
``chats`` readers; every account sends ``messages`` one-part messages, dealt
round-robin over its readers (so every chat gets several, in order). All of them
are enqueued before any send worker starts: the whole fleet is waiting at once.

**Own rates.** The pipeline has one configured rate, ``DELIVERY_SEND_RATE_PER_MINUTE``,
for every account; what makes accounts differ is the rate limit each has learned
(``accounts.learned_rate_per_minute``, below the configured rate). The fleet gives
each account its own rate that way: :func:`preset_rates` stores the account's rate
as its learned limit, through the ledger's own verb, so every account sends at its
own interval through the production gate.

**After the run**, :func:`verify` reads the simulator's records and the ledger:
every part arrived exactly once, each chat in enqueue order, one send of an
account in flight at a time, and no account faster than its own rate.

Example::

    fleet = make_fleet(accounts=1000, messages=10, chats=5, slowest_per_minute=0.7,
                       fastest_per_minute=1.4)
    with fleet_pipeline(fleet, backend="postgresql", send_workers=1, overrides=env) as run:
        run.start_send_workers()
        run.wait_done(timeout_seconds=900)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

import delivery
from bench.common import Backend, bench_stack, ledger_probe, start_workers
from bench.observe import LedgerProbe
from delivery import runtime
from delivery.devstack import ManagedProcess
from delivery.devstack.stack import LocalStack
from delivery.ledger import accounts
from delivery.ledger.db import session_scope
from delivery.ledger.types import utcnow
from delivery.ratelimit.gate import Rate
from delivery.simulator import PlatformSimulator, Snapshot

__all__ = [
    "Fleet",
    "FleetAccount",
    "FleetRun",
    "checks_text",
    "fleet_pipeline",
    "make_fleet",
    "verify",
]

ENQUEUE_BATCH = 500  # messages per enqueue_many call
PRESET_MEMORY_SECONDS = 86_400.0  # the preset rate outlives any run
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class FleetAccount:
    """One account: its id, token, own send interval (ms) and readers."""

    id: str
    token: str
    interval_ms: int
    chats: tuple[str, ...]


@dataclass(frozen=True)
class Part:
    """One message of one part: the ``seq``-th of its account, to one of its chats."""

    account_id: str
    to_user_id: str
    seq: int
    text: str


@dataclass(frozen=True)
class Fleet:
    accounts: tuple[FleetAccount, ...]
    parts: tuple[Part, ...]

    @property
    def fastest_interval_ms(self) -> int:
        return min(a.interval_ms for a in self.accounts)

    @property
    def sends_per_second(self) -> float:
        """The sum of every account's own rate."""
        return sum(1000 / a.interval_ms for a in self.accounts)


def make_fleet(
    *,
    accounts: int,
    messages: int,
    chats: int,
    slowest_per_minute: float,
    fastest_per_minute: float,
) -> Fleet:
    """Rates spread evenly on a log scale from the slowest account to the fastest."""
    members, parts = [], []
    for i in range(accounts):
        share = i / max(1, accounts - 1)
        per_minute = slowest_per_minute * (fastest_per_minute / slowest_per_minute) ** share
        account_id = f"fleet-{i:04d}"
        readers = tuple(f"a{i:04d}r{j}@im.wechat" for j in range(chats))
        members.append(
            FleetAccount(
                account_id, f"fleet-token-{i:04d}-secret", round(60_000 / per_minute), readers
            )
        )
        for seq in range(messages):
            text = f"{account_id} message {seq}: " + " ".join(["lorem ipsum"] * 20)
            parts.append(Part(account_id, readers[seq % chats], seq, text))
    return Fleet(tuple(members), tuple(parts))


def preset_rates(fleet: Fleet, *, configured_ms: int) -> None:
    """Give each account slower than the configured rate its own, as a learned limit."""
    with session_scope(runtime.current().engine) as db:
        for account in fleet.accounts:
            if account.interval_ms > configured_ms:
                accounts.learn_rate(
                    db,
                    account.id,
                    per_minute=60_000 / account.interval_ms,
                    evidence="preset by bench.fleet",
                    now=utcnow(),
                    memory_seconds=PRESET_MEMORY_SECONDS,
                )


def gate_interval_ms(account: FleetAccount, configured_ms: int) -> int:
    """The interval the gate keeps for the account (``Rate.interval_ms`` of its own)."""
    return max(configured_ms, Rate(per_minute=60_000 / account.interval_ms).interval_ms)


@dataclass
class FleetRun:
    """The pipeline around a fleet, for the length of a ``with`` block."""

    fleet: Fleet
    stack: LocalStack
    simulator: PlatformSimulator
    redis_client: redis.Redis
    probe: LedgerProbe
    send_workers: list[ManagedProcess] = field(default_factory=list)
    default_worker: ManagedProcess | None = None

    def enqueue(self) -> float:
        """Enqueue every part (in batches); returns the seconds it took."""
        started = time.monotonic()
        parts = self.fleet.parts
        for at in range(0, len(parts), ENQUEUE_BATCH):
            delivery.enqueue_many(
                delivery.OutboundMessage(p.account_id, p.to_user_id, p.text)
                for p in parts[at : at + ENQUEUE_BATCH]
            )
        return time.monotonic() - started

    def start_workers(self, send_workers: int) -> None:
        """``send_workers`` send workers (prefork, concurrency 1), then the default one
        with beat; each is ready (answers a ping) when this returns."""
        *self.send_workers, self.default_worker = start_workers(
            self.stack, send_workers=send_workers
        )

    def wait_done(self, *, timeout_seconds: float) -> None:
        """Wait until every message is delivered or dead."""
        deadline = time.monotonic() + timeout_seconds
        total = len(self.fleet.parts)
        while (states := self.probe.statuses())["delivered"] + states["dead"] < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fleet not done after {timeout_seconds:g}s: {dict(states)}")
            time.sleep(POLL_SECONDS)


@contextmanager
def fleet_pipeline(
    fleet: Fleet,
    *,
    name: str,
    backend: Backend,
    overrides: dict[str, str],
    configured_ms: int | None = None,
) -> Iterator[FleetRun]:
    """A private Redis, a ledger, the simulator (no limit) with every account, the
    accounts added, and (``configured_ms``) each account's own rate preset; no worker
    yet (see :meth:`FleetRun.start_workers`)."""
    with bench_stack(name, settings=overrides, ledger=backend) as stack:
        for account in fleet.accounts:
            stack.add_account(account.id, token=account.token)
        assert stack.redis is not None
        if configured_ms is not None:
            preset_rates(fleet, configured_ms=configured_ms)
        probe = ledger_probe(stack)
        yield FleetRun(fleet, stack, stack.simulator, stack.redis.client(), probe)


def verify(
    fleet: Fleet, snapshot: Snapshot, statuses: dict[str, int], *, configured_ms: int | None
) -> dict[str, Any]:
    """The guarantees, from the simulator's records and the ledger's statuses.

    ``rate_excess_intervals`` is, over every account and every pair of its sends
    ``i < j``, the most that ``t_j - t_i`` fell short of ``(j - i)`` own intervals,
    in intervals: 0 or less is never faster than its rate; the gate lets a late
    send catch up by half an interval (``scripts.ACQUIRE``), so up to 0.5 is by
    design. Only checked when the accounts have their own rates (``configured_ms``).
    """
    expected = {p.text: p for p in fleet.parts}
    arrived: dict[str, int] = {}
    out_of_order = 0
    wrong_account = 0
    for to_user_id, items in snapshot.messages.items():
        seqs = [expected[i.text].seq for i in items if i.text in expected]
        out_of_order += seqs != sorted(seqs)
        for item in items:
            arrived[item.text] = arrived.get(item.text, 0) + 1
            part = expected.get(item.text)
            wrong_account += part is None or part.account_id != item.account_id
            wrong_account += part is not None and part.to_user_id != to_user_id
    missing = sum(1 for text in expected if text not in arrived)
    twice = sum(n - 1 for n in arrived.values() if n > 1)
    excess = -math.inf
    if configured_ms is not None:
        for account in fleet.accounts:
            times = snapshot.accounts[account.id].accepted_at
            interval = gate_interval_ms(account, configured_ms) / 1000
            excess = max(excess, _rate_excess(times, interval))
    return {
        "parts": len(fleet.parts),
        "arrived": len(arrived),
        "missing": missing,
        "arrived_twice": twice,
        "platform_duplicates": snapshot.counters.duplicates,
        "rejected": dict(snapshot.counters.rejected),
        "wrong_chat_or_account": wrong_account,
        "chats_out_of_order": out_of_order,
        "max_in_flight_per_account": max(r.max_in_flight for r in snapshot.accounts.values()),
        "rate_excess_intervals": None if excess == -math.inf else excess,
        "ledger_statuses": dict(statuses),
    }


def _rate_excess(times: tuple[float, ...], interval: float) -> float:
    """max over i < j of ((j - i) * interval - (t_j - t_i)) / interval."""
    worst = -math.inf
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            worst = max(worst, ((j - i) * interval - (times[j] - times[i])) / interval)
    return worst


def checks_text(c: dict[str, Any]) -> str:
    """The guarantees :func:`verify` checked, as a sentence of ``BENCHMARKS.md``."""
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
