"""Readers as the simulated platform sees them: a reply window and a send budget.

The platform delivers a bot's messages to a reader only within
``reader_window_seconds`` of the reader's last message to the bot, and only
``reader_budget`` of them per inbound message; beyond either it answers HTTP 200
``{"ret": -2}`` with no errmsg, the same bare answer as a rate limit. Both are
off (``None``) by default. A reader who never wrote is outside the window.

Example::

    book = ReaderBook()
    book.heard("u@im.wechat", now=0.0)
    book.refuses("u@im.wechat", now=10.0, window_seconds=86400, budget=10)   # False
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReaderBook"]


@dataclass
class _Reader:
    last_inbound: float | None = None
    sends: int = 0


@dataclass
class ReaderBook:
    """One account's readers. Not thread-safe: the model's lock guards it."""

    _readers: dict[str, _Reader] = field(default_factory=dict)

    def heard(self, peer_id: str, *, now: float) -> None:
        """The reader wrote at ``now``: the window reopens, the budget starts again."""
        self._readers[peer_id] = _Reader(last_inbound=now, sends=0)

    def refuses(
        self, peer_id: str, *, now: float, window_seconds: float | None, budget: int | None
    ) -> bool:
        """Whether a send to the reader now is refused (their window or budget)."""
        reader = self._readers.get(peer_id, _Reader())
        if window_seconds is not None and (
            reader.last_inbound is None or now - reader.last_inbound > window_seconds
        ):
            return True
        return budget is not None and reader.sends >= budget

    def sent(self, peer_id: str) -> None:
        """One send to the reader was accepted."""
        self._readers.setdefault(peer_id, _Reader()).sends += 1
