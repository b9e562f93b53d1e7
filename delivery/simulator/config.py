"""How the simulated platform behaves: limits, expiry, latency, all in seconds.

Every duration is a float number of seconds so that a test with a fake clock can
compress minutes of platform behaviour into nothing. The defaults describe an
unlimited, instant platform; a test switches on exactly the behaviour it studies.

Example::

    config = SimulatorConfig(rate_limit_sends=5, rate_limit_window_seconds=10.0,
                             lockout_seconds=60.0)
    stricter = apply_changes(config, {"rate_limit_sends": 2})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SimulatorConfig", "apply_changes", "config_to_json"]

# The observed limit: 4000 characters was tried and refused, 2000 goes through.
DEFAULT_MAX_TEXT_CHARS = 2000
# What known clients are told to wait on a ``getupdates`` long poll.
DEFAULT_LONGPOLLING_TIMEOUT_MS = 35_000


@dataclass(frozen=True)
class SimulatorConfig:
    """The knobs of the simulated platform.

    ``rate_limit_sends`` accepted sends per account are allowed in any sliding
    window of ``rate_limit_window_seconds``; the send that would exceed it is
    refused (``-2``) and starts a lockout of ``lockout_seconds``, during which every
    send is refused and pushes the end of the lockout ``lockout_extend_seconds``
    further. ``rate_limit_errmsg`` is the errmsg of those refusals: ``None`` leaves
    the field out, ``""`` sends it empty (both variants are observed).
    ``rate_limit_bare_refusals``: the first that many refusals of each lockout are a
    bare ``{"ret": -2}`` whatever ``rate_limit_errmsg`` says (the platform sometimes
    answers its limit that way, the same answer as a reader's closed window).

    ``expire_after_sends`` expires a token's session (``-14``) once it has had that
    many accepted sends; only a new token (``set_token``) cures it.
    ``send_latency_seconds`` is how long the server holds every ``sendmessage``
    before answering, so that overlapping sends of one account become visible.
    ``send_jitter_seconds`` delays each ``sendmessage`` by a random 0 to that many
    seconds *before* it is counted (network jitter on the way in), so sends that
    left the client evenly spaced may arrive closer together.
    ``reader_window_seconds`` and ``reader_budget`` limit each reader (peer): a
    send is refused with a bare ``{"ret": -2}`` unless the reader wrote within the
    window, and beyond the budget of sends per inbound message (``None``: off).
    ``message_ids``: accepted sends are answered with a ``message_id`` (the newest
    platform does; ``False`` answers a bare ``{"ret": 0}`` as older reports show).
    ``silent_drop_readers``: readers whose sends the platform accepts with a bare
    ``{"ret": 0}`` (no ``message_id``) and never delivers (the silent drops users
    report since 2026-08); such sends still count against the account's window.
    ``max_text_chars`` is the longest text accepted (in code points);
    ``longpolling_timeout_ms`` is what ``getupdates`` tells the client.
    """

    rate_limit_sends: int | None = None
    rate_limit_window_seconds: float = 10.0
    lockout_seconds: float = 60.0
    lockout_extend_seconds: float = 5.0
    rate_limit_errmsg: str | None = "rate limited"
    rate_limit_bare_refusals: int = 0
    expire_after_sends: int | None = None
    send_latency_seconds: float = 0.0
    send_jitter_seconds: float = 0.0
    reader_window_seconds: float | None = None
    reader_budget: int | None = None
    message_ids: bool = True
    silent_drop_readers: tuple[str, ...] = ()
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    longpolling_timeout_ms: int = DEFAULT_LONGPOLLING_TIMEOUT_MS

    def __post_init__(self) -> None:
        _check_optional_count("rate_limit_sends", self.rate_limit_sends)
        _check_optional_count("expire_after_sends", self.expire_after_sends)
        _check_optional_count("reader_budget", self.reader_budget)
        window = self.reader_window_seconds
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int | float) or window <= 0
        ):
            raise ValueError(f"reader_window_seconds must be > 0 or null, got {window!r}")
        bare = self.rate_limit_bare_refusals
        if isinstance(bare, bool) or not isinstance(bare, int) or bare < 0:
            raise ValueError(f"rate_limit_bare_refusals must be a whole number >= 0, got {bare!r}")
        if not isinstance(self.message_ids, bool):
            raise ValueError(f"message_ids must be true or false, got {self.message_ids!r}")
        drops = self.silent_drop_readers
        if isinstance(drops, str) or not all(isinstance(peer, str) and peer for peer in drops):
            raise ValueError(f"silent_drop_readers must be a list of peer ids, got {drops!r}")
        _check_count("max_text_chars", self.max_text_chars)
        _check_count("longpolling_timeout_ms", self.longpolling_timeout_ms)
        for name in (
            "rate_limit_window_seconds",
            "lockout_seconds",
            "lockout_extend_seconds",
            "send_latency_seconds",
            "send_jitter_seconds",
        ):
            value = getattr(self, name)
            # bool is an int; True seconds would be a bug in the caller, not a duration.
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.rate_limit_window_seconds == 0:
            raise ValueError("rate_limit_window_seconds must be > 0")
        if self.rate_limit_errmsg is not None and not isinstance(self.rate_limit_errmsg, str):
            raise ValueError("rate_limit_errmsg must be a string or null")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def _check_optional_count(name: str, value: object) -> None:
    if value is not None:
        _check_count(name, value)


def apply_changes(config: SimulatorConfig, changes: Mapping[str, Any]) -> SimulatorConfig:
    """A copy of ``config`` with ``changes`` applied; unknown names raise ``ValueError``.

    Example: ``apply_changes(config, {"expire_after_sends": 3})``.
    """
    known = {field.name for field in dataclasses.fields(SimulatorConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(unknown)}")
    values = dict(changes)
    if isinstance(values.get("silent_drop_readers"), list):  # JSON has no tuples
        values["silent_drop_readers"] = tuple(values["silent_drop_readers"])
    return dataclasses.replace(config, **values)


def config_to_json(config: SimulatorConfig) -> dict[str, Any]:
    """The config as a JSON object, the shape ``apply_changes`` accepts back."""
    return dataclasses.asdict(config)
