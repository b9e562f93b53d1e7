"""The configuration page of the docs, generated from the settings themselves.

Every field of :class:`~delivery.settings.Settings` carries a description; this
module renders them, grouped, as ``docs/configuration.md``: the variable, its type
and bounds, its default, what it means. A unit test fails when the committed page
differs from what :func:`render` gives, or when a setting has no description or no
group, so the page cannot drift from the code.

Example::

    python -m delivery.settings_doc                 # rewrite docs/configuration.md
    python -m delivery.settings_doc --check         # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from delivery.settings import ENV_PREFIX, Settings

__all__ = ["GROUPS", "PAGE", "main", "missing", "render"]

PAGE = Path("docs") / "configuration.md"

# (title, what the group is about, its settings in the order shown)
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Stores and broker",
        "Where the ledger, the broker and the account gate live.",
        (
            "database_url",
            "broker_url",
            "redis_url",
            "redis_key_prefix",
            "publish_timeout_seconds",
            "visibility_timeout_seconds",
        ),
    ),
    (
        "Messages and chunks",
        "What `enqueue` accepts, how a text is cut, how its parts are spaced.",
        (
            "max_text_chars",
            "chunk_max_chars",
            "chunk_gap_seconds",
            "chunk_gap_base_seconds",
            "chunk_gap_per_chunk_seconds",
            "delivery_deadline_seconds",
            "reply_window_seconds",
        ),
    ),
    (
        "Pace and rate limits",
        "How fast an account sends, and what a rate limit costs it (see Guarantees, "
        '"A guessed rate").',
        (
            "send_rate_per_minute",
            "send_burst",
            "send_lock_ttl_seconds",
            "pace_memory_seconds",
            "pace_recover_sends",
            "cooldown_base_seconds",
            "cooldown_growth",
            "cooldown_max_seconds",
        ),
    ),
    (
        "Failures and recovery",
        "Transient failures, outages, and the reconciler that publishes what a broker lost.",
        (
            "http_timeout_seconds",
            "backoff_base_seconds",
            "backoff_max_seconds",
            "backoff_floor_seconds",
            "retry_jitter",
            "max_transient_failures",
            "outage_retry_seconds",
            "reconcile_interval_seconds",
            "reconcile_grace_seconds",
        ),
    ),
    (
        "Sessions and alerts",
        "Validating and healing the platform sessions (see Sessions).",
        (
            "client_version",
            "session_check_interval_seconds",
            "session_recheck_seconds",
            "account_store_dir",
            "alert_webhook_url",
            "alert_callback",
        ),
    ),
    (
        "Readers",
        "Each reader's reply window and budget (see Readers).",
        (
            "reader_limits",
            "reader_window_seconds",
            "reader_budget",
            "reader_wait_seconds",
            "reader_notice",
            "reader_probe_pause_seconds",
            "reader_recheck_seconds",
            "reader_drops_before_hold",
        ),
    ),
    (
        "Inbound relay",
        "Polling the platform for readers' messages and handing them to the agent "
        "(see Inbound relay).",
        (
            "inbound_task",
            "inbound_task_queue",
            "inbound_webhook_url",
            "inbound_webhook_secret",
            "inbound_webhook_timeout_seconds",
            "inbound_callback",
            "inbound_dedupe_seconds",
            "inbound_lease_seconds",
            "inbound_scan_seconds",
            "inbound_task_republish_seconds",
        ),
    ),
    (
        "Briefings and beat",
        "Scheduled messages, and the one beat that runs them (see Briefings).",
        (
            "briefing_tick_seconds",
            "briefing_misfire_grace_seconds",
            "briefing_run_lease_seconds",
            "beat_lock_ttl_seconds",
        ),
    ),
    (
        "Retention",
        'Deleting what has ended (see Operations, "Retention").',
        ("retention_days", "retention_interval_seconds"),
    ),
    (
        "Workers and monitoring",
        "Workers that stay alive, Flower and the Prometheus exporter (see Operations).",
        ("worker_watchdog_seconds", "metrics_port", "flower_basic_auth"),
    ),
    (
        "Hermes Agent",
        "The plugin that sends Hermes Agent's Weixin texts through the ledger (see With Hermes "
        "Agent).",
        ("hermes_account",),
    ),
)

_HEADER = """\
# Configuration

<!-- Generated by `python -m delivery.settings_doc` from the descriptions in
delivery/settings.py: edit those, then run it again. tests/unit/test_docs.py fails when
this page and the settings differ. -->

Every setting is an environment variable (or a line in a `.env` file in the working
directory), read and validated once by `delivery/settings.py`. A nonsense value
stops the program with a message naming the variable; values of URLs and secrets
are never shown. Times are seconds unless the name says otherwise.
"""

_CHECKED_TOGETHER = """\
## Checked together

Besides each value's own bounds, the settings refuse to load when:

- a countdown a task may be given (`DELIVERY_BACKOFF_MAX_SECONDS`,
  `DELIVERY_SESSION_RECHECK_SECONDS`, `DELIVERY_OUTAGE_RETRY_SECONDS`,
  `DELIVERY_READER_PROBE_PAUSE_SECONDS`) is more than half of
  `DELIVERY_VISIBILITY_TIMEOUT_SECONDS`: the broker would redeliver waiting tasks;
- `DELIVERY_BACKOFF_BASE_SECONDS` or `DELIVERY_BACKOFF_FLOOR_SECONDS` exceeds
  `DELIVERY_BACKOFF_MAX_SECONDS`, or `DELIVERY_COOLDOWN_BASE_SECONDS` exceeds
  `DELIVERY_COOLDOWN_MAX_SECONDS`;
- `DELIVERY_READER_NOTICE`, with the widest number of parts left, does not fit twice
  into `DELIVERY_CHUNK_MAX_CHARS` (every part keeps room for it);
- `DELIVERY_WORKER_WATCHDOG_SECONDS` is between 0 and 2;
- `DELIVERY_SEND_LOCK_TTL_SECONDS` is not more than twice
  `DELIVERY_HTTP_TIMEOUT_SECONDS` (the lock must outlive the longest send it guards);
- `DELIVERY_INBOUND_WEBHOOK_URL` is set without `DELIVERY_INBOUND_WEBHOOK_SECRET`, or
  the other way round.
"""

_BOUNDS: tuple[tuple[type[object], str, str], ...] = (
    (annotated_types.Gt, "gt", "> {}"),
    (annotated_types.Ge, "ge", "≥ {}"),
    (annotated_types.Lt, "lt", "< {}"),
    (annotated_types.Le, "le", "≤ {}"),
    (annotated_types.MinLen, "min_length", "length ≥ {}"),
    (annotated_types.MaxLen, "max_length", "length ≤ {}"),
)


def env_name(field_name: str) -> str:
    """The environment variable of a setting."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def missing() -> list[str]:
    """Problems that keep the page from being complete: settings without a
    description, settings in no group (or in two), groups naming no setting."""
    fields = Settings.model_fields
    problems = [
        f"{env_name(name)} has no description"
        for name, info in fields.items()
        if not (info.description or "").strip()
    ]
    grouped = [name for _, _, names in GROUPS for name in names]
    problems += [f"{env_name(n)} is in no group" for n in fields if n not in grouped]
    problems += [f"{n} is grouped but is no setting" for n in grouped if n not in fields]
    problems += [f"{env_name(n)} is in two groups" for n in set(grouped) if grouped.count(n) > 1]
    return sorted(problems)


def render() -> str:
    """The configuration page, as Markdown.

    Raises:
        ValueError: a setting has no description or no group (see :func:`missing`).
    """
    problems = missing()
    if problems:
        raise ValueError("; ".join(problems))
    fields = Settings.model_fields
    parts = [_HEADER]
    for title, about, names in GROUPS:
        rows = [
            f"## {title}",
            "",
            about,
            "",
            "| variable | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name in names:
            info = fields[name]
            cells = (
                f"`{env_name(name)}`",
                _type(info),
                _default(info),
                _cell(info.description or ""),
            )
            rows.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(rows) + "\n")
    parts.append(_CHECKED_TOGETHER)
    return "\n".join(parts)


def _type(info: FieldInfo) -> str:
    annotation = info.annotation
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    names: dict[object, str] = {
        str: "text",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        SecretStr: "secret",
    }
    text = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = [
        template.format(_number(getattr(item, attribute)))
        for item in info.metadata
        for kind, attribute, template in _BOUNDS
        if isinstance(item, kind)
    ]
    if bounds:
        text += ", " + ", ".join(bounds)
    if optional:
        text += ", optional"
    return _cell(text)


def _default(info: FieldInfo) -> str:
    value = info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    return f"`{_cell(str(value))}`"


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (or, with ``--check``, say whether it is up to date)."""
    parser = argparse.ArgumentParser(
        prog="python -m delivery.settings_doc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--output", type=Path, default=PAGE, help=f"default: {PAGE}")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the page differs"
    )
    args = parser.parse_args(argv)
    page = render()
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != page:
            print(f"{output} is out of date: run python -m delivery.settings_doc", file=sys.stderr)
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
