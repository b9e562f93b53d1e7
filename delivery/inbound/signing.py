"""The signature of the inbound webhook: HMAC-SHA256 over the time and the body.

Every POST carries ``X-Delivery-Signature: t=<unix seconds>,v1=<hex>``, where the
hex digest is HMAC-SHA256 keyed with ``DELIVERY_INBOUND_WEBHOOK_SECRET`` over
``<t>.<body>`` (the body's exact bytes). A receiver recomputes it, compares in
constant time, and refuses a time too far from its own clock, as :func:`verify`
does. Pure functions; the secret is never logged.

**What the signature does not do: replays.** The time window
(:data:`TOLERANCE_SECONDS`) only bounds how long a captured POST can be replayed,
and the relay itself sends a message again after a failure, a timeout or a lost
relay (at least once). A receiver therefore de-duplicates on the
``idempotency_key`` *in the body*, which the signature covers, never on the
``Idempotency-Key`` header, which it does not (anyone in the path can change a
header and keep the signature valid).

Example::

    header = sign(secret="s3cret-0123456789", body=b'{"text":"hi"}', timestamp=1764489600)
    verify(secret="s3cret-0123456789", body=b'{"text":"hi"}', header=header, now=1764489605)
    # True
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from typing import Final

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "verify"]

SIGNATURE_HEADER: Final = "X-Delivery-Signature"
TOLERANCE_SECONDS: Final = 300  # how far a receiver accepts the signed time from its own

# What a well-formed header holds, and nothing else: ASCII digits for the time (at most
# 12: year 33658), 64 lowercase hex digits. Explicit classes, since str.isdigit() and
# int() accept other scripts' digits and \d would too.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


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
    """Whether ``header`` signs ``body`` with ``secret`` at a time within
    ``tolerance_seconds`` of ``now`` (unix seconds).

    Never raises for what a client sent: any header that is not exactly
    ``t=<ASCII digits>,v1=<64 lowercase hex>`` (in either order), and any ``now``
    that is not a finite number, is ``False``.
    """
    if not isinstance(header, str) or not isinstance(now, int | float) or not math.isfinite(now):
        return False
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.partition("=")
        if not sep or name not in ("t", "v1") or name in fields:
            return False
        fields[name] = value
    timestamp, digest = fields.get("t", ""), fields.get("v1", "")
    if not _TIMESTAMP.fullmatch(timestamp) or not _DIGEST.fullmatch(digest):
        return False
    if not abs(now - int(timestamp)) <= tolerance_seconds:
        return False
    expected = _digest(secret, body, int(timestamp))
    return hmac.compare_digest(digest.encode("ascii"), expected.encode("ascii"))
