"""A running delivery stack for end-to-end tests: ledger, Redis, simulator, workers.

The harness is :func:`delivery.devstack.stack.local_stack`, on the tests' clock
(:data:`delivery.devstack.clock.TESTS`: sub-second backoffs and cooldowns, so the
real logic runs in seconds). This process keeps the runtime its fixtures installed;
each test can override any ``DELIVERY_*`` setting of the processes it starts
afterwards through ``stack.overrides``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from delivery import runtime
from delivery.devstack import clock
from delivery.devstack.processes import ManagedProcess
from delivery.devstack.stack import LocalStack, local_stack
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.simulator import SimulatorControl, Snapshot
from tests.support.waiting import wait_until

COMPRESSED = clock.TESTS
TOKEN = "tok-test-0000-secret-A"


class Stack(LocalStack):
    """What one end-to-end test runs against."""

    @property
    def overrides(self) -> dict[str, str]:
        """The ``DELIVERY_*`` settings of the processes started from now on."""
        return self.settings

    @property
    def workers(self) -> list[ManagedProcess]:
        return self.processes

    @property
    def control(self) -> SimulatorControl:
        return SimulatorControl(self.simulator.base_url)

    def add_account(
        self, account_id: str = "bot-1", *, token: str = TOKEN, owns_inbound: bool = False
    ) -> str:
        return super().add_account(account_id, token=token, owns_inbound=owns_inbound)

    def stop(self) -> None:
        self.stop_processes()

    def worker_logs(self) -> str:
        return self.logs()

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
    """A stack on this ledger and this process's Redis (the fixtures' settings)."""
    with local_stack(
        log_dir,
        settings=clock.TESTS,
        database_url=database_url,
        redis_url=runtime.current().settings.broker_url,
        in_process=False,
        kind=Stack,
    ) as stack:
        assert isinstance(stack, Stack)
        yield stack
