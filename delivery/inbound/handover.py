"""One attempt to hand an inbound message to the agent by one channel, recorded.

The hand-over is claimed in the ledger (and its attempt row written) before the
channel is called, and the outcome is recorded after: done, or due again after
a backoff. A relay that dies mid-call leaves a claim that runs out; the next
relay hands the message over again, with the same key (at least once, never
under a new key). If the ledger goes away between the call and the record, the
same happens: the agent may see the key twice, and handles it once.

A poll's new messages are claimed when they are recorded, and may wait for a
hand-over thread (behind a slow webhook) longer than the claim lasts; so just
before the call the claim is renewed (:func:`~delivery.ledger.handovers.hold`),
and an attempt whose claim another relay took meanwhile makes no call. Only the
attempt that holds the claim records the hand-over's outcome.

Example::

    runner = HandoverRunner(engine=engine, channels={"webhook": channel},
                            backoff=lambda attempts: 2.0 ** attempts, claim_seconds=20,
                            host="relay-1")
    runner.attempt(42, "webhook")      # Handed(delivered=True, ...), or None if not due
    runner.hand_over(claimed)          # one the caller claimed already (a poll's new
                                       # message); None if another relay took it over
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine

from delivery.errors import LedgerError
from delivery.inbound.channels import Channel, Handed
from delivery.inbound.event import InboundEvent, idempotency_key
from delivery.ledger import handovers
from delivery.ledger.db import session_scope
from delivery.ledger.models import InboundMessage
from delivery.ledger.types import utcnow

__all__ = ["Claimed", "HandoverRunner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A hand-over its caller holds (claimed in the ledger): which message, by which
    channel, and the number of the attempt written for it."""

    event: InboundEvent
    channel: str
    attempt_no: int


class HandoverRunner:
    """Hands messages over by the configured ``channels`` (by name), recording each
    attempt; ``backoff(attempts)`` is the wait in seconds after a failed one."""

    def __init__(
        self,
        *,
        engine: Engine,
        channels: Mapping[str, Channel],
        backoff: Callable[[int], float],
        claim_seconds: float,
        host: str,
    ) -> None:
        self._engine = engine
        self._channels = dict(channels)
        self._backoff = backoff
        self._claim_seconds = claim_seconds
        self._host = host

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._channels)

    @property
    def claim_seconds(self) -> float:
        """How long a hand-over in progress holds its claim: the longest it can take."""
        return self._claim_seconds

    def attempt(self, inbound_id: int, channel: str) -> Handed | None:
        """Hand message ``inbound_id`` over by ``channel`` once, if it is due and
        nobody else holds it; ``None`` otherwise.

        Raises:
            LedgerError: the claim could not be written (nothing was handed over).
        """
        if channel not in self._channels:
            return None
        with session_scope(self._engine) as db:
            attempt_no = handovers.claim(
                db,
                inbound_id=inbound_id,
                channel=channel,
                now=utcnow(),
                claim_seconds=self._claim_seconds,
                host=self._host,
            )
            if attempt_no is None:
                return None
            event = _event(db.get_one(InboundMessage, inbound_id))
        return self._call(Claimed(event=event, channel=channel, attempt_no=attempt_no))

    def hand_over(self, claimed: Claimed) -> Handed | None:
        """Make the attempt the caller claimed, and record what it did; ``None`` (no
        call) when its claim ran out and another attempt took the hand-over over.

        Raises:
            LedgerError: the claim could not be renewed (nothing was handed over).
        """
        with session_scope(self._engine) as db:
            held = handovers.hold(
                db,
                inbound_id=claimed.event.inbound_id,
                channel=claimed.channel,
                attempt_no=claimed.attempt_no,
                now=utcnow(),
                claim_seconds=self._claim_seconds,
            )
        if not held:
            log.info(
                "inbound %d (%s): attempt %d waited past its claim and another relay took "
                "the hand-over over; not made",
                claimed.event.inbound_id,
                claimed.channel,
                claimed.attempt_no,
            )
            return None
        return self._call(claimed)

    def _call(self, claimed: Claimed) -> Handed:
        """Call the channel for an attempt that holds its claim; record what it did."""
        inbound_id, channel, attempt_no = (
            claimed.event.inbound_id,
            claimed.channel,
            claimed.attempt_no,
        )
        started = time.monotonic()
        handed = self._channels[channel](claimed.event)
        duration_ms = int((time.monotonic() - started) * 1000)
        now = utcnow()
        try:
            with session_scope(self._engine) as db:
                held = handovers.finish(
                    db,
                    inbound_id=inbound_id,
                    channel=channel,
                    attempt_no=attempt_no,
                    now=now,
                    delivered=handed.delivered,
                    detail=handed.detail,
                    http_status=handed.http_status,
                    duration_ms=duration_ms,
                    retry_at=None
                    if handed.delivered
                    else now + dt.timedelta(seconds=self._backoff(attempt_no)),
                    broker_run_id=handed.broker_run_id,
                )
        except LedgerError as exc:
            log.warning(
                "inbound %d (%s): %s, but not recorded (%s); it is handed over again, with "
                "the same key, once its claim runs out",
                inbound_id,
                channel,
                "handed over" if handed.delivered else "not handed over",
                exc,
            )
            return handed
        if not held:
            log.warning(
                "inbound %d (%s): attempt %d (%s) outlived its claim; another attempt holds "
                "the hand-over and decides it",
                inbound_id,
                channel,
                attempt_no,
                handed.detail,
            )
        elif handed.delivered:
            log.info("inbound %d: handed over by %s (%s)", inbound_id, channel, handed.detail)
        else:
            log.warning(
                "inbound %d: not handed over by %s, attempt %d (%s); trying again",
                inbound_id,
                channel,
                attempt_no,
                handed.detail,
            )
        return handed


def _event(row: InboundMessage) -> InboundEvent:
    assert row.platform_message_id is not None and row.peer_id is not None
    return InboundEvent(
        idempotency_key=idempotency_key(
            account_id=row.account_id, platform_message_id=row.platform_message_id
        ),
        account_id=row.account_id,
        peer_id=row.peer_id,
        text=row.text or "",
        item_types=tuple(int(t) for t in (row.item_types or "").split(",") if t),
        platform_message_id=row.platform_message_id,
        inbound_id=row.id,
        written_at=row.written_at,
        received_at=row.received_at,
    )
