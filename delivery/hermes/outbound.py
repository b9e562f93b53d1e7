"""A text Hermes sends, into delivery's ledger: the one place the plugin enqueues.

It uses delivery's public API only (:func:`delivery.enqueue_many`), so the message
is written, chunked and published exactly as any other caller's. A cron delivery is
a push (never a reply, even just after the reader wrote); a send that names the
inbound message it answers is a reply (it goes before the account's pushes).

Example::

    message_id = enqueue_text(HermesText(account_id="bot@im.bot", chat_id=peer, text=reply,
                                         reply_to="7265"))
"""

from __future__ import annotations

from dataclasses import dataclass

import delivery
from delivery import runtime
from delivery.hermes import cron_runs, keys

__all__ = ["HermesText", "delivery_account", "enqueue_text"]

# The ledger keeps at most this much of who produced a message.
_SOURCE_CHARS = 128


@dataclass(frozen=True)
class HermesText:
    """One Weixin text send as Hermes asked for it."""

    account_id: str  # Hermes's Weixin account id (its account file's name)
    chat_id: str
    text: str
    reply_to: str | None = None  # the inbound message answered, when Hermes says
    job_id: str | None = None  # the cron job delivering, when Hermes says (live path)
    context_token: str | None = None  # Hermes's latest for this chat, if it has one


def delivery_account(hermes_account_id: str) -> str:
    """The delivery account Hermes's account ``hermes_account_id`` sends through:
    ``DELIVERY_HERMES_ACCOUNT``, or the same id."""
    return runtime.current().settings.hermes_account or hermes_account_id


def enqueue_text(send: HermesText) -> str:
    """Queue ``send`` in the ledger; return delivery's message id.

    The idempotency key (see :mod:`delivery.hermes.keys`) comes from the cron run
    being delivered, or else the inbound message replied to; the same send again
    returns the first message's id and queues nothing.

    Raises:
        InvalidInput: unknown account, empty text, malformed ids. Nothing is written.
        LedgerError: the database is unreachable. Nothing is written.
    """
    run = cron_runs.run_of_job(send.job_id) or cron_runs.current_run()
    key: str | None = None
    if run is not None:
        key = keys.cron_key(job_id=run.job_id, run=run.run, chat_id=send.chat_id)
    elif send.reply_to:
        key = keys.reply_key(chat_id=send.chat_id, reply_to=send.reply_to, text=send.text)
    message = delivery.OutboundMessage(
        account_id=delivery_account(send.account_id),
        to_user_id=send.chat_id,
        text=send.text,
        idempotency_key=key,
        context_token=send.context_token or None,
        source=(f"hermes:cron:{run.job_id}" if run is not None else "hermes")[:_SOURCE_CHARS],
        reply_to=None if run is not None else send.reply_to,
        push=run is not None,
    )
    return delivery.enqueue_many([message])[0]
