"""One admitted attempt: everything the call and the recording of its answer need."""

from __future__ import annotations

from dataclasses import dataclass, fields

from delivery.ledger.outbox import Look

__all__ = ["Job"]


@dataclass(frozen=True)
class Job(Look):
    """A look at the chunk with its attempt row written. Token and texts never print.

    ``text`` is what this attempt sends (with the reader's notice, if any);
    ``generation`` here is the task's (None: a task from before leases)."""

    attempt_id: int
    attempt_no: int
    task_generation: int | None
    lost_before: bool  # an earlier attempt was cut off mid-call

    @classmethod
    def of(
        cls,
        look: Look,
        *,
        attempt_id: int,
        attempt_no: int,
        task_generation: int | None,
        text: str,
        lost_before: bool,
    ) -> Job:
        own = {f.name: getattr(look, f.name) for f in fields(Look)}
        own["text"] = text
        return cls(
            **own,
            attempt_id=attempt_id,
            attempt_no=attempt_no,
            task_generation=task_generation,
            lost_before=lost_before,
        )

    @property
    def label(self) -> str:
        return f"message {self.message_id} chunk {self.seq}/{self.chunk_count}"
