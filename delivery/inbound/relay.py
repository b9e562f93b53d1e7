"""The inbound relay: one process (``delivery relay``, or ``delivery worker --role
inbound|all``) that polls the accounts it leases and hands their messages over.

Every tick (``DELIVERY_INBOUND_SCAN_SECONDS``, and at least three times per lease):

1. renew the lease of each account it polls; a poller whose lease was lost records
   nothing of the poll in flight and stops (another relay has the account now; it
   checks the lease again itself before it records);
2. start a poller for each account that owns its inbound side, whose session is
   not expired, and whose lease it can take; so a session that heals starts its
   poller again within a tick, and exactly one relay polls an account. A relay
   with no hand-over configured polls nothing: what it consumed would reach nobody;
3. if a task channel is configured and the broker restarted (its run id changed),
   hand the tasks it may have lost over again (same keys); and for as long as a
   hand-over can take (its claim), again each tick, for a publish to the old
   broker recorded only after the restart was seen;
4. hand over what is due: retries after a backoff, and what a dead relay held.

A poller hands the messages it recorded to the hand-over threads at once; the
tick is only the safety net.

Lease key (``{prefix}`` is ``DELIVERY_REDIS_KEY_PREFIX``)::

    {prefix}:inbound:{<account>}:poller   the polling relay's identity (PX = lease TTL)

Fails closed: without Redis no lease can be proved, so nothing is polled or
recorded (the platform keeps the messages); hand-overs from the ledger go on.

Example::

    relay = runtime.current().inbound_relay()
    relay.run(stop=threading.Event())      # until stop is set (SIGTERM)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import redis
from sqlalchemy import select

from delivery.errors import LedgerError, LimiterUnavailable
from delivery.inbound.handover import Claimed, HandoverRunner
from delivery.inbound.poll_record import PollRecord
from delivery.inbound.poller import NO_HANDOVER, AccountPoller, PollerContext, wake_readers
from delivery.leases import RedisLease
from delivery.ledger import handovers
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account
from delivery.ledger.states import HandoverChannel, SessionState
from delivery.ledger.types import utcnow

__all__ = ["CLOSE_WAIT_SECONDS", "HANDOVER_THREADS", "BrokerWatch", "InboundRelay"]

log = logging.getLogger(__name__)

HANDOVER_THREADS = 4  # hand-overs at once per relay (a slow webhook holds one)
CLOSE_WAIT_SECONDS = 2.0  # how long a stopping relay waits for its pollers' polls to end
_DUE_BATCH = 200  # hand-overs looked up per tick


class BrokerWatch:
    """The broker's run id (Redis ``INFO server``): a new one means it restarted, and
    what it held (tasks not yet consumed) may be gone."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._run_id: str | None = None

    def refresh(self) -> str | None:
        """Ask the broker; ``None`` when it cannot be reached (the last one is kept)."""
        try:
            run_id = self._client.info("server").get("run_id")
        except redis.RedisError:
            return None
        self._run_id = str(run_id) if run_id else None
        return self._run_id

    def current(self) -> str | None:
        """The run id seen last."""
        return self._run_id


@dataclass
class _Running:
    thread: threading.Thread
    lease: RedisLease
    stop: threading.Event = field(default_factory=threading.Event)
    why: str = ""


class InboundRelay:
    """Pollers for the accounts this process leases, and the hand-over threads."""

    def __init__(
        self,
        *,
        context: PollerContext,
        runner: HandoverRunner,
        redis_client: redis.Redis,
        broker: BrokerWatch | None,
    ) -> None:
        self._context = context
        self._runner = runner
        self._redis = redis_client
        self._broker = broker
        settings = context.settings
        self._prefix = settings.redis_key_prefix
        self.tick_seconds = min(settings.inbound_scan_seconds, settings.inbound_lease_seconds / 3)
        self._running: dict[str, _Running] = {}
        self._elsewhere: set[str] = set()
        self._queued: set[tuple[int, str]] = set()
        self._queued_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(HANDOVER_THREADS, thread_name_prefix="handover")
        # Waking readers' chats, in the order their polls were recorded.
        self._waker = ThreadPoolExecutor(1, thread_name_prefix="wake")
        self._broker_run_id: str | None = None
        self._reopen_until = 0.0  # (monotonic) hand-overs to a lost broker may still record
        self._said: set[str] = set()

    @property
    def polling(self) -> list[str]:
        """The accounts this relay polls now."""
        return sorted(a for a, r in self._running.items() if not r.stop.is_set())

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, then stop the pollers and give the leases up."""
        channels = ", ".join(self._runner.channels) or "none"
        log.info("relay: hands inbound messages over by: %s", channels)
        if not self._runner.channels:
            log.warning(
                "relay: polls nothing: %s; the platform keeps the readers' messages", NO_HANDOVER
            )
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.tick_seconds)
        finally:
            self.close()

    def tick(self) -> None:
        """One round of the four steps in the module docstring."""
        self._keep_leases()
        try:
            self._start_pollers()
            self._after_broker_restart()
            self._hand_over_due()
        except LedgerError as exc:
            self._say("ledger", f"relay: the ledger is unreachable ({exc}); trying again")
            return
        self._said.discard("ledger")

    def submit(self, keys: list[tuple[int, str]]) -> None:
        """Hand these (inbound id, channel) over on the hand-over threads, if due."""
        for key in self._fresh(keys):
            self._pool.submit(self._hand_over, key, partial(self._runner.attempt, *key))

    def submit_claimed(self, claims: list[Claimed]) -> None:
        """Hand these over on the hand-over threads: claimed already (a poll's new ones)."""
        by_key = {(c.event.inbound_id, c.channel): c for c in claims}
        for key in self._fresh(list(by_key)):
            self._pool.submit(self._hand_over, key, partial(self._runner.hand_over, by_key[key]))

    def _after_poll(self, account_id: str, record: PollRecord) -> None:
        """A poller recorded a poll: hand its new messages over, wake its readers' chats."""
        self.submit_claimed(record.claimed)
        if record.peers or record.session_healed:
            self._waker.submit(self._wake, account_id, record)

    def _wake(self, account_id: str, record: PollRecord) -> None:
        context = self._context
        try:
            wake_readers(
                engine=context.engine,
                publisher=context.publisher,
                account_id=account_id,
                record=record,
            )
        except Exception:  # a bug must not kill the wake thread; the reconciler wakes them
            log.exception("account %s: readers' chats not woken", account_id)

    def _fresh(self, keys: list[tuple[int, str]]) -> list[tuple[int, str]]:
        with self._queued_lock:
            fresh = [key for key in keys if key not in self._queued]
            self._queued.update(fresh)
        return fresh

    def close(self) -> None:
        """Stop every poller; queued hand-overs stay in the ledger.

        A poller that ends within :data:`CLOSE_WAIT_SECONDS` gives its lease up, so
        another relay takes over at once; one still held in a long poll keeps it
        until it runs out, and records nothing of that poll (it is stopped).
        """
        for running in self._running.values():
            running.stop.set()
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        for running in self._running.values():
            running.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if not running.thread.is_alive():
                running.lease.release()
        self._running.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._waker.shutdown(wait=False, cancel_futures=True)

    # -- steps ----------------------------------------------------------------------

    def _keep_leases(self) -> None:
        for account_id, running in list(self._running.items()):
            if not running.thread.is_alive():
                running.lease.release()
                del self._running[account_id]
                log.info("account %s: inbound poller stopped (%s)", account_id, running.why)
                continue
            if running.stop.is_set():
                continue  # lost already: it ends after the poll in flight
            try:
                held = running.lease.hold()
            except LimiterUnavailable as exc:
                log.warning("account %s: lease not renewed (%s); polling stops", account_id, exc)
                held = False
            if not held:
                log.warning(
                    "account %s: the poller lost its lease; it records nothing more and stops",
                    account_id,
                )
                running.stop.set()

    def _start_pollers(self) -> None:
        if not self._runner.channels:
            return  # what it polled would reach nobody (said at start)
        with session_scope(self._context.engine, readonly=True) as db:
            eligible = list(
                db.scalars(
                    select(Account.id)
                    .where(
                        Account.owns_inbound.is_(True),
                        Account.session_state != SessionState.EXPIRED,
                    )
                    .order_by(Account.id)
                )
            )
        if not eligible:
            self._say("idle", "relay: no account owns its inbound side; nothing to poll")
        for account_id in eligible:
            if account_id in self._running:
                continue
            lease = RedisLease(
                self._redis,
                key=f"{self._prefix}:inbound:{{{account_id}}}:poller",
                ttl_seconds=self._context.settings.inbound_lease_seconds,
            )
            try:
                held = lease.hold()
            except LimiterUnavailable as exc:
                self._say("redis", f"relay: no leases while Redis is unreachable ({exc})")
                return
            self._said.discard("redis")
            if not held:
                if account_id not in self._elsewhere:
                    log.info("account %s: polled by another relay; standing by", account_id)
                    self._elsewhere.add(account_id)
                continue
            self._elsewhere.discard(account_id)
            self._start(account_id, lease)

    def _start(self, account_id: str, lease: RedisLease) -> None:
        running = _Running(thread=threading.Thread(), lease=lease)

        def holds_lease() -> bool:
            if running.stop.is_set():
                return False  # lost at a tick, or the relay stops
            try:
                return lease.hold()
            except LimiterUnavailable:
                return False  # cannot be proved: as if lost

        poller = AccountPoller(
            account_id,
            context=self._context,
            after_poll=self._after_poll,
            holds_lease=holds_lease,
        )

        def poll() -> None:
            try:
                running.why = poller.run(running.stop)
            except Exception as exc:  # a bug must stop this poller, never the relay
                log.exception("account %s: inbound poller failed", account_id)
                running.why = f"failed: {type(exc).__name__}"

        running.thread = threading.Thread(target=poll, name=f"poll {account_id}", daemon=True)
        self._running[account_id] = running
        log.info("account %s: polling its inbound side (lease %s)", account_id, lease.identity)
        running.thread.start()

    def _after_broker_restart(self) -> None:
        if self._broker is None or HandoverChannel.TASK not in self._runner.channels:
            return
        run_id = self._broker.refresh()
        if run_id is None:
            return
        restarted, previous = run_id != self._broker_run_id, self._broker_run_id
        if restarted:
            # A hand-over that published to the old broker may record itself done only
            # after this look (its thread was slow): look again until its claim ran out.
            self._broker_run_id = run_id
            self._reopen_until = time.monotonic() + self._runner.claim_seconds
        elif time.monotonic() > self._reopen_until:
            return
        now = utcnow()
        window = self._context.settings.inbound_task_republish_seconds
        try:
            with session_scope(self._context.engine) as db:
                reopened = handovers.reopen_tasks(
                    db,
                    broker_run_id=run_id,
                    handed_over_since=now - dt.timedelta(seconds=window),
                    now=now,
                )
        except LedgerError:
            self._broker_run_id = previous  # not done: as after the restart, next time
            raise
        if reopened and restarted:
            log.warning(
                "relay: the broker restarted; %d task(s) handed to it in the last %g s may be "
                "lost with it and are published again, under the same keys",
                reopened,
                window,
            )
        elif reopened:
            log.warning(
                "relay: %d task(s) published to the broker before its restart were recorded "
                "only now; published again, under the same keys",
                reopened,
            )

    def _hand_over_due(self) -> None:
        if not self._runner.channels:
            return
        with session_scope(self._context.engine, readonly=True) as db:
            due = handovers.due(db, now=utcnow(), channels=self._runner.channels, limit=_DUE_BATCH)
        self.submit(due)

    def _hand_over(self, key: tuple[int, str], attempt: Callable[[], object]) -> None:
        try:
            attempt()
        except LedgerError as exc:
            log.warning("inbound %d: not handed over by %s yet (%s)", key[0], key[1], exc)
        except Exception:  # a bug must not kill the hand-over thread
            log.exception("inbound %d: hand-over by %s failed", key[0], key[1])
        finally:
            with self._queued_lock:
                self._queued.discard(key)

    def _say(self, topic: str, line: str) -> None:
        """Log ``line`` once until its topic clears."""
        if topic not in self._said:
            log.warning(line)
            self._said.add(topic)
