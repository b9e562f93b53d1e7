"""Two example producers, used by the demo and shown in docs/briefings.md.

``daily_briefing`` writes one text for everyone; ``leaderboard`` writes each
reader a text with their own rank. Real producers would read a database or an
API; these make their numbers from the slot so that they are reproducible.
"""

from __future__ import annotations

import random

from delivery.briefings.producers import BriefingSlot

__all__ = ["daily_briefing", "leaderboard"]

_TEAM = ["Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis"]


def daily_briefing(slot: BriefingSlot) -> str:
    """A morning briefing: the same text for every recipient."""
    rng = random.Random(slot.slot_at.isoformat())
    items = "\n".join(
        f"{n}. {topic}: {rng.randint(1, 9)} new item(s)"
        for n, topic in enumerate(["Deploys", "Incidents", "Pull requests", "Support"], 1)
    )
    return (
        f"Good morning! Briefing for {slot.local_time:%A %d %B %Y, %H:%M}.\n\n"
        f"{items}\n\nReply to this chat to ask for details."
    )


def leaderboard(slot: BriefingSlot) -> dict[str, str]:
    """A leaderboard report: every recipient sees the table and their own rank."""
    rng = random.Random(f"board-{slot.slot_at.isoformat()}")
    scores = sorted(((rng.randint(10, 99), name) for name in _TEAM), reverse=True)
    table = "\n".join(
        f"{rank:>2}. {name:<9} {score}" for rank, (score, name) in enumerate(scores, 1)
    )
    texts = {}
    for index, recipient in enumerate(slot.recipients):
        rank = index % len(scores) + 1
        texts[recipient] = (
            f"Leaderboard, {slot.local_time:%d %b %H:%M}\n\n```\n{table}\n```\n\n"
            f"You are number {rank} this round."
        )
    return texts
