"""The inbound relay in this process, against the simulator, real Redis, and SQLite and
PostgreSQL ledgers: every message a ledger row first, readers updated, then handed to
the agent by webhook and callback, once; malformed items recorded and skipped; an
account that does not own its inbound side never polled; an expired session parks
the account, and its healing starts the poller again."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import delivery
from delivery import runtime
from delivery.cli import cli
from delivery.inbound.poller import Stop
from delivery.ledger import handovers, readers
from delivery.ledger.db import session_scope
from delivery.ledger.models import Handover, HandoverAttempt
from delivery.ledger.types import utcnow
from delivery.settings import from_env
from delivery.simulator import PlatformSimulator
from tests.conftest import INBOUND_ACCOUNT as ACCOUNT
from tests.conftest import INBOUND_TOKEN as TOKEN
from tests.conftest import Ledger
from tests.integration.test_retention_inbound import receive
from tests.support.configure import Configure
from tests.support.inbound import (
    CALLED,
    FAST,
    InboundReceiver,
    handed_over,
    poller_by_hand,
    relay_in_thread,
)
from tests.support.own_redis import OwnRedis
from tests.support.waiting import wait_until

OTHER = "bot-2"
PEER = "o9cq80reader@im.wechat"


def test_a_readers_message_is_recorded_then_handed_over_by_every_channel(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver, ledger: Ledger
) -> None:
    # Given the relay polling the account
    with relay_in_thread():
        # When a reader writes
        sent = platform.model.inbound(owned, from_user_id=PEER, text="what's on today?")

        # Then the agent gets it by webhook and by callback, once each, with one key
        [entry] = wait_until(handed_over, timeout=15, message="the message handed over")
    key = f"{owned}:{sent.message_id}"
    assert receiver.counts() == {key: 1}
    assert [event.idempotency_key for event in CALLED] == [key]
    payload = receiver.payloads()[0]
    assert (payload["peer_id"], payload["text"], payload["item_types"]) == (
        PEER,
        "what's on today?",
        [1],
    )
    assert "context_token" not in payload and sent.context_token not in json.dumps(payload)
    assert entry.handovers == {"callback": "done", "webhook": "done"}
    assert (entry.status, entry.platform_message_id) == ("received", sent.message_id)
    shown = CliRunner().invoke(cli, ["inbox", "--account", owned, "--peer", PEER])
    assert shown.exit_code == 0, shown.output
    assert "what's on today?" in shown.output and "webhook done" in shown.output
    # And the reader is known for certain: open, their token kept for the replies
    [reader] = delivery.list_readers(owned)
    assert (reader.peer_id, reader.state, reader.sends_left) == (PEER, "open", 10)
    assert reader.last_inbound_at is not None
    assert abs((utcnow() - reader.last_inbound_at).total_seconds()) < 10
    with session_scope(ledger.engine) as db:
        assert readers.usable_context_token(db, account_id=owned, peer_id=PEER) == (
            sent.context_token
        )


def test_a_message_handed_out_again_or_resent_under_a_new_id_goes_to_the_agent_once(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver
) -> None:
    with relay_in_thread():
        # Given a message the agent has
        sent = platform.model.inbound(owned, from_user_id=PEER, text="score?")
        wait_until(handed_over, timeout=15)

        # When the platform hands it out again, and re-sends it under a new id
        poll = platform.model.snapshot().accounts[owned].polls
        copy = platform.model.resend_inbound(owned, message_id=sent.message_id)
        platform.model.inject_raw_inbound(owned, item=_as_sent(sent.message_id, "score?"))
        later = platform.model.inbound(owned, from_user_id=PEER, text="and the weather?")
        entries = wait_until(
            lambda: len(delivery.list_inbox(owned)) == 3 and handed_over(),
            timeout=15,
            message="the copy recorded and the next message handed over",
        )

    # Then the agent got each message once; the copy is kept, with the reason
    assert receiver.counts() == {f"{owned}:{sent.message_id}": 1, f"{owned}:{later.message_id}": 1}
    statuses = {e.platform_message_id: (e.status, e.reason or "") for e in entries}
    assert statuses[copy.message_id][0] == "duplicate"
    assert "same text from the same sender" in statuses[copy.message_id][1]
    assert platform.model.snapshot().accounts[owned].polls > poll


def _as_sent(message_id: str, text: str) -> dict[str, object]:
    return {
        "message_id": int(message_id),
        "from_user_id": PEER,
        "message_type": 1,
        "item_list": [{"type": 1, "text_item": {"text": text}}],
    }


def test_malformed_items_are_recorded_with_the_reason_and_skipped(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver
) -> None:
    # Given items no client can read, between two good messages
    first = platform.model.inbound(owned, from_user_id=PEER, text="one")
    for item in (42, {"message_id": "x", "from_user_id": PEER}, {"message_id": 5, "item_list": []}):
        platform.model.inject_raw_inbound(owned, item=item)
    with relay_in_thread():
        # When the relay polls
        wait_until(lambda: len(delivery.list_inbox(owned)) == 4, timeout=15)
        last = platform.model.inbound(owned, from_user_id=PEER, text="two")

        # Then each is recorded with its reason, and the good ones go on (no crash loop)
        wait_until(lambda: len(receiver.counts()) == 2, timeout=15, message="both good ones")
    entries = {e.id: e for e in delivery.list_inbox(owned)}
    malformed = [e for e in entries.values() if e.status == "malformed"]
    assert sorted(e.reason or "" for e in malformed) == [
        "from_user_id: recipient id must be a str, not NoneType",
        "message_id 'x' is not a uint64",
        "not a JSON object but a int",
    ]
    assert all(e.handovers == {} for e in malformed)
    assert set(receiver.counts()) == {f"{owned}:{first.message_id}", f"{owned}:{last.message_id}"}


def test_an_account_that_does_not_own_its_inbound_side_is_never_polled(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver
) -> None:
    # Given a second account the agent polls itself, with a message waiting for it
    delivery.add_account(OTHER, token="tok-other-0000-secret", base_url=platform.base_url)
    platform.model.register_account(OTHER, token="tok-other-0000-secret")
    platform.model.inbound(OTHER, from_user_id=PEER, text="for the agent's own poller")

    # When the relay runs (it polls the owned account meanwhile)
    with relay_in_thread():
        platform.model.inbound(owned, from_user_id=PEER, text="for the relay")
        wait_until(handed_over, timeout=15)

        # And a poller is even started for it by hand
        step = poller_by_hand(OTHER).poll_once()

    # Then it is never polled: its message is still the agent's to take
    assert step == Stop("the account does not own its inbound side")
    snapshot = platform.model.snapshot()
    assert snapshot.accounts[OTHER].polls == 0
    assert snapshot.accounts[owned].polls >= 1
    assert delivery.list_inbox(OTHER) == []
    assert [p["account_id"] for p in receiver.payloads()] == [owned]


def test_giving_up_the_inbound_side_stops_the_poller(
    owned: str, platform: PlatformSimulator
) -> None:
    with relay_in_thread() as relay:
        wait_until(lambda: relay.polling == [owned], timeout=15)
        delivery.add_account(owned, token=TOKEN, base_url=platform.base_url, owns_inbound=False)
        wait_until(lambda: relay.polling == [], timeout=15, message="the poller stopped")
        polls = platform.model.snapshot().accounts[owned].polls
        platform.model.inbound(owned, from_user_id=PEER, text="not for the relay any more")
        wait_until(lambda: platform.model.snapshot().now > 0, timeout=1)
    assert platform.model.snapshot().accounts[owned].polls == polls
    assert delivery.list_inbox(owned) == []


def test_an_expired_session_parks_the_account_and_its_healing_restarts_the_poller(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver, tmp_path: Path
) -> None:
    with relay_in_thread() as relay:
        wait_until(lambda: relay.polling == [owned], timeout=15)

        # When the platform expires the session (the held poll answers -14)
        platform.model.expire_session(owned)

        # Then the account is marked expired, as a send would mark it, and polling stops
        wait_until(
            lambda: delivery.list_accounts()[0].session_state == "expired",
            timeout=15,
            message="the account marked expired",
        )
        wait_until(lambda: relay.polling == [], timeout=15)
        message_id = delivery.enqueue(owned, PEER, "this waits for the session")
        assert delivery.get_status(message_id).status == "queued"

        # When the agent logs in again (a new token in the account store) and the
        # session check finds it
        platform.model.set_token(owned, token="tok-inbound-0001-renewed")
        store = tmp_path / "store"
        store.mkdir(exist_ok=True)
        (store / f"{owned}.json").write_text(
            json.dumps({"token": "tok-inbound-0001-renewed", "base_url": platform.base_url})
        )
        result = runtime.current().session_checker.check(owned)

        # Then the poller starts again, and a reader's message reaches the agent
        assert result.state == "ok"
        wait_until(lambda: relay.polling == [owned], timeout=15, message="polling again")
        sent = platform.model.inbound(owned, from_user_id=PEER, text="back?")
        wait_until(lambda: f"{owned}:{sent.message_id}" in receiver.counts(), timeout=15)


def test_a_webhook_that_is_down_gets_the_message_once_it_is_back_with_the_same_key(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver, ledger: Ledger
) -> None:
    # Given the agent's webhook down
    receiver.down()
    with relay_in_thread():
        sent = [platform.model.inbound(owned, from_user_id=PEER, text=f"m{n}") for n in range(3)]

        # When attempts fail for a while, and it comes back
        wait_until(
            lambda: _failed_attempts(ledger) >= 6, timeout=15, message="failed attempts recorded"
        )
        receiver.up()

        # Then each message arrives once, with its key; the failures are on record
        wait_until(handed_over, timeout=15, message="all handed over")
    assert receiver.counts() == {f"{owned}:{s.message_id}": 1 for s in sent}
    with session_scope(ledger.engine) as db:
        attempts = list(
            db.scalars(select(HandoverAttempt).where(HandoverAttempt.channel == "webhook"))
        )
    assert {a.outcome for a in attempts} == {"failed", "delivered"}
    assert all(a.detail == "no answer: ConnectionError" for a in attempts if a.outcome == "failed")
    assert [len(CALLED)] == [3]  # the callback was not held up by the webhook


def test_a_webhook_behind_a_redirect_is_refused_recorded_and_retried_never_followed(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver, ledger: Ledger
) -> None:
    # Given the agent's webhook behind a redirect to another host (an http-to-https
    # redirect in front of it, say), which answers a GET with 200
    with InboundReceiver() as elsewhere:
        receiver.redirect(elsewhere.url)
        with relay_in_thread():
            sent = platform.model.inbound(owned, from_user_id=PEER, text="behind a redirect")

            # When the relay hands the message over, then each attempt is refused and
            # recorded with why, and tried again
            wait_until(
                lambda: _failed_attempts(ledger) >= 2, timeout=15, message="refused attempts"
            )
            assert receiver.counts() == {}

            # And once the operator points the webhook at the final URL (here: the
            # redirect goes), the message arrives, once, with its key
            receiver.redirect(None)
            wait_until(handed_over, timeout=15, message="handed over")

    # And nothing, not even the signature, ever went to the other host
    assert elsewhere.requests == []
    assert receiver.counts() == {f"{owned}:{sent.message_id}": 1}
    assert all(r.method == "POST" for r in receiver.requests)
    with session_scope(ledger.engine) as db:
        attempts = list(
            db.scalars(select(HandoverAttempt).where(HandoverAttempt.channel == "webhook"))
        )
    refused = [a for a in attempts if a.outcome == "failed"]
    assert {(a.http_status, a.detail) for a in refused} == {
        (
            301,
            f"HTTP 301 redirect to 127.0.0.1:{elsewhere.port} refused: configure the final URL",
        )
    }
    assert [a.outcome for a in attempts][-1] == "delivered"


def _failed_attempts(ledger: Ledger) -> int:
    with session_scope(ledger.engine) as db:
        return len(
            list(db.scalars(select(HandoverAttempt.id).where(HandoverAttempt.outcome == "failed")))
        )


def test_a_second_relay_stands_by_and_takes_over_when_the_first_stops(
    owned: str, platform: PlatformSimulator, receiver: InboundReceiver
) -> None:
    stop_first = threading.Event()
    first = runtime.current().inbound_relay()
    thread = threading.Thread(target=first.run, args=(stop_first,), daemon=True)
    thread.start()
    wait_until(lambda: first.polling == [owned], timeout=15)
    with relay_in_thread() as second:
        sent = platform.model.inbound(owned, from_user_id=PEER, text="one")
        wait_until(lambda: receiver.counts(), timeout=15)
        assert second.polling == []
        stop_first.set()
        thread.join(timeout=30)
        wait_until(lambda: second.polling == [owned], timeout=15, message="the takeover")
        later = platform.model.inbound(owned, from_user_id=PEER, text="two")
        wait_until(lambda: len(receiver.counts()) == 2, timeout=15)
    assert receiver.counts() == {f"{owned}:{sent.message_id}": 1, f"{owned}:{later.message_id}": 1}
    assert platform.model.snapshot().accounts[owned].max_polls_in_flight == 1


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        (
            "DELIVERY_INBOUND_WEBHOOK_URL",
            "ftp://agent.example/in?key=s3cr3t",
            "DELIVERY_INBOUND_WEBHOOK_URL must be an absolute http(s) URL",
        ),
        ("DELIVERY_INBOUND_WEBHOOK_SECRET", "too-short", "DELIVERY_INBOUND_WEBHOOK_SECRET"),
        ("DELIVERY_INBOUND_CALLBACK", "no_such_module:hand_over", "cannot be loaded"),
    ],
)
def test_the_relay_refuses_to_start_with_a_malformed_hand_over(
    sqlite_ledger: Ledger, configure: Configure, setting: str, value: str, said: str
) -> None:
    # Given a webhook otherwise well configured, and one setting that is not
    good = {
        "DELIVERY_INBOUND_WEBHOOK_URL": "https://agent.example/in",
        "DELIVERY_INBOUND_WEBHOOK_SECRET": "a-good-secret-0123456789",
    }
    environment = {**good, setting: value, "DELIVERY_DATABASE_URL": sqlite_ledger.url}
    configure.from_environment()

    # When the relay starts, then it stops at once, naming the variable
    result = CliRunner().invoke(cli, ["relay"], env=environment)
    assert result.exit_code == 1
    assert said in result.output
    assert "s3cr3t" not in result.output and "too-short" not in result.output


def test_a_task_published_before_a_broker_restart_but_recorded_after_it_goes_again(
    sqlite_ledger: Ledger,
    on_own_redis: OwnRedis,
    configure: Configure,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a relay that hands messages over as the agent's task, on a broker that
    # keeps nothing, and one message received
    own_redis = on_own_redis
    configure(**from_env(FAST), inbound_task="agent.inbound")
    delivery.add_account(ACCOUNT, token=TOKEN, base_url="http://127.0.0.1:9")
    relay = runtime.current().inbound_relay()
    relay.tick()  # it learns the broker's run
    inbound_id = receive(sqlite_ledger, "hello", days_ago=0, channels=("task",))
    old_run = own_redis.client().info("server")["run_id"]

    # When a hand-over thread publishes to the broker, the broker restarts (losing
    # the task), the relay sees it, and only then does the thread record its publish
    own_redis.stop()
    own_redis.start()
    relay.tick()
    with session_scope(sqlite_ledger.engine) as db:
        handovers.finish(
            db,
            inbound_id=inbound_id,
            channel="task",
            attempt_no=1,
            now=utcnow(),
            delivered=True,
            detail="published",
            broker_run_id=old_run,
        )

    # Then the relay's next look hands it over again (the same key)
    caplog.set_level(logging.WARNING, logger="delivery.inbound.relay")
    relay.tick()
    with session_scope(sqlite_ledger.engine) as db:
        row = db.scalars(select(Handover).where(Handover.inbound_id == inbound_id)).one()
        assert row.status == "pending" or row.attempt_count == 2, row.status
    assert "recorded only now; published again" in caplog.text
    relay.close()
