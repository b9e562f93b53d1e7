"""Hermes's own Weixin adapter, with its text sends through delivery.

:func:`adapter_class` subclasses ``gateway.platforms.weixin.WeixinAdapter`` (Hermes
0.19.0's). Everything stays Hermes's (connecting, the ``getupdates`` poll, the
context tokens it keeps, typing, media uploads) except ``send``: its text is
enqueued in delivery's ledger and Hermes gets ``SendResult(success=True,
message_id=<delivery's message id>)``, or a failure when the ledger did not take
it (Hermes is told "sent" only for what the ledger holds). Media in the same
``send`` (``MEDIA:`` tags, local file paths) is handed to Hermes's own ``send``.

Hermes is imported when the class is first asked for, never at import time.

Example (what Hermes's gateway does through the platform registry)::

    adapter = build_adapter(platform_config)
    await adapter.send("o9cq8@im.wechat", "Good morning", reply_to="7265")
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from delivery.errors import DeliveryError, LedgerError
from delivery.hermes.bridge import get_bridge
from delivery.hermes.outbound import HermesText, enqueue_text

__all__ = ["adapter_class", "build_adapter", "requirements_met"]

log = logging.getLogger(__name__)

VOICE_DIRECTIVE = "[[audio_as_voice]]"  # Hermes's tag: the MEDIA files that follow are voice


def requirements_met() -> bool:
    """Hermes's own check for its Weixin adapter (aiohttp, cryptography)."""
    from gateway.platforms.weixin import check_weixin_requirements

    return bool(check_weixin_requirements())


def _media_only(media_files: list[tuple[str, bool]], local_files: list[str]) -> str:
    """A content for Hermes's own ``send`` that holds the media and no text."""
    lines = [VOICE_DIRECTIVE] if any(is_voice for _, is_voice in media_files) else []
    lines += [f"MEDIA:{path}" for path, _ in media_files]
    lines += list(local_files)
    return "\n".join(lines)


@functools.cache
def adapter_class() -> type[Any]:
    """``DeliveryWeixinAdapter``, a subclass of Hermes's ``WeixinAdapter``."""
    from gateway.platforms.base import SendResult
    from gateway.platforms.weixin import WeixinAdapter

    class DeliveryWeixinAdapter(WeixinAdapter):  # type: ignore[misc]
        """Hermes's Weixin adapter; text goes through delivery's ledger."""

        async def send(
            self,
            chat_id: str,
            content: str,
            reply_to: str | None = None,
            metadata: dict[str, Any] | None = None,
        ) -> Any:
            media_files, cleaned = self.extract_media(content)
            media_files = self.filter_media_delivery_paths(media_files)
            _, image_cleaned = self.extract_images(cleaned)
            local_files, text_part = self.extract_local_files(image_cleaned)
            local_files = self.filter_local_delivery_paths(local_files)
            media_result = None
            if media_files or local_files:
                media_result = await super().send(
                    chat_id, _media_only(media_files, local_files), reply_to, metadata
                )
            text = self.format_message(text_part)
            if not text.strip():
                return media_result or SendResult(success=True)
            account = str(self._account_id or "")
            if not account:
                return SendResult(success=False, error="Weixin account id missing")
            bridge = get_bridge()
            bridge.use_account(account)
            await asyncio.to_thread(bridge.mirror(account).sync)
            send = HermesText(
                account_id=account,
                chat_id=str(chat_id),
                text=text,
                reply_to=str(reply_to) if reply_to else None,
                job_id=str((metadata or {}).get("job_id") or "") or None,
                context_token=self._token_store.get(account, chat_id),
            )
            try:
                message_id = await asyncio.to_thread(enqueue_text, send)
            except LedgerError as exc:
                log.error("delivery: the ledger did not take a Weixin send: %s", exc)
                return SendResult(success=False, error=f"delivery: {exc}", retryable=True)
            except DeliveryError as exc:
                log.error("delivery: a Weixin send was refused: %s", exc)
                return SendResult(success=False, error=f"delivery: {exc}")
            return SendResult(
                success=True,
                message_id=message_id,
                raw_response={"delivery_message_id": message_id, "queued": True},
            )

    return DeliveryWeixinAdapter


def build_adapter(config: Any) -> Any:
    """The adapter for Hermes's ``PlatformConfig`` ``config`` (the registry's factory)."""
    adapter = adapter_class()(config)
    if adapter._account_id:
        get_bridge().use_account(str(adapter._account_id))
    return adapter
