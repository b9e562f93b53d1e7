"""Per-account send gate in Redis: lock, rate (GCRA) and rate-limit cooldown."""

from delivery.ratelimit.gate import AccountGate, AccountState, Decision, Rate

__all__ = ["AccountGate", "AccountState", "Decision", "Rate"]
