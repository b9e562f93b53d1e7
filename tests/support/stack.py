"""A running delivery stack for end-to-end tests: ledger, Redis, simulator, workers.

Time knobs are compressed (sub-second backoffs and cooldowns) so the real logic
runs in seconds; each test can override any ``DELIVERY_*`` setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

import delivery
from delivery.devstack import celery_argv
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.simulator import PlatformSimulator, SimulatorControl, Snapshot
from tests.support.configure import child_env
from tests.support.inbound import start_relay_process
from tests.support.processes import CeleryProcess, start_worker
from tests.support.waiting import wait_until

# The compressed clock: the same pipeline, minutes turned into fractions of seconds.
COMPRESSED = {
    "DELIVERY_SEND_RATE_PER_MINUTE": "1200",  # one send per 50 ms per account
    "DELIVERY_SEND_BURST": "1",
    "DELIVERY_CHUNK_GAP_SECONDS": "0.05",
    "DELIVERY_CHUNK_GAP_BASE_SECONDS": "0.05",
    "DELIVERY_CHUNK_GAP_PER_CHUNK_SECONDS": "0.01",
    "DELIVERY_COOLDOWN_BASE_SECONDS": "0.5",
    "DELIVERY_COOLDOWN_MAX_SECONDS": "4",
    "DELIVERY_BACKOFF_BASE_SECONDS": "0.1",
    "DELIVERY_BACKOFF_MAX_SECONDS": "1",
    "DELIVERY_BACKOFF_FLOOR_SECONDS": "0.05",
    "DELIVERY_SESSION_RECHECK_SECONDS": "0.3",
    "DELIVERY_SESSION_CHECK_INTERVAL_SECONDS": "1",
    "DELIVERY_OUTAGE_RETRY_SECONDS": "0.5",
    "DELIVERY_RECONCILE_INTERVAL_SECONDS": "1",
    "DELIVERY_RECONCILE_GRACE_SECONDS": "2",
    "DELIVERY_VISIBILITY_TIMEOUT_SECONDS": "60",
    "DELIVERY_HTTP_TIMEOUT_SECONDS": "2",
    "DELIVERY_SEND_LOCK_TTL_SECONDS": "5",
    "DELIVERY_BRIEFING_TICK_SECONDS": "0.25",
    "DELIVERY_BEAT_LOCK_TTL_SECONDS": "3",
    "DELIVERY_READER_PROBE_PAUSE_SECONDS": "0.05",
    "DELIVERY_READER_RECHECK_SECONDS": "30",
    "DELIVERY_INBOUND_SCAN_SECONDS": "0.1",
    "DELIVERY_INBOUND_LEASE_SECONDS": "1",
    "DELIVERY_INBOUND_WEBHOOK_TIMEOUT_SECONDS": "2",
}

TOKEN = "tok-test-0000-secret-A"


@dataclass
class Stack:
    """What one end-to-end test runs against."""

    database_url: str
    simulator: PlatformSimulator
    log_dir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    workers: list[CeleryProcess] = field(default_factory=list)

    @property
    def control(self) -> SimulatorControl:
        return SimulatorControl(self.simulator.base_url)

    def env(self) -> dict[str, str]:
        env = child_env()
        env.update(COMPRESSED)
        env.update(self.overrides)
        env["DELIVERY_DATABASE_URL"] = self.database_url
        return env

    def add_account(
        self, account_id: str = "bot-1", *, token: str = TOKEN, owns_inbound: bool = False
    ) -> str:
        delivery.add_account(
            account_id, token=token, base_url=self.simulator.base_url, owns_inbound=owns_inbound
        )
        self.simulator.model.register_account(account_id, token=token)
        return account_id

    def start_worker(self, **options: object) -> CeleryProcess:
        worker = start_worker(env=self.env(), log_dir=self.log_dir, **options)  # type: ignore[arg-type]
        self.workers.append(worker)
        return worker

    def start_relay(self, name: str = "relay") -> CeleryProcess:
        """A real ``delivery relay`` process, once it runs."""
        relay = start_relay_process(self.env(), self.log_dir / f"{name}.log")
        self.workers.append(relay)
        return relay

    def start_beat(self, name: str) -> CeleryProcess:
        """A real ``celery beat`` with the project's leader scheduler."""
        argv = celery_argv("beat", beat_schedule=self.log_dir / f"{name}-schedule")
        beat = CeleryProcess(argv, env=self.env(), log_path=self.log_dir / f"{name}.log")
        beat.wait_for_log("beat: Starting", timeout_seconds=60)
        self.workers.append(beat)
        return beat

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def worker_logs(self) -> str:
        return "\n".join(w.log_text() for w in self.workers)

    # -- what happened ------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self.simulator.model.snapshot()

    def statuses(self, message_ids: list[str]) -> dict[str, str]:
        with session_scope(engine_for(self.database_url)) as session:
            rows = session.execute(
                select(Message.id, Message.status).where(
                    Message.id.in_([int(m) for m in message_ids])
                )
            )
            return {str(i): s for i, s in rows}

    def wait_final(self, message_ids: list[str], *, timeout: float) -> dict[str, str]:
        def final() -> dict[str, str] | None:
            states = self.statuses(message_ids)
            done = all(s in ("delivered", "unconfirmed", "dead") for s in states.values())
            return states if done and len(states) == len(message_ids) else None

        def progress() -> str:
            states = self.statuses(message_ids)
            counts: dict[str, int] = {}
            for state in states.values():
                counts[state] = counts.get(state, 0) + 1
            tail = self.worker_logs()[-3000:]
            return f"every message final; now {counts}\n--- worker log tail ---\n{tail}"

        result = wait_until(final, timeout=timeout, interval=0.2, message=progress)
        assert result is not None
        return result

    def attempts(self) -> list[Attempt]:
        with session_scope(engine_for(self.database_url)) as session:
            return list(session.scalars(select(Attempt).order_by(Attempt.id)))

    def chunks_of(self, message_id: str) -> list[Chunk]:
        with session_scope(engine_for(self.database_url)) as session:
            return list(
                session.scalars(
                    select(Chunk).where(Chunk.message_id == int(message_id)).order_by(Chunk.seq)
                )
            )


def expected_texts(message_ids: list[str], database_url: str) -> dict[str, list[tuple[str, str]]]:
    """Per recipient, the (client_id, text) of every chunk in send order."""
    with session_scope(engine_for(database_url)) as session:
        rows = session.execute(
            select(Message.to_user_id, Chunk.client_id, Chunk.text)
            .join(Chunk, Chunk.message_id == Message.id)
            .where(Message.id.in_([int(m) for m in message_ids]))
            .order_by(Message.id, Chunk.seq)
        )
        result: dict[str, list[tuple[str, str]]] = {}
        for to_user_id, client_id, text in rows:
            result.setdefault(to_user_id, []).append((client_id, text))
        return result


def running_stack(database_url: str, log_dir: Path) -> Iterator[Stack]:
    with PlatformSimulator() as simulator:
        stack = Stack(database_url=database_url, simulator=simulator, log_dir=log_dir)
        try:
            yield stack
        finally:
            stack.stop()
