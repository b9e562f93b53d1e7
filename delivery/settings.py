"""The one place that reads the environment.

Every knob is a ``DELIVERY_*`` environment variable (or a line in a ``.env`` file in
the working directory). Values are validated when the settings are first loaded; a
nonsense value refuses to start with a :class:`~delivery.errors.ConfigError` naming
the variable. Everything else in the package receives settings as arguments.

Time knobs are all ``*_seconds`` floats, so tests and the demo run the real logic
on a compressed clock by setting them small.

Example::

    from delivery.settings import load_settings
    settings = load_settings()
    settings.send_rate_per_minute   # 15.0 unless DELIVERY_SEND_RATE_PER_MINUTE says otherwise
    load_settings(send_rate_per_minute=30).send_rate_per_minute   # 30.0, whatever it says
    as_env(settings)                # the DELIVERY_* variables a child process is started with

A process holds its settings in its :class:`~delivery.runtime.Runtime`; nothing
else caches them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from delivery.errors import ConfigError
from delivery.ilink.protocol import DEFAULT_CLIENT_VERSION, ClientVersion
from delivery.ledger.states import HandoverChannel

__all__ = ["ENV_PREFIX", "Settings", "as_env", "from_env", "load_settings"]

ENV_PREFIX = "DELIVERY_"

# The platform accepts at most 2000 characters per text message (4000 was refused).
DEFAULT_CHUNK_MAX_CHARS = 2000
# The seed's dynamic gap: max(1.5, 2.0 + 0.3 * n_chunks) seconds between chunks.
DEFAULT_CHUNK_GAP_SECONDS = 1.5
DEFAULT_CHUNK_GAP_BASE_SECONDS = 2.0
DEFAULT_CHUNK_GAP_PER_CHUNK_SECONDS = 0.3
# A guess below the observed limit (5-8 chunks in 10 s tripped it); tune per deployment.
DEFAULT_SEND_RATE_PER_MINUTE = 15.0
# Above 1, a rate configured at the platform's exact limit trips its sliding window.
DEFAULT_SEND_BURST = 1
# A rate limit learned from a refusal is kept this long (the platform's limit changes
# seldom; ``delivery account reset-pace`` forgets it at once).
DEFAULT_PACE_MEMORY_SECONDS = 30 * 86_400.0
# Rate-limit cooldowns. Users of the platform report penalties of about an hour that
# every send made during one extends, "from ~1 h to 15 h+" (cc-connect #1640, #1643):
# the first probe comes after 10 minutes, each refused probe triples the wait (10, 30,
# 90 minutes: a one-hour penalty is over by the third probe even if each refused probe
# restarts it), up to 6 hours.
DEFAULT_COOLDOWN_BASE_SECONDS = 600.0
DEFAULT_COOLDOWN_GROWTH = 3.0
DEFAULT_COOLDOWN_MAX_SECONDS = 6 * 3600.0
# A learned ceiling rises again (by a quarter, up to the configured rate) after this
# many sends in a row at its pace without a refusal.
DEFAULT_PACE_RECOVER_SENDS = 200
PACE_RECOVER_FACTOR = 1.25
# Transient failures (5xx, timeouts): Celery's retry_backoff / retry_backoff_max.
DEFAULT_BACKOFF_BASE_SECONDS = 2.0
DEFAULT_BACKOFF_MAX_SECONDS = 600.0
DEFAULT_BACKOFF_FLOOR_SECONDS = 0.5
DEFAULT_MAX_TRANSIENT_FAILURES = 25
DEFAULT_DELIVERY_DEADLINE_SECONDS = 24 * 3600.0
# How often a send waiting on an expired session looks again (no platform call).
DEFAULT_SESSION_RECHECK_SECONDS = 10.0
DEFAULT_SESSION_CHECK_INTERVAL_SECONDS = 60.0
# How often a send looks again while Redis or the database is unreachable.
DEFAULT_OUTAGE_RETRY_SECONDS = 10.0
DEFAULT_RECONCILE_INTERVAL_SECONDS = 30.0
DEFAULT_RECONCILE_GRACE_SECONDS = 120.0
# Redis broker: an unacked (or ETA-held) task is redelivered after this long.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 3600.0
DEFAULT_HTTP_TIMEOUT_SECONDS = 15.0
DEFAULT_SEND_LOCK_TTL_SECONDS = 60.0
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 5.0
# Briefings: how often beat looks for due slots, and how late a slot may still run.
DEFAULT_BRIEFING_TICK_SECONDS = 15.0
DEFAULT_BRIEFING_MISFIRE_GRACE_SECONDS = 3600.0
# A producer still running after this is presumed dead with its worker, and run again.
DEFAULT_BRIEFING_RUN_LEASE_SECONDS = 1800.0
# Readers: the platform delivers to a reader only within a window after their last
# message, and only so many sends per message (both observed, neither published).
DEFAULT_READER_WINDOW_SECONDS = 24 * 3600.0
DEFAULT_READER_BUDGET = 10
# A message waiting for its reader is held this long (from enqueue), then dead.
DEFAULT_READER_WAIT_SECONDS = 7 * 24 * 3600.0
DEFAULT_READER_NOTICE = "… {remaining} more parts: reply to get them"
# After a bare refusal, the account pauses this long before the next send decides.
DEFAULT_READER_PROBE_PAUSE_SECONDS = 2.0
# A chat held on a refusal nothing else decided is tried again after this.
DEFAULT_READER_RECHECK_SECONDS = 900.0
# Accepted sends in a row without a message_id (silent drops) that make a reader
# "dropping": their next messages wait until they write.
DEFAULT_READER_DROPS_BEFORE_HOLD = 2
# A message enqueued this soon after its reader wrote is a reply (it goes before pushes).
DEFAULT_REPLY_WINDOW_SECONDS = 600.0
MAX_CHUNK_CHARS = 4000  # the platform refused a 4000-character text
MAX_READER_NOTICE_CHARS = 200
# A second beat stays on standby; it takes over this long after the first stops.
DEFAULT_BEAT_LOCK_TTL_SECONDS = 30.0
# Delivered and superseded messages, and inbound ones no longer pending, go this long after.
DEFAULT_RETENTION_DAYS = 30.0
# How often beat runs retention; each run deletes in small batches for a bounded time.
DEFAULT_RETENTION_INTERVAL_SECONDS = 600.0
# A worker that has not consumed for this long while the broker answers exits, so
# its supervisor restarts it. Well above Celery's reconnect backoff (at most 30 s).
DEFAULT_WORKER_WATCHDOG_SECONDS = 120.0
# Shorter than this, a watchdog would blame a busy but healthy worker.
MIN_WORKER_WATCHDOG_SECONDS = 2.0
# Flower's basic auth is "user:password"; Flower splits its variable at commas.
FLOWER_BASIC_AUTH_PATTERN = re.compile(r"[^:,\s]+:[^,\s]+")
# Inbound relay. The platform has re-sent a message under a new id ~3 s after the
# first; a reader who repeats themselves on purpose does so later than this.
DEFAULT_INBOUND_DEDUPE_SECONDS = 10.0
# A poller's lease: another relay takes an account over this long after its poller died.
DEFAULT_INBOUND_LEASE_SECONDS = 15.0
# How often the relay looks for accounts to poll and hand-overs due again.
DEFAULT_INBOUND_SCAN_SECONDS = 2.0
DEFAULT_INBOUND_WEBHOOK_TIMEOUT_SECONDS = 10.0
# After a broker restart, tasks handed to it this recently are published again.
DEFAULT_INBOUND_TASK_REPUBLISH_SECONDS = 300.0
# Celery's own default queue: what an agent's worker consumes unless told otherwise.
DEFAULT_INBOUND_TASK_QUEUE = "celery"
MIN_WEBHOOK_SECRET_CHARS = 16
_WEBHOOK_SECRET_PATTERN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no whitespace
_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class Settings(BaseSettings):
    """Every setting of the pipeline, each with its description: ``docs/configuration.md``
    is generated from them (``python -m delivery.settings_doc``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        repr=False,
        default="sqlite:///delivery.sqlite3",
        description=(
            "SQLAlchemy URL of the ledger; `postgresql://...` uses psycopg 3. SQLite is for one "
            "host only (the demo, trials)."
        ),
    )
    broker_url: str = Field(
        repr=False,
        default="redis://127.0.0.1:6379/0",
        description="Celery's broker (Redis).",
    )
    redis_url: str | None = Field(
        repr=False,
        default=None,
        description=(
            "The Redis holding the account gate (send locks, rates, lines, cooldowns), beat's "
            "leader lock and the relay's leases; unset: the broker's."
        ),
    )
    redis_key_prefix: str = Field(
        default="delivery",
        min_length=1,
        description="Prefix of every Redis key this service writes (see the internals page).",
    )

    max_text_chars: int = Field(
        default=DEFAULT_MAX_TEXT_CHARS,
        ge=1,
        description="The longest text `enqueue` accepts; longer is refused with `InvalidInput`.",
    )
    # The platform refused 4000; it has been seen to cut at about 2048.
    chunk_max_chars: int = Field(
        default=DEFAULT_CHUNK_MAX_CHARS,
        ge=64,
        le=MAX_CHUNK_CHARS,
        description=(
            "The longest chunk, in UTF-16 code units (as the platform may count); at most 4000, "
            "which the platform refused; it has been seen to cut at about 2048."
        ),
    )
    chunk_gap_seconds: float = Field(
        default=DEFAULT_CHUNK_GAP_SECONDS,
        ge=0,
        description="The least pause between two chunks of one message.",
    )
    chunk_gap_base_seconds: float = Field(
        default=DEFAULT_CHUNK_GAP_BASE_SECONDS,
        ge=0,
        description=(
            "The pause between chunks of a message is `max(gap, base + per_chunk × chunks)`: "
            "this is `base`."
        ),
    )
    chunk_gap_per_chunk_seconds: float = Field(
        default=DEFAULT_CHUNK_GAP_PER_CHUNK_SECONDS,
        ge=0,
        description="`per_chunk` of that pause: longer messages are spaced more.",
    )

    send_rate_per_minute: float = Field(
        default=DEFAULT_SEND_RATE_PER_MINUTE,
        gt=0,
        description=(
            "Sends per account per minute, across every worker and host (a guess: the platform "
            "publishes none; a refusal teaches the account a lower ceiling)."
        ),
    )
    send_burst: int = Field(
        default=DEFAULT_SEND_BURST,
        ge=1,
        description=(
            "Sends an account may make back to back; above 1, a rate at the platform's exact "
            "limit trips it."
        ),
    )
    pace_memory_seconds: float = Field(
        default=DEFAULT_PACE_MEMORY_SECONDS,
        gt=0,
        description=(
            "How long an account keeps the rate limit it learned from a refusal (30 days); "
            "`delivery account reset-pace` forgets it at once."
        ),
    )
    send_lock_ttl_seconds: float = Field(
        default=DEFAULT_SEND_LOCK_TTL_SECONDS,
        gt=0,
        description=(
            "How long the send lock of a worker that died blocks its account; must exceed twice "
            "the HTTP timeout (connect and read time out separately)."
        ),
    )

    cooldown_base_seconds: float = Field(
        default=DEFAULT_COOLDOWN_BASE_SECONDS,
        gt=0,
        description=(
            "After a rate limit the account sends nothing for this long; then one send (the "
            "probe) goes."
        ),
    )
    cooldown_growth: float = Field(
        default=DEFAULT_COOLDOWN_GROWTH,
        ge=1,
        description="Each refused probe multiplies the next cooldown by this.",
    )
    cooldown_max_seconds: float = Field(
        default=DEFAULT_COOLDOWN_MAX_SECONDS,
        gt=0,
        description="The longest cooldown.",
    )
    pace_recover_sends: int = Field(
        default=DEFAULT_PACE_RECOVER_SENDS,
        ge=1,
        description=(
            "A learned ceiling rises by a quarter (up to the configured rate) after this many "
            "sends in a row at its pace without a refusal."
        ),
    )
    backoff_base_seconds: float = Field(
        default=DEFAULT_BACKOFF_BASE_SECONDS,
        gt=0,
        description=(
            "First backoff after a transient failure (5xx, timeout, no answer); doubles per "
            "failure (Celery's `retry_backoff`)."
        ),
    )
    backoff_max_seconds: float = Field(
        default=DEFAULT_BACKOFF_MAX_SECONDS,
        gt=0,
        description="The longest backoff (Celery's `retry_backoff_max`).",
    )
    backoff_floor_seconds: float = Field(
        default=DEFAULT_BACKOFF_FLOOR_SECONDS,
        gt=0,
        description="The least countdown of a jittered backoff.",
    )
    retry_jitter: bool = Field(
        default=True,
        description="Full jitter on backoffs (Celery's `retry_jitter`).",
    )
    max_transient_failures: int = Field(
        default=DEFAULT_MAX_TRANSIENT_FAILURES,
        ge=1,
        description=(
            "A chunk's failure budget: after this many transient failures its message is dead. "
            "Rate limits, expired sessions and waits for a reader spend none."
        ),
    )
    delivery_deadline_seconds: float = Field(
        default=DEFAULT_DELIVERY_DEADLINE_SECONDS,
        gt=0,
        description=(
            "A message not delivered this long after it was enqueued is dead, with the reason (a "
            "message waiting for its reader has its own limit)."
        ),
    )

    session_recheck_seconds: float = Field(
        default=DEFAULT_SESSION_RECHECK_SECONDS,
        gt=0,
        description=(
            "Kept for existing environments; nothing waits on it since an expired session parks "
            "its chats (the session check that heals the account wakes them). Still at most half "
            "the visibility timeout."
        ),
    )
    session_check_interval_seconds: float = Field(
        default=DEFAULT_SESSION_CHECK_INTERVAL_SECONDS,
        gt=0,
        description=(
            "How often beat validates every account's session (`getconfig`) and heals expired ones."
        ),
    )
    outage_retry_seconds: float = Field(
        default=DEFAULT_OUTAGE_RETRY_SECONDS,
        gt=0,
        description="How often a send looks again while Redis or the database is unreachable.",
    )
    reconcile_interval_seconds: float = Field(
        default=DEFAULT_RECONCILE_INTERVAL_SECONDS,
        gt=0,
        description="How often beat runs the outbox reconciler.",
    )
    reconcile_grace_seconds: float = Field(
        default=DEFAULT_RECONCILE_GRACE_SECONDS,
        gt=0,
        description=(
            "How long past its lease a chunk must be before the reconciler publishes it again "
            "(and not while its task still waits in the broker's queue). Shorter recovers lost "
            "tasks sooner, at the cost of more (harmless) duplicate tasks."
        ),
    )
    visibility_timeout_seconds: float = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        gt=0,
        description=(
            "The Redis broker's visibility timeout: a task held by a dead worker goes to another "
            "after this long. Every countdown stays under half of it."
        ),
    )
    http_timeout_seconds: float = Field(
        default=DEFAULT_HTTP_TIMEOUT_SECONDS,
        gt=0,
        description="Timeout of one platform call, for connecting and again for reading.",
    )
    reader_limits: bool = Field(
        default=True,
        description=(
            "Whether the platform limits what each reader gets (a reply window, a budget per "
            "inbound message); `false`: a bare `-2` is always the account's rate limit."
        ),
    )
    reader_window_seconds: float = Field(
        default=DEFAULT_READER_WINDOW_SECONDS,
        gt=0,
        description="A reader gets the bot's messages only this long after their own last message.",
    )
    reader_budget: int = Field(
        default=DEFAULT_READER_BUDGET,
        ge=1,
        description="Sends a reader may get per message they send.",
    )
    reader_wait_seconds: float = Field(
        default=DEFAULT_READER_WAIT_SECONDS,
        gt=0,
        description=(
            "How long a message waits for its reader (from the message, or the reader's last "
            "message if later); then it is dead."
        ),
    )
    reader_notice: str = Field(
        default=DEFAULT_READER_NOTICE,
        min_length=1,
        max_length=MAX_READER_NOTICE_CHARS,
        description=(
            "Ends the last part a reader's budget allows; `{remaining}` is the number of parts "
            "left. Must fit twice into a chunk."
        ),
    )
    reader_probe_pause_seconds: float = Field(
        default=DEFAULT_READER_PROBE_PAUSE_SECONDS,
        ge=0,
        description=(
            "After a bare `-2` from an unknown reader, the account pauses this long before its "
            "next send (to another reader) decides whose refusal it was."
        ),
    )
    reader_recheck_seconds: float = Field(
        default=DEFAULT_READER_RECHECK_SECONDS,
        gt=0,
        description="A chat held on a bare `-2` that nothing decided is tried again after this.",
    )
    reader_drops_before_hold: int = Field(
        default=DEFAULT_READER_DROPS_BEFORE_HOLD,
        ge=1,
        description=(
            "Accepted sends in a row to one reader answered without a message_id (silent drops) "
            "that hold the reader's next messages until they write."
        ),
    )
    reply_window_seconds: float = Field(
        default=DEFAULT_REPLY_WINDOW_SECONDS,
        ge=0,
        description=(
            "A message enqueued this soon after its reader wrote is a reply: it goes before "
            "pushes (briefings never are). 0: only `enqueue(reply_to=...)` marks one."
        ),
    )

    client_version: str = Field(
        default=str(DEFAULT_CLIENT_VERSION),
        description=(
            "The client version announced to the platform, `major.minor.patch` (each 0..255): "
            "`iLink-App-ClientVersion` packs it (2.4.9 is `132105`), `base_info.channel_version` "
            "spells it. Every call sends it: sends, session checks, polls and `delivery login`."
        ),
    )
    publish_timeout_seconds: float = Field(
        default=DEFAULT_PUBLISH_TIMEOUT_SECONDS,
        gt=0,
        description=(
            "How long a publish may wait for the broker; a refused publish loses nothing (the "
            "reconciler publishes from the ledger)."
        ),
    )

    account_store_dir: Path | None = Field(
        default=None,
        description=(
            'Directory of `<account>.json` files (`{"token", "base_url"}`) that another process '
            "of the same user (an agent's own login) may write; the session check imports new "
            "tokens. Refused if group- or world-writable, or another user's."
        ),
    )
    alert_webhook_url: str | None = Field(
        repr=False,
        default=None,
        description="POSTed a JSON event when a session expires, and when it heals.",
    )
    alert_callback: str | None = Field(
        default=None,
        pattern=_IMPORT_PATH,
        description="`module:function` called with the same event.",
    )
    hermes_account: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9@._:+=\-]*$",
        max_length=200,
        description="The delivery account the Hermes Agent plugin sends through; unset: the "
        "Hermes Weixin account id (its account file is mirrored into it).",
    )
    inbound_task: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.:-]*$",
        description=(
            "Celery task name the agent's workers consume; each inbound message is published to "
            "it (one argument: the message as JSON), its key as the task id."
        ),
    )
    inbound_task_queue: str = Field(
        default=DEFAULT_INBOUND_TASK_QUEUE,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        max_length=200,
        description="The queue that task is published to (Celery's default queue unless set).",
    )
    inbound_webhook_url: str | None = Field(
        repr=False,
        default=None,
        description=(
            "Absolute http(s) URL POSTed each inbound message, signed; refused at start-up when "
            "malformed (the value is never shown)."
        ),
    )
    inbound_webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC-SHA256 key of the webhook's signature: required with the URL, at least 16 "
            "printable ASCII characters, no whitespace."
        ),
    )
    inbound_webhook_timeout_seconds: float = Field(
        default=DEFAULT_INBOUND_WEBHOOK_TIMEOUT_SECONDS,
        gt=0,
        description=(
            "Timeout of one webhook POST; a hand-over not recorded within twice this is taken "
            "for lost and handed over again."
        ),
    )
    inbound_callback: str | None = Field(
        default=None,
        pattern=_IMPORT_PATH,
        description=(
            "`module:function` the relay calls with each inbound message (a "
            "`delivery.InboundEvent`)."
        ),
    )
    inbound_dedupe_seconds: float = Field(
        default=DEFAULT_INBOUND_DEDUPE_SECONDS,
        ge=0,
        description=(
            "The same text from the same sender within this long, under a new id, is a re-sent "
            "copy, kept as `duplicate` (0: off)."
        ),
    )
    inbound_lease_seconds: float = Field(
        default=DEFAULT_INBOUND_LEASE_SECONDS,
        gt=0,
        description=(
            "A relay's lease on an account it polls; another relay takes over this long after it "
            "died."
        ),
    )
    inbound_scan_seconds: float = Field(
        default=DEFAULT_INBOUND_SCAN_SECONDS,
        gt=0,
        description=(
            "How often a relay renews its leases, looks for accounts to poll (a healed session's "
            "poller starts within this) and for hand-overs due again."
        ),
    )
    inbound_task_republish_seconds: float = Field(
        default=DEFAULT_INBOUND_TASK_REPUBLISH_SECONDS,
        ge=0,
        description=(
            "After a broker restart, tasks handed to it this recently are published again, with "
            "the same keys."
        ),
    )
    briefing_tick_seconds: float = Field(
        default=DEFAULT_BRIEFING_TICK_SECONDS,
        gt=0,
        description="How often beat looks for due briefing slots.",
    )
    briefing_misfire_grace_seconds: float = Field(
        default=DEFAULT_BRIEFING_MISFIRE_GRACE_SECONDS,
        gt=0,
        description=(
            "How late a missed slot may still run; later ones are skipped, never replayed in a "
            "backlog."
        ),
    )
    briefing_run_lease_seconds: float = Field(
        default=DEFAULT_BRIEFING_RUN_LEASE_SECONDS,
        gt=0,
        description=(
            "A producer still running after this is presumed dead with its worker, and run again."
        ),
    )
    beat_lock_ttl_seconds: float = Field(
        default=DEFAULT_BEAT_LOCK_TTL_SECONDS,
        gt=0,
        description="A standby beat takes over this long after the leader stops.",
    )
    retention_days: float = Field(
        default=DEFAULT_RETENTION_DAYS,
        gt=0,
        description=(
            "Delivered and superseded messages are deleted (with chunks and attempts) this many "
            "days after they ended; dead ones only by `delivery prune --include-dead`. Inbound "
            "messages go this long after they were received, once none of their hand-overs is "
            "pending."
        ),
    )
    retention_interval_seconds: float = Field(
        default=DEFAULT_RETENTION_INTERVAL_SECONDS,
        gt=0,
        description="How often beat runs retention (`delivery.prune`).",
    )
    worker_watchdog_seconds: float = Field(
        default=DEFAULT_WORKER_WATCHDOG_SECONDS,
        ge=0,
        description=(
            "A worker that consumes nothing for this long while the broker answers exits with 75 "
            "for its supervisor to restart; 0 turns the watchdog off, else at least 2."
        ),
    )

    # Monitoring: the port of `delivery metrics`, and the credentials `delivery flower` requires.
    metrics_port: int = Field(
        default=9464,
        ge=1,
        le=65535,
        description="Port of `delivery metrics`, the Prometheus exporter.",
    )
    flower_basic_auth: SecretStr | None = Field(
        default=None,
        description=(
            "`user:password` of Flower's basic auth (no comma or whitespace); `delivery flower` "
            "requires it unless `--localhost-only`."
        ),
    )

    @field_validator("client_version")
    @classmethod
    def _client_version_parses(cls, value: str) -> str:
        return str(ClientVersion.parse(value))

    @property
    def ilink_client_version(self) -> ClientVersion:
        """``client_version`` as the value the iLink client takes."""
        return ClientVersion.parse(self.client_version)

    @property
    def reader_notice_chars(self) -> int:
        """Room a part keeps for the notice (UTF-16 units, its separator and the
        widest number of parts left included)."""
        rendered = "\n\n" + self.reader_notice.replace("{remaining}", str(self.max_text_chars))
        return len(rendered.encode("utf-16-le")) // 2

    @property
    def inbound_channels(self) -> tuple[HandoverChannel, ...]:
        """How each inbound message reaches the agent: every channel configured."""
        configured = {
            HandoverChannel.TASK: self.inbound_task,
            HandoverChannel.WEBHOOK: self.inbound_webhook_url,
            HandoverChannel.CALLBACK: self.inbound_callback,
        }
        return tuple(channel for channel, value in configured.items() if value)

    @property
    def limiter_redis_url(self) -> str:
        """The Redis holding limiter, lock and cooldown state."""
        return self.redis_url or self.broker_url

    @property
    def max_countdown_seconds(self) -> float:
        """The longest countdown a task may be given: half the visibility timeout.

        A Redis broker redelivers a task whose ETA lies past the visibility timeout
        (the worker holding it looks dead), so every countdown stays well inside it.
        """
        return self.visibility_timeout_seconds / 2

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        capped = (
            "backoff_max_seconds",
            "session_recheck_seconds",
            "outage_retry_seconds",
            "reader_probe_pause_seconds",
        )
        for name in capped:
            value = getattr(self, name)
            if value > self.max_countdown_seconds:
                raise ValueError(
                    f"{_env(name)}={value:g} must be at most half of "
                    f"{_env('visibility_timeout_seconds')}={self.visibility_timeout_seconds:g}, "
                    "or the broker would redeliver waiting tasks"
                )
        pairs = (
            ("backoff_base_seconds", "backoff_max_seconds"),
            ("cooldown_base_seconds", "cooldown_max_seconds"),
            ("backoff_floor_seconds", "backoff_max_seconds"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{_env(low)} must not exceed {_env(high)}")
        if self.reader_notice_chars * 2 > self.chunk_max_chars:
            raise ValueError(
                f"{_env('reader_notice')} ({self.reader_notice_chars} characters with its "
                f"number) must fit twice into {_env('chunk_max_chars')}={self.chunk_max_chars}: "
                "every part keeps room for it"
            )
        watchdog = self.worker_watchdog_seconds
        if 0 < watchdog < MIN_WORKER_WATCHDOG_SECONDS:
            raise ValueError(
                f"{_env('worker_watchdog_seconds')} must be 0 (off) or at least "
                f"{MIN_WORKER_WATCHDOG_SECONDS:g}: a shorter one would blame a healthy worker"
            )
        # requests applies the timeout to connecting and to reading, one after the other.
        if self.send_lock_ttl_seconds <= 2 * self.http_timeout_seconds:
            raise ValueError(
                f"{_env('send_lock_ttl_seconds')} must exceed twice "
                f"{_env('http_timeout_seconds')}: the lock must outlive the longest send it "
                "guards (connect and read time out separately)"
            )
        return self

    @model_validator(mode="after")
    def _inbound_webhook(self) -> Settings:
        # Checked here, not per field: a field's error would echo the secret.
        url, secret = self.inbound_webhook_url, self.inbound_webhook_secret
        url_name, secret_name = _env("inbound_webhook_url"), _env("inbound_webhook_secret")
        if url is not None:
            parts = urlsplit(url)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or any(c.isspace() for c in url)
            ):
                raise ValueError(f"{url_name} must be an absolute http(s) URL (not shown)")
            if secret is None:
                raise ValueError(
                    f"{secret_name} must be set with {url_name}: every POST is signed with it"
                )
        if secret is not None:
            value = secret.get_secret_value()
            if url is None:
                raise ValueError(f"{secret_name} is set but {url_name} is not")
            if len(value) < MIN_WEBHOOK_SECRET_CHARS or not _WEBHOOK_SECRET_PATTERN.fullmatch(
                value
            ):
                raise ValueError(
                    f"{secret_name} must be at least {MIN_WEBHOOK_SECRET_CHARS} printable ASCII "
                    "characters without whitespace (the value is not shown)"
                )
        return self

    @model_validator(mode="after")
    def _flower_credentials(self) -> Settings:
        # Checked here, not by Field(pattern=...): a field's error would echo the password.
        credentials = self.flower_basic_auth
        if credentials is not None and not FLOWER_BASIC_AUTH_PATTERN.fullmatch(
            credentials.get_secret_value()
        ):
            raise ValueError(
                f"{_env('flower_basic_auth')} must be user:password, "
                "with no comma or whitespace (the value is not shown)"
            )
        return self


def _env(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def load_settings(**values: Any) -> Settings:
    """Read and validate the settings; ``values`` (by setting name, e.g.
    ``database_url=...``) take precedence over the environment.

    Raises:
        ConfigError: a value is invalid, or a name is no setting; the message names
            the environment variable (or the unknown name).
    """
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"no such setting: {', '.join(unknown)}")
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"]]
            name = _env(location[0]) if location else "settings"
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            # URLs may carry passwords: name them, never echo them.
            secret = not location or "url" in location[0]
            shown = "" if secret or not isinstance(value, str | int | float) else f"={value!r}"
            problems.append(f"{name}{shown}: {message}" if location else message)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def as_env(settings: Settings | Mapping[str, Any]) -> dict[str, str]:
    """The ``DELIVERY_*`` variables that give a child process these settings.

    From a :class:`Settings`, the values it was given (by the environment or
    explicitly), not its defaults; from a mapping, its values by setting name.
    A value of ``None`` is left out (the setting's default).

    Example::

        as_env({"send_rate_per_minute": 30, "reader_limits": False})
        # {"DELIVERY_SEND_RATE_PER_MINUTE": "30", "DELIVERY_READER_LIMITS": "false"}
    """
    if isinstance(settings, Settings):
        values = {name: getattr(settings, name) for name in settings.model_fields_set}
    else:
        values = dict(settings)
    return {_env(name): _env_value(value) for name, value in values.items() if value is not None}


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The setting values that the ``DELIVERY_*`` variables of ``env`` give, by
    setting name (the inverse of :func:`as_env`), for :func:`load_settings`."""
    return {
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX)
    }
