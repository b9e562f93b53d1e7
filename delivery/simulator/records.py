"""What the simulator saw, as values: delivered messages, counters, per-account stats.

:class:`Snapshot` is what ``GET /_sim/received`` answers (as JSON) and what
:meth:`PlatformModel.snapshot` returns (as objects); ``to_json``/``from_json`` turn
one into the other, so a test in another process gets the same typed view.
Times are seconds on the model's clock (``time.monotonic`` unless a test injects
another), and ``Snapshot.now`` says where that clock stood.

Example::

    snap = control.received()
    [m.text for m in snap.messages["u@im.wechat"]]
    snap.counters.rejected.get("rate_limited", 0)
    snap.accounts["bot-1"].max_in_flight
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AccountReport", "Counters", "Delivered", "QrReport", "Snapshot"]


@dataclass(frozen=True)
class Delivered:
    """One message the platform accepted and delivered, in arrival order."""

    client_id: str
    text: str
    account_id: str
    to_user_id: str
    context_token: str | None
    arrived_at: float


@dataclass(frozen=True)
class AccountReport:
    """One account as the platform sees it.

    ``max_in_flight`` is the most ``sendmessage`` requests of the account the server
    held at once (from reading the request to answering it, latency included);
    ``accepted_at`` the times of its accepted sends, oldest first; ``token_sends``
    the accepted sends of the current token; ``lockout_until`` the end of a
    running lockout, or ``None``.
    """

    account_id: str
    in_flight: int
    max_in_flight: int
    accepted_at: tuple[float, ...]
    token_sends: int
    session_expired: bool
    lockout_until: float | None


@dataclass(frozen=True)
class Counters:
    """Totals since the last reset.

    ``rejected`` counts sends that were not delivered, by reason: ``rate_limited``,
    ``session_expired``, ``text_too_long``, ``bad_request`` or the name of the
    injected fault. ``faults_fired`` counts every injected fault that fired, those
    that still delivered (``reset_after_delivery``) included. ``requests`` counts
    requests per endpoint; ``repeated_uins`` how often a client reused an
    ``X-WECHAT-UIN`` it had sent before (it should be fresh on every request).
    """

    accepted: int
    duplicates: int
    rejected: dict[str, int]
    faults_fired: dict[str, int]
    requests: dict[str, int]
    repeated_uins: int


@dataclass(frozen=True)
class QrReport:
    """One issued QR code: its latest status, the hosts it was polled on, its account."""

    qrcode: str
    status: str
    hosts: tuple[str, ...]
    account_id: str | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the simulator recorded, copied out at one instant."""

    now: float
    messages: dict[str, tuple[Delivered, ...]]
    counters: Counters
    accounts: dict[str, AccountReport]
    qr_codes: dict[str, QrReport]
    bad_requests: tuple[str, ...]

    def texts(self, to_user_id: str) -> list[str]:
        """The texts delivered to ``to_user_id``, in arrival order."""
        return [message.text for message in self.messages.get(to_user_id, ())]

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``GET /_sim/received`` answers."""
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Snapshot:
        """Rebuild a snapshot from ``to_json``'s shape."""
        return cls(
            now=float(payload["now"]),
            messages={
                recipient: tuple(Delivered(**item) for item in items)
                for recipient, items in payload["messages"].items()
            },
            counters=Counters(**payload["counters"]),
            accounts={
                account_id: AccountReport(**{**report, "accepted_at": tuple(report["accepted_at"])})
                for account_id, report in payload["accounts"].items()
            },
            qr_codes={
                qrcode: QrReport(**{**report, "hosts": tuple(report["hosts"])})
                for qrcode, report in payload["qr_codes"].items()
            },
            bad_requests=tuple(payload["bad_requests"]),
        )
