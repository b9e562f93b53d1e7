"""A poll's answer is recorded only by a poller that may still record it, and then the
cursor only moves forward: a poll that started from a cursor another poller has moved
since records nothing; a poller that lost its lease mid-poll records nothing and stops;
an account switched off mid-poll keeps what that poll was handed at the platform, for
whoever polls it next; a relay with no way to the agent polls nothing. Against the
simulator, real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading

import pytest
import redis
import requests

import delivery
from delivery import runtime
from delivery.ilink.client import ILinkClient
from delivery.inbound.poller import Polled, Stop
from delivery.ledger import inbox
from delivery.ledger.db import session_scope
from delivery.simulator import Fault, PlatformSimulator
from tests.conftest import INBOUND_TOKEN, Ledger, RedisInfo
from tests.support.configure import Configure
from tests.support.inbound import InboundReceiver, handed_over, poller_by_hand, relay_in_thread
from tests.support.waiting import wait_until

PEER = "o9cq80reader@im.wechat"
HELD_SECONDS = 1.5  # how long the platform holds a poll it has handed messages to


def cursor_of(ledger: Ledger, account: str) -> str:
    with session_scope(ledger.engine, readonly=True) as db:
        return inbox.cursor_of(db, account)


def hold_the_next_poll(platform: PlatformSimulator, account: str) -> None:
    """The next poll is handed what waits, then held for :data:`HELD_SECONDS`."""
    platform.model.queue_fault(
        Fault.hang(HELD_SECONDS, deliver=True, endpoint="getupdates"), account_id=account
    )


def held(platform: PlatformSimulator) -> bool:
    return platform.model.snapshot().counters.faults_fired.get("hang", 0) == 1


def test_a_poll_that_started_before_another_was_recorded_never_moves_the_cursor_back(
    owned: str, platform: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a poller whose poll is handed a message and then held (a stalled tick)
    first = platform.model.inbound(owned, from_user_id=PEER, text="one")
    hold_the_next_poll(platform, owned)
    stalled: list[Polled | object] = []
    thread = threading.Thread(target=lambda: stalled.append(poller_by_hand(owned).poll_once()))
    thread.start()
    wait_until(lambda: held(platform), timeout=15, message="the poll held")

    # When another poller (after a lease loss) records that message and the next one
    second = poller_by_hand(owned)
    assert isinstance(second.poll_once(), Polled)
    later = platform.model.inbound(owned, from_user_id=PEER, text="two")
    assert isinstance(second.poll_once(), Polled)
    newest = cursor_of(ledger, owned)

    # And the stalled poll's answer comes at last
    thread.join(timeout=30)

    # Then it records nothing: the cursor stays where the newer poll moved it
    assert stalled == [Stop("another poller recorded a poll since this one started")]
    assert cursor_of(ledger, owned) == newest
    recorded = {e.platform_message_id for e in delivery.list_inbox(owned)}
    assert recorded == {first.message_id, later.message_id}


def test_a_poller_that_lost_its_lease_mid_poll_records_nothing_and_stops(
    owned: str,
    platform: PlatformSimulator,
    receiver: InboundReceiver,
    redis_db: RedisInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="delivery.inbound.relay")
    lease_key = f"{runtime.current().settings.redis_key_prefix}:inbound:{{{owned}}}:poller"
    client = redis.Redis.from_url(redis_db.url)
    # Given a message waiting, and the relay's first poll handed it and held
    sent = platform.model.inbound(owned, from_user_id=PEER, text="mid-poll")
    hold_the_next_poll(platform, owned)
    with relay_in_thread():
        wait_until(lambda: held(platform), timeout=15, message="the poll held")

        # When the poller's lease goes to another relay meanwhile
        client.set(lease_key, "another-relay", px=60_000)

        # Then, its poll answered, the poller records nothing and stops
        wait_until(
            lambda: "inbound poller stopped" in caplog.text, timeout=15, message="it stopped"
        )
        assert delivery.list_inbox(owned) == []
        assert "lost its lease" in caplog.text

        # And when the lease comes back to it, the message is handed over, once
        client.delete(lease_key)
        wait_until(handed_over, timeout=15, message="the message handed over")
    assert receiver.counts() == {f"{owned}:{sent.message_id}": 1}


def test_switching_the_inbound_side_off_mid_poll_leaves_the_message_to_the_agents_poller(
    owned: str,
    platform: PlatformSimulator,
    receiver: InboundReceiver,
    http: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="delivery.inbound.relay")
    agents_poller = ILinkClient(base_url=platform.base_url, token=INBOUND_TOKEN, session=http)
    # Given a message waiting, and the relay's first poll handed it and held
    sent = platform.model.inbound(owned, from_user_id=PEER, text="mid-switch")
    hold_the_next_poll(platform, owned)
    with relay_in_thread():
        wait_until(lambda: held(platform), timeout=15, message="the poll held")

        # When the operator gives the inbound side back to the agent meanwhile
        delivery.add_account(
            owned, token=INBOUND_TOKEN, base_url=platform.base_url, owns_inbound=False
        )

        # Then the relay records nothing of that poll and stops polling
        wait_until(
            lambda: "inbound poller stopped" in caplog.text, timeout=15, message="it stopped"
        )
        assert delivery.list_inbox(owned) == []
        # And the agent's own poller gets the message from the platform
        polled = agents_poller.get_updates(cursor="", timeout_seconds=5).payload
        assert [str(m["message_id"]) for m in polled["msgs"]] == [sent.message_id]
        agents_poller.get_updates(cursor=polled["get_updates_buf"], timeout_seconds=5)

        # When the inbound side is switched on again (nothing recorded: an empty cursor)
        later = platform.model.inbound(owned, from_user_id=PEER, text="after the switch")
        delivery.add_account(
            owned, token=INBOUND_TOKEN, base_url=platform.base_url, owns_inbound=True
        )

        # Then the relay gets what nobody acknowledged, and not what the agent's poller did
        wait_until(handed_over, timeout=15, message="the later message handed over")
    assert receiver.counts() == {f"{owned}:{later.message_id}": 1}


def test_a_relay_with_no_way_to_the_agent_polls_nothing(
    owned: str,
    platform: PlatformSimulator,
    configure: Configure,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an account that owns its inbound side, a message waiting, and no hand-over
    configure(inbound_webhook_url=None, inbound_webhook_secret=None, inbound_callback=None)
    sent = platform.model.inbound(owned, from_user_id=PEER, text="for nobody?")

    # When the relay runs for a while (a dozen of its ticks)
    caplog.set_level(logging.INFO, logger="delivery.inbound.relay")
    with relay_in_thread() as relay:
        ticks = relay.tick_seconds
        wait_until(lambda: "polls nothing" in caplog.text, timeout=15, message="it says why")
        deadline = platform.model.snapshot().now + 12 * ticks
        wait_until(lambda: platform.model.snapshot().now > deadline, timeout=15)

    # Then it never polled: the message waits at the platform for a relay that can
    # hand it over (or the agent's own poller)
    assert platform.model.snapshot().accounts[owned].polls == 0
    assert delivery.list_inbox(owned) == []
    assert sent.message_id
