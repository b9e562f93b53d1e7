"""A hand-over is made by the attempt that holds its claim, and only that one: an attempt
whose claim ran out (its relay was slow, or its thread waited behind a slow webhook)
neither finishes the attempt that took over nor hands the message over beside it. On
SQLite and PostgreSQL, real Redis, a real webhook."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select

from delivery.ledger import handovers
from delivery.ledger.db import session_scope
from delivery.ledger.models import Handover, HandoverAttempt
from delivery.ledger.types import utcnow
from delivery.settings import from_env
from delivery.simulator import PlatformSimulator
from tests.conftest import Ledger
from tests.integration.test_retention_inbound import receive
from tests.support.configure import Configure
from tests.support.inbound import InboundReceiver, handed_over, relay_in_thread
from tests.support.waiting import wait_until

PEER = "o9cq80reader@im.wechat"
CLAIM_SECONDS = 30


def test_a_late_attempt_does_not_finish_the_attempt_that_holds_the_claim(
    ledger: Ledger, owned: str
) -> None:
    # Given a message whose first attempt (relay 1) outlived its claim, and a second
    # attempt (relay 2) that took the hand-over over
    inbound_id = receive(ledger, "hello", days_ago=0)  # attempt 1 claimed now, for 30 s
    later = utcnow() + dt.timedelta(seconds=CLAIM_SECONDS + 1)
    with session_scope(ledger.engine) as db:
        second = handovers.claim(
            db,
            inbound_id=inbound_id,
            channel="webhook",
            now=later,
            claim_seconds=CLAIM_SECONDS,
            host="relay-2",
        )
    assert second == 2

    # When the first attempt ends (it failed) and records itself
    with session_scope(ledger.engine) as db:
        held = handovers.finish(
            db,
            inbound_id=inbound_id,
            channel="webhook",
            attempt_no=1,
            now=later,
            delivered=False,
            detail="no answer: ReadTimeout",
            retry_at=later,
        )

    # Then the second still holds the hand-over: nobody can start a third beside it
    assert held is False
    with session_scope(ledger.engine) as db:
        assert handovers.due(db, now=later, channels=["webhook"], limit=10) == []
        third = handovers.claim(
            db,
            inbound_id=inbound_id,
            channel="webhook",
            now=later + dt.timedelta(seconds=1),
            claim_seconds=CLAIM_SECONDS,
            host="relay-3",
        )
    assert third is None
    # And the first attempt's row says what it did, and that it came too late
    outcomes = attempts_of(ledger, inbound_id)
    assert outcomes[1][0] == "failed"
    assert outcomes[1][1] == "no answer: ReadTimeout (recorded after attempt 2 took over)"
    assert outcomes[2][0] == "in_flight"

    # And when the second attempt ends, it is the one that counts
    with session_scope(ledger.engine) as db:
        assert handovers.finish(
            db,
            inbound_id=inbound_id,
            channel="webhook",
            attempt_no=2,
            now=later,
            delivered=True,
            detail="HTTP 204",
            http_status=204,
        )
        row = db.scalars(select(Handover).where(Handover.inbound_id == inbound_id)).one()
        assert (row.status, row.claimed_until, row.attempt_count) == ("done", None, 2)


def attempts_of(ledger: Ledger, inbound_id: int) -> dict[int, tuple[str, str | None]]:
    with session_scope(ledger.engine) as db:
        rows = db.scalars(
            select(HandoverAttempt).where(
                HandoverAttempt.inbound_id == inbound_id, HandoverAttempt.channel == "webhook"
            )
        )
        return {a.attempt_no: (a.outcome, a.detail) for a in rows}


def test_claims_waiting_behind_a_slow_webhook_are_not_handed_over_twice_by_another_relay(
    owned: str,
    platform: PlatformSimulator,
    receiver: InboundReceiver,
    configure: Configure,
    ledger: Ledger,
) -> None:
    # Given a webhook that takes 0.4 s per message (its timeout 1 s: claims of 2 s), and
    # 32 messages one poll hands out at once: the hand-over threads (4) take 3.2 s for
    # them, so the claims of the last ones run out while they wait
    configure(**from_env(receiver.settings(timeout_seconds=1)))
    receiver.slow(0.4)
    sent = [platform.model.inbound(owned, from_user_id=PEER, text=f"m{n}") for n in range(32)]

    # When a second relay runs beside the one that polls, handing over what is due
    with relay_in_thread() as first:
        wait_until(lambda: first.polling == [owned], timeout=15)
        with relay_in_thread():
            wait_until(
                lambda: len(handed_over(owned)) == 32,
                timeout=30,
                message=lambda: f"all 32 handed over; the webhook has {len(receiver.counts())}",
            )

    # Then each message came to the webhook once: nothing was handed over beside an
    # attempt that still would
    keys = {f"{owned}:{s.message_id}" for s in sent}
    assert receiver.counts() == Counter(dict.fromkeys(keys, 1))
    # (and the second relay did take over hand-overs whose claims ran out meanwhile)
    with session_scope(ledger.engine) as db:
        taken_over = db.scalars(
            select(HandoverAttempt.inbound_id).where(
                HandoverAttempt.channel == "webhook", HandoverAttempt.outcome == "lost"
            )
        ).all()
    assert taken_over
