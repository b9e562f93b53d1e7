"""The inbound side: readers' messages to the bot.

Two ways in, one code path for what a reader's message changes:

- an agent that polls the platform itself calls :func:`delivery.record_inbound`
  for every message (:mod:`~delivery.inbound.heard`);
- for an account that owns its inbound side (``delivery account add ID
  --owns-inbound``), the relay polls ``getupdates`` itself, records every message
  in the ledger and hands it to the agent (:mod:`~delivery.inbound.relay`,
  :mod:`~delivery.inbound.poller`, :mod:`~delivery.inbound.handover`).

Example::

    import delivery
    delivery.record_inbound("bot-1", "o9cq80...@im.wechat", context_token=ctx)
"""

from delivery.inbound.heard import CLOCK_SKEW_SECONDS

__all__ = ["CLOCK_SKEW_SECONDS"]
