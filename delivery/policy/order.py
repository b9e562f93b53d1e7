"""A part's place in its account's line (pure): who goes first when several are due.

The next part of a message already started goes before every first part (a reader
who saw part 1 gets part 2 at the account's next slot, not after the backlog); of
first parts, a reply to a reader's message goes before every push not yet started;
within each, older messages (smaller ids, enqueued first) go first. The key is a
decimal string, lower first, as the line in Redis sorts it.

Example::

    order_key(message_id=7, started=True) < order_key(message_id=3, started=False)  # True
"""

from __future__ import annotations

__all__ = ["PUSH", "REPLY", "STARTED", "order_key"]

STARTED, REPLY, PUSH = 0, 1, 2  # classes of a place in the line
_CLASS_SPAN = 2**40  # message ids stay far below 2**40


def order_key(*, message_id: int, started: bool, reply: bool = False) -> str:
    """A part's place in its account's line: lower goes first (see the module docstring)."""
    place = STARTED if started else (REPLY if reply else PUSH)
    return str(place * _CLASS_SPAN + message_id)
