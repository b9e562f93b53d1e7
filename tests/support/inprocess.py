"""A send pipeline running in the test's own process, to force the order of events.

Everything is real (Redis, the SQL ledger, HTTP to the simulator); only the
process is the test's, so two "tasks" of one chunk can run in threads, or a
step can be driven by hand. Publishing goes to the real broker unless the test
hands its own publisher.
"""

from __future__ import annotations

import redis

from delivery import runtime
from delivery.ilink.pool import ClientPool
from delivery.ledger.outbox import Armed
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.dispatch import Publisher
from delivery.pipeline.send import SendPipeline
from delivery.pipeline.stash import AnswerStash
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.trials import TrialPasses
from delivery.settings import get_settings


class Published:
    """A publisher that keeps what it was handed (and publishes nothing)."""

    def __init__(self) -> None:
        self.armed: list[Armed] = []

    def __call__(self, armed: Armed) -> bool:
        self.armed.append(armed)
        return True


def in_process_pipeline(
    redis_url: str,
    *,
    publisher: Publisher | None = None,
    per_minute: float = 6000,
    lock_ttl_seconds: float = 30,
) -> SendPipeline:
    """A pipeline on this process's settings (ledger URL) and ``redis_url``."""
    settings = get_settings()
    client = redis.Redis.from_url(redis_url)
    gate = AccountGate(client, rate=Rate(per_minute=per_minute), lock_ttl_seconds=lock_ttl_seconds)
    return SendPipeline(
        PipelineContext(
            engine=runtime.engine(),
            gate=gate,
            clients=ClientPool(timeout_seconds=10),
            publisher=publisher or runtime.publisher(),
            stash=AnswerStash(client, prefix=settings.redis_key_prefix),
            probe=RefusalProbe(client, prefix=settings.redis_key_prefix),
            trials=TrialPasses(client, prefix=settings.redis_key_prefix),
            settings=settings,
            backoff=lambda failures: 0.1,
            host="test",
        )
    )
