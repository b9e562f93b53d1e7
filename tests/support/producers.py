"""Briefing producers for the tests (importable as ``tests.support.producers:...``)."""

from __future__ import annotations

from delivery.briefings import BriefingSlot


def hello(slot: BriefingSlot) -> str:
    return f"hello from {slot.name} at {slot.slot_at:%H:%M:%S.%f}"


def per_reader(slot: BriefingSlot) -> dict[str, str]:
    return {r: f"{r}, your rank at {slot.slot_at:%H:%M:%S}" for r in slot.recipients}


def broken(slot: BriefingSlot) -> str:
    raise RuntimeError("the leaderboard database is down")


def returns_a_number(slot: BriefingSlot) -> int:
    return 42


def blank(slot: BriefingSlot) -> str:
    return "   "
