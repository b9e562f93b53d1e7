"""How one run of a send task ended: a small tagged result the task maps to Celery.

``Done`` ends the task (sent, delivered, dead, parked, superseded, nothing to
do); ``Wait`` retries it after ``seconds`` (the task stays the chunk's one live
task). Example::

    match pipeline.process(chunk_id, generation):
        case Wait(seconds=seconds):
            raise task.retry(countdown=seconds)
        case Done(summary=summary):
            return summary
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Done", "StepResult", "Wait"]


@dataclass(frozen=True)
class Done:
    """The task's work is over; ``summary`` says why (for logs and Flower)."""

    summary: str


@dataclass(frozen=True)
class Wait:
    """Run again in ``seconds``; ``why`` says what it waits for."""

    seconds: float
    why: str

    @property
    def summary(self) -> str:
        return f"{self.why}; retry in {self.seconds:.2f}s"


StepResult = Done | Wait
