"""The ``pre_gateway_dispatch`` hook: each Weixin message Hermes dispatches is
recorded in delivery, with its context token.

Hermes stays the only ``getupdates`` poller of its account; this hook tells delivery
what that poll brought: the reader wrote (their reply window reopens, their budget
starts again, a message held for them goes) and the context token replies carry.
The hook never changes Hermes's dispatch (it returns None) and never raises into
it: a failure is an ERROR line.

Example (what Hermes calls)::

    on_pre_gateway_dispatch(event=event, gateway=runner, session_store=store)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import delivery
from delivery.hermes.bridge import get_bridge
from delivery.hermes.outbound import delivery_account

__all__ = ["on_pre_gateway_dispatch"]

log = logging.getLogger(__name__)

WEIXIN = "weixin"


def _platform_name(source: Any) -> str:
    platform = getattr(source, "platform", None)
    return str(getattr(platform, "value", platform) or "")


def on_pre_gateway_dispatch(*, event: Any = None, **_: Any) -> None:
    """Record a Weixin event's sender and context token in delivery."""
    try:
        source = getattr(event, "source", None)
        if _platform_name(source) != WEIXIN:
            return
        raw = getattr(event, "raw_message", None)
        raw = raw if isinstance(raw, Mapping) else {}
        peer = str(raw.get("from_user_id") or getattr(source, "user_id", "") or "").strip()
        token = str(raw.get("context_token") or "").strip() or None
        bridge = get_bridge()
        account = bridge.account() or str(raw.get("to_user_id") or "").strip()
        if not peer or not account:
            return
        bridge.mirror(account).sync()
        delivery.record_inbound(delivery_account(account), peer, context_token=token)
    except Exception:  # Hermes's dispatch goes on whatever happens here
        log.exception("delivery: a Weixin inbound message was not recorded")
    return
