"""The compressed clock: the same pipeline, minutes turned into seconds.

A local stack (the tests, the demo, the benchmarks) runs the production code on
its own settings; only the time knobs change. :func:`compressed` multiplies the
defaults of the knobs on the clock by ``factor`` (every ``*_seconds`` setting) and
divides the send rate by it, so ``compressed(1/10)`` is the production pipeline
ten times faster; ``pinned`` values replace single knobs where a stack wants its
own. The result is a mapping of ``DELIVERY_*`` variables, for a child process's
environment and for :func:`delivery.devstack.stack.local_stack`.

Not compressed (:data:`NOT_COMPRESSED`): how long a publish may wait for the
broker is about this machine's sockets, not about the platform's clock.

The named clocks:

- :func:`bench`: every knob, one factor (each benchmark says which).
- :data:`DEMO`: ten times faster (:data:`DEMO_FACTOR`), on the knobs the demo's
  story meets (:data:`DEMO_KNOBS`), a few pinned to its platform; the long horizons
  (the pace's memory, a reader's week, the watchdog...) stay at their defaults.
- :data:`TESTS`: sub-second backoffs and cooldowns, chosen knob by knob so the real
  logic runs in seconds under test deadlines; not one factor. :data:`RELAY_TESTS`
  is the inbound relay's part of it, for a relay run inside a test.

Example::

    env = compressed(1 / 25, send_burst=1)
    env["DELIVERY_COOLDOWN_BASE_SECONDS"]  # "24": 600 s / 25
"""

from __future__ import annotations

from collections.abc import Iterable

from delivery.settings import ENV_PREFIX, Settings

__all__ = [
    "DEMO",
    "DEMO_FACTOR",
    "DEMO_KNOBS",
    "NOT_COMPRESSED",
    "RELAY_TESTS",
    "TESTS",
    "bench",
    "clock_knobs",
    "compressed",
    "values",
]

# About this machine, not the platform's clock (see the module docstring).
NOT_COMPRESSED = frozenset({"publish_timeout_seconds"})
_RATE = "send_rate_per_minute"


def values(**settings: float | int | str) -> dict[str, str]:
    """Settings by name (``send_burst=1``) as ``DELIVERY_*`` variables, as text."""
    return {
        f"{ENV_PREFIX}{name.upper()}": value if isinstance(value, str) else f"{value:.6g}"
        for name, value in settings.items()
    }


def clock_knobs() -> list[str]:
    """The settings on the clock: every numeric ``*_seconds`` one but
    :data:`NOT_COMPRESSED`, and the send rate."""
    knobs = []
    for name, field in Settings.model_fields.items():
        default = field.default
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        if name.endswith("_seconds") and name not in NOT_COMPRESSED and numeric:
            knobs.append(name)
    return [*knobs, _RATE]


def compressed(
    factor: float, *, knobs: Iterable[str] | None = None, **pinned: float | int | str
) -> dict[str, str]:
    """The defaults of ``knobs`` (all of :func:`clock_knobs` by default) on a clock
    ``1/factor`` times faster, then ``pinned``, as ``DELIVERY_*`` variables.

    Durations are multiplied by ``factor`` (e.g. 1/20), the send rate divided by it.
    """
    scaled: dict[str, float | int | str] = {}
    for name in clock_knobs() if knobs is None else knobs:
        default = Settings.model_fields[name].default
        scaled[name] = default / factor if name == _RATE else default * factor
    return values(**(scaled | pinned))


def bench(factor: float, **pinned: float | int | str) -> dict[str, str]:
    """A benchmark's clock: every knob's default times ``factor``."""
    return compressed(factor, knobs=None, **pinned)


DEMO_FACTOR = 10  # one second of the demo is ten on the real clock
DEMO_KNOBS = (
    "chunk_gap_seconds",
    "chunk_gap_base_seconds",
    "chunk_gap_per_chunk_seconds",
    "backoff_base_seconds",
    "backoff_max_seconds",
    "backoff_floor_seconds",
    "delivery_deadline_seconds",
    "session_recheck_seconds",
    "outage_retry_seconds",
    "reconcile_interval_seconds",
    "reconcile_grace_seconds",
    "visibility_timeout_seconds",
    "reader_window_seconds",
    "reader_probe_pause_seconds",
    "reader_recheck_seconds",
)
DEMO = compressed(
    1 / DEMO_FACTOR,
    knobs=DEMO_KNOBS,
    send_rate_per_minute=285,  # just under the demo platform's 5 sends a second
    send_burst=1,
    # The demo's platform locks out for 8 s (80 s real), far shorter than the hour users
    # report: the first probe comes just after it, not after the default 10 minutes.
    cooldown_base_seconds=9.5,
    cooldown_max_seconds=180,
    # Slack for a loaded laptop: a lock, a check, a request and beat a little longer.
    send_lock_ttl_seconds=8,
    session_check_interval_seconds=3,
    http_timeout_seconds=3,
    briefing_tick_seconds=1,
    beat_lock_ttl_seconds=6,
    reader_budget=1000,  # the demo's platform counts no budget
)

TESTS = values(
    send_rate_per_minute=1200,  # one send per 50 ms per account
    send_burst=1,
    chunk_gap_seconds=0.05,
    chunk_gap_base_seconds=0.05,
    chunk_gap_per_chunk_seconds=0.01,
    cooldown_base_seconds=0.5,
    cooldown_max_seconds=4,
    backoff_base_seconds=0.1,
    backoff_max_seconds=1,
    backoff_floor_seconds=0.05,
    session_recheck_seconds=0.3,
    session_check_interval_seconds=1,
    outage_retry_seconds=0.5,
    reconcile_interval_seconds=1,
    reconcile_grace_seconds=2,
    visibility_timeout_seconds=60,
    http_timeout_seconds=2,
    send_lock_ttl_seconds=5,
    briefing_tick_seconds=0.25,
    beat_lock_ttl_seconds=3,
    reader_probe_pause_seconds=0.05,
    reader_recheck_seconds=30,
    inbound_scan_seconds=0.1,
    inbound_lease_seconds=1,
    inbound_webhook_timeout_seconds=2,
)
# The inbound relay in a test: it looks around every 0.1 s, a lease lasts 1 s.
RELAY_TESTS = values(
    inbound_scan_seconds=0.1,
    inbound_lease_seconds=1,
    backoff_base_seconds=0.1,
    backoff_max_seconds=0.5,
    backoff_floor_seconds=0.05,
    outage_retry_seconds=0.2,
    http_timeout_seconds=2,
    send_lock_ttl_seconds=5,
)
