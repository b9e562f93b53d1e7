"""Hermes Agent sends through delivery: a plugin for ``hermes-agent``.

Hermes loads :mod:`delivery.hermes.plugin` (the ``delivery`` entry point in the
``hermes_agent.plugins`` group) when ``plugins.enabled`` in ``$HERMES_HOME/config.yaml``
names it. Then every Weixin *text* Hermes sends (live replies through its gateway
adapter, cron deliveries on both of their paths, ``send_message`` tool calls) is
enqueued in delivery's ledger and answered to Hermes as sent with the message id;
media, typing and the ``getupdates`` poll stay Hermes's own.

The modules, each one concept:

- :mod:`.keys`: idempotency keys from what Hermes knows (pure).
- :mod:`.outbound`: a Hermes text into the ledger (no Hermes import).
- :mod:`.cron_runs`: which cron job and run a delivery belongs to.
- :mod:`.account_mirror`: Hermes's account file mirrored into delivery's account.
- :mod:`.inbound`: the ``pre_gateway_dispatch`` hook (reader heard, context token).
- :mod:`.adapter`, :mod:`.direct`: Hermes's Weixin adapter and its one-shot sender,
  text through delivery (these import Hermes, only when Hermes calls them).
- :mod:`.plugin`: ``register(ctx)``; :mod:`.self_check`: ``delivery hermes check``.

Nothing here imports Hermes at import time: ``import delivery`` works without it.
"""

from __future__ import annotations

__all__: list[str] = []
