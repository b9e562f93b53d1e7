"""One claimed attempt: everything the call and the recording of its answer need."""

from __future__ import annotations

from dataclasses import dataclass, fields

from delivery.ledger.outbox import Claim

__all__ = ["Job"]


@dataclass(frozen=True)
class Job(Claim):
    """A claim with its attempt row written. Token and texts never print."""

    attempt_id: int
    generation: int | None  # the generation of the task that claimed it

    @classmethod
    def of(cls, claim: Claim, *, attempt_id: int, generation: int | None) -> Job:
        own = {f.name: getattr(claim, f.name) for f in fields(Claim)}
        return cls(**own, attempt_id=attempt_id, generation=generation)

    @property
    def label(self) -> str:
        return f"message {self.message_id} chunk {self.seq}/{self.chunk_count}"
