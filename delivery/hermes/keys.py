"""Idempotency keys for Hermes's sends, from what Hermes knows about each one.

A Hermes retry of the same send must queue nothing twice, and two different sends
must never share a key (the second would be dropped as a repeat of the first):

| Hermes knows                         | key                                             |
|--------------------------------------|-------------------------------------------------|
| a cron job and its run               | job, run, chat: one delivery per run and chat   |
| the inbound message it replies to    | that message, chat and the text (several replies|
|                                      | to one message are different texts)             |
| neither (a ``send_message`` call)    | none: each call is a new message                |

Keys are ``hermes:<kind>:<sha256 hex>``: printable ASCII whatever Hermes's ids hold.

Example::

    cron_key(job_id="a1b2", run="2026-11-24T08:00:00+00:00", chat_id="o9@im.wechat")
    # 'hermes:cron:5f1c...'
"""

from __future__ import annotations

import hashlib

__all__ = ["cron_key", "reply_key"]

# Enough of the digest to make a collision between two sends of one account absurd.
_DIGEST_CHARS = 40


def _digest(*parts: str) -> str:
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:_DIGEST_CHARS]


def cron_key(*, job_id: str, run: str, chat_id: str) -> str:
    """The key of cron job ``job_id``'s delivery to ``chat_id`` in run ``run`` (the
    run's scheduled time, or Hermes's execution id)."""
    return f"hermes:cron:{_digest(job_id, run, chat_id)}"


def reply_key(*, chat_id: str, reply_to: str, text: str) -> str:
    """The key of the reply ``text`` to inbound message ``reply_to`` in ``chat_id``."""
    return f"hermes:reply:{_digest(chat_id, reply_to, text)}"
