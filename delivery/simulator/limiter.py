"""The platform's frequency limit for one account: a sliding window and a lockout.

At most ``rate_limit_sends`` sends are accepted in any window of
``rate_limit_window_seconds``: a send accepted at ``t`` stops counting at exactly
``t + window``. The send that would exceed it is refused and
starts a lockout of ``lockout_seconds``; every send during a lockout is refused and
pushes its end ``lockout_extend_seconds`` further, which is what punishes a client
that hammers. Times are seconds on the model's clock.

Example::

    limiter = AccountLimiter()
    if not limiter.locked_out(now, config=config) and not limiter.over_limit(now, config=config):
        limiter.record(now)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from delivery.simulator.config import SimulatorConfig

__all__ = ["AccountLimiter"]


@dataclass
class AccountLimiter:
    """Rate state of one account. Not thread-safe: the model's lock guards it."""

    recent: deque[float] = field(default_factory=deque)
    lockout_until: float | None = None
    lockouts: int = 0  # lockouts started (a send over the window), not the sends during one
    refusals: int = 0  # refusals of the current (or last) lockout, the one that started it too

    def locked_out(self, now: float, *, config: SimulatorConfig) -> bool:
        """Whether a send at ``now`` falls in a lockout; if so the lockout grows."""
        if self.lockout_until is None or now >= self.lockout_until:
            self.lockout_until = None
            return False
        self.lockout_until += config.lockout_extend_seconds
        self.refusals += 1
        return True

    def over_limit(self, now: float, *, config: SimulatorConfig) -> bool:
        """Whether accepting a send at ``now`` would exceed the window; if so, lock out."""
        if config.rate_limit_sends is None:
            return False
        horizon = now - config.rate_limit_window_seconds
        while self.recent and self.recent[0] <= horizon:
            self.recent.popleft()
        if len(self.recent) < config.rate_limit_sends:
            return False
        self.lockout_until = now + config.lockout_seconds
        self.lockouts += 1
        self.refusals = 1
        return True

    def bare(self, *, config: SimulatorConfig) -> bool:
        """Whether the refusal just counted is answered with a bare ``-2``."""
        return self.refusals <= config.rate_limit_bare_refusals

    def record(self, now: float) -> None:
        """Count an accepted send at ``now``."""
        self.recent.append(now)
