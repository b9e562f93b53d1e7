"""Hermes's one-shot Weixin sender, with its text through delivery.

``send_message`` tool calls and cron's fallback path (``tools/send_message_tool.py:
_send_to_platform``, whose Weixin branch imports ``send_weixin_direct`` from
``gateway.platforms.weixin`` when it runs) build an adapter of their own and
bypass the platform registry. :func:`install` replaces that module attribute
with :func:`send_weixin_direct` below: the text goes through the plugin's
adapter (so into the ledger), media through Hermes's original helper.
:func:`uninstall` puts the original back.

Example::

    import gateway.platforms.weixin as weixin
    install(weixin)
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from delivery.hermes.adapter import adapter_class

__all__ = ["install", "installed", "uninstall"]

_ORIGINAL = "__delivery_original__"
ATTRIBUTE = "send_weixin_direct"


def _through_delivery(original: Callable[..., Any]) -> Callable[..., Any]:
    async def send_weixin_direct(
        *,
        extra: dict[str, Any] | None,
        token: str | None,
        chat_id: str,
        message: str,
        media_files: list[tuple[str, bool]] | None = None,
    ) -> dict[str, Any]:
        from gateway.config import PlatformConfig

        adapter = adapter_class()(
            PlatformConfig(enabled=True, token=token or "", extra=dict(extra or {}))
        )
        message_id = None
        if (message or "").strip():
            result = await adapter.send(chat_id, message)
            if not result.success:
                return {"error": f"Weixin send failed: {result.error}"}
            message_id = result.message_id
        if media_files:
            media = await original(
                extra=extra, token=token, chat_id=chat_id, message="", media_files=media_files
            )
            if not isinstance(media, dict) or media.get("error"):
                return media if isinstance(media, dict) else {"error": "Weixin media send failed"}
            message_id = message_id or media.get("message_id")
        return {
            "success": True,
            "platform": "weixin",
            "chat_id": chat_id,
            "message_id": message_id,
            "queued": True,
        }

    setattr(send_weixin_direct, _ORIGINAL, original)
    return send_weixin_direct


def installed(module: ModuleType) -> bool:
    """Whether ``module``'s sender is delivery's."""
    return getattr(getattr(module, ATTRIBUTE, None), _ORIGINAL, None) is not None


def install(module: ModuleType) -> None:
    """Send ``module``'s (``gateway.platforms.weixin``) one-shot texts through delivery.
    Installing twice installs once."""
    if not installed(module):
        setattr(module, ATTRIBUTE, _through_delivery(getattr(module, ATTRIBUTE)))


def uninstall(module: ModuleType) -> None:
    """Hermes's own one-shot sender again."""
    if installed(module):
        setattr(module, ATTRIBUTE, getattr(getattr(module, ATTRIBUTE), _ORIGINAL))
