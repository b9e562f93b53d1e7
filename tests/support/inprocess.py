"""A send pipeline running in the test's own process, to force the order of events.

Everything is real (Redis, the SQL ledger, HTTP to the simulator); only the
process is the test's, so two "tasks" of one chunk can run in threads, or a
step can be driven by hand. Offers go to the real lines and tasks to the real
broker unless the test hands its own :class:`Published`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from sqlalchemy import select

from delivery import runtime
from delivery.ilink.pool import ClientPool
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message
from delivery.ledger.outbox import Armed
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.dispatch import LineDispatcher
from delivery.pipeline.results import Done, Wait
from delivery.pipeline.send import SendPipeline
from delivery.pipeline.stash import AnswerStash
from delivery.ratelimit.gate import AccountGate, Pick, Rate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.trials import TrialPasses


@dataclass(frozen=True)
class Task:
    """A send task the pipeline published: a chunk whose slot came."""

    chunk_id: int
    generation: int
    account_id: str
    countdown_seconds: float


class Published:
    """Keeps what the pipeline offered to lines (``armed``) and the tasks it published
    (``tasks``), and offers and publishes nothing."""

    def __init__(self) -> None:
        self.armed: list[Armed] = []
        self.tasks: list[Task] = []

    def __call__(self, armed: Sequence[Armed]) -> int:
        self.armed.extend(armed)
        return len(armed)

    def publish(self, pick: Pick, account_id: str) -> bool:
        self.tasks.append(Task(int(pick.ticket), pick.generation, account_id, pick.in_seconds))
        return True


def holder_of(pipeline: SendPipeline, account_id: str) -> Task | None:
    """The part holding the account's next slot (its task published), if any."""
    gate = pipeline._ctx.gate
    value = gate._client.get(gate.key(account_id, "holder"))
    if value is None:
        return None
    ticket, generation = value.decode().split("|")[:2]
    return Task(int(ticket), int(generation), account_id, 0.0)


def settle(pipeline: SendPipeline, chunk_id: int, *, timeout: float = 30) -> Done:
    """Run the chunk's task as a worker would, until it is done: honouring the countdowns
    it asks for (its slot), and running first the task of a part whose slot comes before
    it (the line's; no worker of this test runs the broker's tasks)."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"chunk {chunk_id} kept waiting"
        with session_scope(pipeline._ctx.engine) as db:
            row = db.execute(
                select(Chunk.generation, Message.account_id)
                .join(Message, Message.id == Chunk.message_id)
                .where(Chunk.id == chunk_id)
            ).one()
        result = pipeline.process(chunk_id, row[0])
        if isinstance(result, Wait):
            time.sleep(min(result.seconds, 1.0))
            continue
        holder = holder_of(pipeline, row[1])
        if "waits in the account's line" not in result.summary or holder is None:
            return result
        before = pipeline.process(holder.chunk_id, holder.generation, holder.account_id)
        if isinstance(before, Wait):
            time.sleep(min(before.seconds, 1.0))


def in_process_pipeline(
    redis_url: str,
    *,
    publisher: Published | None = None,
    per_minute: float = 6000,
    lock_ttl_seconds: float = 30,
) -> SendPipeline:
    """A pipeline on this process's settings (ledger URL) and ``redis_url``."""
    settings = runtime.current().settings
    client = redis.Redis.from_url(redis_url)
    gate = AccountGate(client, rate=Rate(per_minute=per_minute), lock_ttl_seconds=lock_ttl_seconds)
    tasks = publisher.publish if publisher is not None else runtime.current().tasks
    return SendPipeline(
        PipelineContext(
            engine=runtime.current().engine,
            gate=gate,
            clients=ClientPool(timeout_seconds=10),
            publisher=publisher if publisher is not None else LineDispatcher(gate, tasks),
            tasks=tasks,
            stash=AnswerStash(client, prefix=settings.redis_key_prefix),
            probe=RefusalProbe(client, prefix=settings.redis_key_prefix),
            trials=TrialPasses(client, prefix=settings.redis_key_prefix),
            settings=settings,
            backoff=lambda failures: 0.1,
            host="test",
        )
    )
