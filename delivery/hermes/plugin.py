"""The Hermes Agent plugin: ``register(ctx)``, which Hermes calls when the plugin is
enabled (``hermes plugins enable delivery``, or ``plugins: {enabled: [delivery]}`` in
``$HERMES_HOME/config.yaml``).

It registers, all through Hermes's plugin API or its module attributes:

- the ``weixin`` platform: Hermes's own Weixin adapter whose text sends go through
  delivery (:mod:`delivery.hermes.adapter`); the gateway's ``_create_adapter``
  consults the platform registry before its built-in adapters;
- the ``pre_gateway_dispatch`` hook: each inbound Weixin event recorded in
  delivery, with its context token (:mod:`delivery.hermes.inbound`);
- ``gateway.platforms.weixin.send_weixin_direct`` replaced (``send_message`` and
  cron's fallback path build their own adapter; :mod:`delivery.hermes.direct`);
- ``cron.scheduler._deliver_result`` wrapped, so a cron delivery knows its job and
  run for its idempotency key (:mod:`delivery.hermes.cron_runs`).

:func:`unregister` undoes the two module patches (tests, ``delivery hermes check``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from delivery.hermes import cron_runs, direct
from delivery.hermes.adapter import build_adapter, requirements_met
from delivery.hermes.bridge import get_bridge
from delivery.hermes.inbound import on_pre_gateway_dispatch

__all__ = ["PLATFORM", "PLUGIN_NAME", "register", "unregister"]

log = logging.getLogger(__name__)

PLUGIN_NAME = "delivery"  # the entry point's name: what `hermes plugins enable` takes
PLATFORM = "weixin"
_CRON_MODULE = "cron.scheduler"
_CRON_ATTRIBUTE = "_deliver_result"
_WEIXIN_MODULE = "gateway.platforms.weixin"


def register(ctx: Any) -> None:
    """Hermes's plugin entry: route Hermes's Weixin text sends through delivery."""
    ctx.register_platform(
        name=PLATFORM,
        label="Weixin (through delivery)",
        adapter_factory=build_adapter,
        check_fn=requirements_met,
        install_hint="hermes-agent's Weixin dependencies: aiohttp, cryptography",
        emoji="💬",
        cron_deliver_env_var="WEIXIN_HOME_CHANNEL",
    )
    ctx.register_hook("pre_gateway_dispatch", on_pre_gateway_dispatch)
    _patch_modules()
    account = get_bridge().account()
    if account:
        get_bridge().mirror(account).sync()
    log.info("delivery: Hermes's Weixin text sends go through delivery")


def _patch_modules() -> None:
    try:
        direct.install(importlib.import_module(_WEIXIN_MODULE))
    except Exception:  # Hermes without its Weixin adapter: nothing to route
        log.warning("delivery: %s not patched", _WEIXIN_MODULE, exc_info=True)
    try:
        scheduler = importlib.import_module(_CRON_MODULE)
        wrapped = cron_runs.wrap_deliver_result(getattr(scheduler, _CRON_ATTRIBUTE))
        setattr(scheduler, _CRON_ATTRIBUTE, wrapped)
    except Exception:  # cron deliveries then go through delivery without a run key
        log.warning("delivery: %s not patched", _CRON_MODULE, exc_info=True)


def unregister() -> None:
    """Hermes's own one-shot sender and cron delivery again (the platform entry and the
    hook stay registered until Hermes reloads its plugins)."""
    try:
        direct.uninstall(importlib.import_module(_WEIXIN_MODULE))
        scheduler = importlib.import_module(_CRON_MODULE)
        original = getattr(getattr(scheduler, _CRON_ATTRIBUTE), "__wrapped__", None)
        if original is not None:
            setattr(scheduler, _CRON_ATTRIBUTE, original)
    except ImportError:
        pass
