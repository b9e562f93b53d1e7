"""The signature of the inbound webhook: HMAC-SHA256 over the time and the body.

Every POST carries ``X-Delivery-Signature: t=<unix seconds>,v1=<hex>``, where the
hex digest is HMAC-SHA256 keyed with ``DELIVERY_INBOUND_WEBHOOK_SECRET`` over
``<t>.<body>`` (the body's exact bytes). A receiver recomputes it, compares in
constant time, and refuses a time too far from its own clock (a replayed POST),
as :func:`verify` does. Pure functions; the secret is never logged.

Example::

    header = sign(secret="s3cret-0123456789", body=b'{"text":"hi"}', timestamp=1764489600)
    verify(secret="s3cret-0123456789", body=b'{"text":"hi"}', header=header, now=1764489605)
    # True
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "verify"]

SIGNATURE_HEADER: Final = "X-Delivery-Signature"
TOLERANCE_SECONDS: Final = 300  # how far a receiver accepts the signed time from its own


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(*, secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(
    *,
    secret: str,
    body: bytes,
    header: str | None,
    now: float,
    tolerance_seconds: float = TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time near ``now``."""
    fields = dict(part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    timestamp, digest = fields.get("t", ""), fields.get("v1", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(digest, _digest(secret, body, int(timestamp)))
