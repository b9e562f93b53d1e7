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
    {seen.client.client_version for seen in snap.seen}     # {'132105'}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "AccountReport",
    "ClientIdentity",
    "Counters",
    "Delivered",
    "QrReport",
    "SeenRequest",
    "Snapshot",
]


@dataclass(frozen=True)
class ClientIdentity:
    """What a request says of the client that sent it (``None``: not said).

    ``client_version`` is the ``iLink-App-ClientVersion`` header as sent (the packed
    decimal, e.g. ``"132105"`` for 2.4.9); ``channel_version`` and ``bot_agent``
    come from ``base_info``; ``route_tag`` is the optional ``SKRouteTag`` header.
    """

    app_id: str | None = None
    client_version: str | None = None
    channel_version: str | None = None
    bot_agent: str | None = None
    route_tag: str | None = None


@dataclass(frozen=True)
class SeenRequest:
    """One iLink request that passed the checks: method, endpoint and who sent it."""

    method: str
    endpoint: str
    client: ClientIdentity


@dataclass(frozen=True)
class Delivered:
    """One message the platform accepted and delivered, in arrival order.

    ``message_id`` is the id the platform answered with (a uint64, in decimal).
    """

    client_id: str
    text: str
    account_id: str
    to_user_id: str
    context_token: str | None
    arrived_at: float
    message_id: str


@dataclass(frozen=True)
class AccountReport:
    """One account as the platform sees it.

    ``max_in_flight`` is the most ``sendmessage`` requests of the account the server
    held at once (from reading the request to answering it, latency included);
    ``accepted_at`` the times of its accepted sends, oldest first; ``token_sends``
    the accepted sends of the current token; ``lockout_until`` the end of a
    running lockout, or ``None``. ``polls`` counts its ``getupdates`` requests,
    ``max_polls_in_flight`` the most of them the server held at once (a long poll
    is held until a message arrives or its time is up). ``lockouts`` counts the
    lockouts started by a send over the rate limit (not the sends refused in one).
    """

    account_id: str
    in_flight: int
    max_in_flight: int
    accepted_at: tuple[float, ...]
    token_sends: int
    session_expired: bool
    lockout_until: float | None
    polls: int = 0
    polls_in_flight: int = 0
    max_polls_in_flight: int = 0
    lockouts: int = 0


@dataclass(frozen=True)
class Counters:
    """Totals since the last reset.

    ``rejected`` counts sends that were not delivered, by reason: ``rate_limited``,
    ``session_expired``, ``text_too_long``, ``bad_request`` or the name of the
    injected fault. ``faults_fired`` counts every injected fault that fired, those
    that still delivered (``reset_after_delivery``) included. ``requests`` counts
    requests per endpoint; ``repeated_uins`` how often a client reused an
    ``X-WECHAT-UIN`` it had sent before (it should be fresh on every request).
    ``silently_dropped`` counts, per reader, sends answered ``{"ret": 0}`` without a
    ``message_id`` and never delivered (``silent_drop_readers``).
    """

    accepted: int
    duplicates: int
    rejected: dict[str, int]
    faults_fired: dict[str, int]
    requests: dict[str, int]
    repeated_uins: int
    silently_dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class QrReport:
    """One issued QR code: its latest status, the hosts it was polled on, its account.

    ``method`` is how it was asked for (``GET`` or ``POST``); ``local_tokens`` how
    many tokens a POST said the client holds, and ``local_token_accounts`` the
    accounts they belong to (never the tokens). ``verify_code`` is the number the
    phone shows when the script asks for one; ``wrong_codes`` counts wrong ones.
    """

    qrcode: str
    status: str
    hosts: tuple[str, ...]
    account_id: str | None
    method: str
    local_tokens: int
    local_token_accounts: tuple[str, ...]
    verify_code: str | None
    wrong_codes: int


@dataclass(frozen=True)
class Snapshot:
    """Everything the simulator recorded, copied out at one instant.

    ``bad_requests`` holds the latest refused requests with the reason; ``seen``
    the latest iLink requests that passed the checks, oldest first, with the
    client identity each carried (both bounded, the oldest dropped first).
    """

    now: float
    messages: dict[str, tuple[Delivered, ...]]
    counters: Counters
    accounts: dict[str, AccountReport]
    qr_codes: dict[str, QrReport]
    bad_requests: tuple[str, ...]
    seen: tuple[SeenRequest, ...]

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
                qrcode: QrReport(
                    **{
                        **report,
                        "hosts": tuple(report["hosts"]),
                        "local_token_accounts": tuple(report["local_token_accounts"]),
                    }
                )
                for qrcode, report in payload["qr_codes"].items()
            },
            bad_requests=tuple(payload["bad_requests"]),
            seen=tuple(
                SeenRequest(
                    method=item["method"],
                    endpoint=item["endpoint"],
                    client=ClientIdentity(**item["client"]),
                )
                for item in payload["seen"]
            ),
        )
