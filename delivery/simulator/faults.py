"""Injected failures: what the next N requests of an account (or of anyone) get.

A :class:`Fault` describes one failure; :class:`FaultQueue` hands them out in the
order they were queued, an account's own faults before the global ones. Faults hit
``sendmessage`` unless another endpoint is named (short names such as
``"getconfig"``, see :data:`ENDPOINT_NAMES`).

Kinds:

- ``http_error``: an HTTP status (500, 502, 503, 429, ...) with an HTML or empty body
- ``answer``: any JSON ``ret``/``errcode``/``errmsg`` (HTTP 200)
- ``html_200``: an HTML page with HTTP 200
- ``garbage``: HTTP 200 with a body that is not JSON
- ``hang``: hold the request ``seconds`` (ends early if the client hangs up); with
  ``deliver`` the message is delivered first and answered normally afterwards,
  without it nothing is delivered and the late answer is an HTML 504
- ``reset_before_delivery``: read the request, then reset the connection
- ``reset_after_delivery``: deliver, then reset the connection without answering

Example::

    queue = FaultQueue()
    queue.add(Fault.http_error(503), count=2, account_id="bot-1")
    queue.add(Fault.prepare_failed())           # the next send of anyone
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, get_args

from delivery.ilink.protocol import (
    ENDPOINT_GETCONFIG,
    ENDPOINT_GETUPDATES,
    ENDPOINT_NOTIFYSTART,
    ENDPOINT_NOTIFYSTOP,
    ENDPOINT_QRCODE,
    ENDPOINT_QRCODE_STATUS,
    ENDPOINT_SENDMESSAGE,
    ENDPOINT_SENDTYPING,
    RET_FREQUENCY_LIMIT,
)
from delivery.simulator.replies import Reply, error_reply, html_reply

__all__ = ["ENDPOINT_NAMES", "Fault", "FaultKind", "FaultQueue", "endpoint_name"]

FaultKind = Literal[
    "http_error",
    "answer",
    "html_200",
    "garbage",
    "hang",
    "reset_before_delivery",
    "reset_after_delivery",
]


def endpoint_name(endpoint: str) -> str:
    """The short name of a protocol endpoint: ``ilink/bot/sendmessage`` -> ``sendmessage``."""
    return endpoint.rsplit("/", 1)[-1]


ENDPOINT_NAMES: Final = frozenset(
    endpoint_name(endpoint)
    for endpoint in (
        ENDPOINT_SENDMESSAGE,
        ENDPOINT_GETUPDATES,
        ENDPOINT_GETCONFIG,
        ENDPOINT_SENDTYPING,
        ENDPOINT_QRCODE,
        ENDPOINT_QRCODE_STATUS,
        ENDPOINT_NOTIFYSTART,
        ENDPOINT_NOTIFYSTOP,
    )
)
SENDMESSAGE: Final = endpoint_name(ENDPOINT_SENDMESSAGE)
GARBAGE_BODY: Final = b"\x00\xffnot json{"


@dataclass(frozen=True)
class Fault:
    """One injected failure. Build it with the class methods rather than by hand.

    ``label`` names it in the counters; it defaults to a name derived from the kind
    (``http_503``, ``answer_-2``, ``reset_after_delivery``, ...).
    """

    kind: FaultKind
    status: int = 200
    empty_body: bool = False
    ret: int = 0
    errcode: int | None = None
    errmsg: str | None = None
    seconds: float = 0.0
    deliver: bool = False
    endpoint: str = SENDMESSAGE
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.endpoint not in ENDPOINT_NAMES:
            raise ValueError(f"unknown endpoint {self.endpoint!r}")
        if self.kind == "http_error" and not 100 <= self.status <= 599:
            raise ValueError(f"HTTP status {self.status!r} is not one")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    @property
    def name(self) -> str:
        """The label this fault is counted under."""
        if self.label:
            return self.label
        if self.kind == "http_error":
            return f"http_{self.status}"
        if self.kind == "answer":
            return f"answer_{self.ret}"
        return self.kind

    def reply(self) -> Reply:
        """The answer of a fault that answers (every kind except the resets)."""
        if self.kind == "http_error":
            if self.empty_body:
                return Reply(status=self.status, body=b"", content_type=None)
            return html_reply(status=self.status, title=f"{self.status} Error")
        if self.kind == "answer":
            return error_reply(ret=self.ret, errcode=self.errcode, errmsg=self.errmsg)
        if self.kind == "html_200":
            return html_reply(status=200, title="Service Temporarily Unavailable")
        if self.kind == "garbage":
            return Reply(status=200, body=GARBAGE_BODY, content_type="application/json")
        if self.kind == "hang":
            return html_reply(status=504, title="504 Gateway Time-out")
        raise ValueError(f"a {self.kind} fault does not answer")

    # -- constructors -----------------------------------------------------------------

    @classmethod
    def http_error(
        cls, status: int, *, empty_body: bool = False, endpoint: str = SENDMESSAGE
    ) -> Fault:
        """HTTP ``status`` (500, 502, 503, 429, ...) with an HTML page or an empty body."""
        return cls(kind="http_error", status=status, empty_body=empty_body, endpoint=endpoint)

    @classmethod
    def answer(
        cls,
        *,
        ret: int,
        errcode: int | None = None,
        errmsg: str | None = None,
        endpoint: str = SENDMESSAGE,
        label: str = "",
    ) -> Fault:
        """Any JSON refusal; ``errcode``/``errmsg`` of ``None`` are left out of the body."""
        return cls(
            kind="answer", ret=ret, errcode=errcode, errmsg=errmsg, endpoint=endpoint, label=label
        )

    @classmethod
    def unknown_error(cls) -> Fault:
        """``-2`` "unknown error": what clients read as a stale session or context token."""
        return cls.answer(
            ret=RET_FREQUENCY_LIMIT,
            errcode=RET_FREQUENCY_LIMIT,
            errmsg="unknown error",
            label="unknown_error",
        )

    @classmethod
    def prepare_failed(cls) -> Fault:
        """``-2`` "prepare failed": the disputed one (bad context token, or a budget)."""
        return cls.answer(
            ret=RET_FREQUENCY_LIMIT,
            errcode=RET_FREQUENCY_LIMIT,
            errmsg="prepare failed",
            label="prepare_failed",
        )

    @classmethod
    def html_200(cls, *, endpoint: str = SENDMESSAGE) -> Fault:
        """An HTML page with status 200, as a misbehaving proxy answers."""
        return cls(kind="html_200", endpoint=endpoint)

    @classmethod
    def garbage(cls, *, endpoint: str = SENDMESSAGE) -> Fault:
        """Status 200 with a body that does not parse as JSON."""
        return cls(kind="garbage", endpoint=endpoint)

    @classmethod
    def hang(cls, seconds: float, *, deliver: bool = False, endpoint: str = SENDMESSAGE) -> Fault:
        """Hold the request ``seconds``; ``deliver`` delivers it before holding."""
        return cls(kind="hang", seconds=seconds, deliver=deliver, endpoint=endpoint)

    @classmethod
    def reset_before_delivery(cls, *, endpoint: str = SENDMESSAGE) -> Fault:
        """Reset the connection after reading the request; nothing is delivered."""
        return cls(kind="reset_before_delivery", endpoint=endpoint)

    @classmethod
    def reset_after_delivery(cls, *, endpoint: str = SENDMESSAGE) -> Fault:
        """Deliver, then reset the connection without answering: "was it sent?"."""
        return cls(kind="reset_after_delivery", endpoint=endpoint)

    # -- JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The fault as the JSON object ``POST /_sim/faults`` takes."""
        return asdict(self)

    @classmethod
    def from_json(cls, payload: object) -> Fault:
        """Parse ``to_json``'s shape; missing fields take their defaults. Raises ``ValueError``."""
        if not isinstance(payload, dict):
            raise ValueError("a fault is a JSON object")
        checks: dict[str, tuple[type, ...]] = {
            "kind": (str,),
            "status": (int,),
            "empty_body": (bool,),
            "ret": (int,),
            "errcode": (int, type(None)),
            "errmsg": (str, type(None)),
            "seconds": (int, float),
            "deliver": (bool,),
            "endpoint": (str,),
            "label": (str,),
        }
        for key, value in payload.items():
            if key not in checks:
                raise ValueError(f"unknown fault field {key!r}")
            # bool is an int in Python but never a status, a ret or a duration.
            is_bool_as_number = isinstance(value, bool) and bool not in checks[key]
            if is_bool_as_number or not isinstance(value, checks[key]):
                raise ValueError(f"fault field {key!r} has the wrong type")
        if "kind" not in payload:
            raise ValueError("a fault needs a kind")
        return cls(**payload)


@dataclass
class _Queued:
    fault: Fault
    remaining: int
    account_id: str | None


@dataclass
class FaultQueue:
    """Faults waiting to fire, in order. Not thread-safe: the model's lock guards it."""

    _entries: list[_Queued] = field(default_factory=list)

    def add(self, fault: Fault, *, count: int = 1, account_id: str | None = None) -> None:
        """Queue ``fault`` for the next ``count`` matching requests (``None`` = any account)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number >= 1, got {count!r}")
        self._entries.append(_Queued(fault=fault, remaining=count, account_id=account_id))

    def _first(self, endpoint: str, account_id: str | None) -> _Queued | None:
        scopes = (None,) if account_id is None else (account_id, None)
        for scope in scopes:
            for entry in self._entries:
                if entry.account_id == scope and entry.fault.endpoint == endpoint:
                    return entry
        return None

    def peek(self, *, endpoint: str, account_id: str | None) -> bool:
        """Whether a request would get a fault (nothing is used up)."""
        return self._first(endpoint, account_id) is not None

    def take(self, *, endpoint: str, account_id: str | None) -> Fault | None:
        """The fault this request gets, if any; the account's own faults come first."""
        entry = self._first(endpoint, account_id)
        if entry is None:
            return None
        entry.remaining -= 1
        if entry.remaining == 0:
            self._entries.remove(entry)
        return entry.fault

    def pending(self) -> int:
        """How many requests still have a fault waiting for them."""
        return sum(entry.remaining for entry in self._entries)

    def clear(self) -> None:
        """Drop every queued fault."""
        self._entries.clear()
