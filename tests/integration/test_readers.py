"""Readers through the API, the CLI and a send pipeline in this process, on SQLite and
PostgreSQL: inbound events, bad input, holding and its limit, collapse keys."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

import delivery
from delivery import errors, runtime
from delivery.cli import cli
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message, Reader
from delivery.ledger.types import utcnow
from delivery.monitoring.exporter import build_collector
from delivery.pipeline.reconcile import reconcile
from delivery.pipeline.results import Done, Wait
from delivery.pipeline.send import SendPipeline
from delivery.simulator import PlatformSimulator, SimulatorConfig
from tests.conftest import Ledger, RedisInfo
from tests.integration.conftest import ACCOUNT, TOKEN
from tests.support.bursts import paragraph
from tests.support.configure import Configure
from tests.support.inprocess import Published, in_process_pipeline
from tests.support.waiting import wait_until

PEER = "o9cq80peer@im.wechat"


def reader_row(ledger: Ledger, peer: str = PEER) -> Reader | None:
    with session_scope(ledger.engine) as db:
        return db.get(Reader, (ACCOUNT, peer))


# -- inbound messages ---------------------------------------------------------------------------


def test_an_inbound_message_reopens_the_window_and_resets_the_budget(
    account: str, ledger: Ledger
) -> None:
    # Given a reader who got 4 sends since they last wrote
    delivery.record_inbound(account, PEER, context_token="ctx-1")
    with session_scope(ledger.engine) as db:
        db.execute(update(Reader).values(sends_since_inbound=4))

    # When they write again, then their budget starts again with the new token
    delivery.record_inbound(account, PEER, context_token="ctx-2")
    row = reader_row(ledger)
    assert row is not None
    assert (row.sends_since_inbound, row.context_token) == (0, "ctx-2")
    [info] = delivery.list_readers(account)
    assert (info.state, info.sends_left) == ("open", 10)


def test_an_older_inbound_message_changes_nothing(account: str, ledger: Ledger) -> None:
    delivery.record_inbound(account, PEER, context_token="ctx-new")
    with session_scope(ledger.engine) as db:
        db.execute(update(Reader).values(sends_since_inbound=3))

    delivery.record_inbound(
        account, PEER, context_token="ctx-old", at=utcnow() - dt.timedelta(hours=2)
    )

    row = reader_row(ledger)
    assert row is not None and (row.sends_since_inbound, row.context_token) == (3, "ctx-new")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "says"),
    [
        (("nobody", PEER), {}, errors.UnknownAccount, "unknown account 'nobody'"),
        ((ACCOUNT, "not a peer"), {}, errors.InvalidRecipient, "recipient"),
        ((ACCOUNT, PEER), {"context_token": "x" * 5000}, errors.InvalidContextToken, "maximum"),
        (
            (ACCOUNT, PEER),
            {"at": utcnow() + dt.timedelta(hours=1)},
            errors.InvalidInboundTime,
            "in the future",
        ),
        (
            (ACCOUNT, PEER),
            {"at": dt.datetime(2026, 11, 30, 8, 0)},
            errors.InvalidInboundTime,
            "timezone-aware",
        ),
    ],
)
def test_bad_inbound_input_is_refused_with_the_reason_and_nothing_written(
    account: str,
    ledger: Ledger,
    args: tuple[str, str],
    kwargs: dict[str, object],
    error: type[Exception],
    says: str,
) -> None:
    with pytest.raises(error, match=says) as caught:
        delivery.record_inbound(*args, **kwargs)  # type: ignore[arg-type]
    assert "x" * 50 not in str(caught.value)  # a token is never echoed
    with session_scope(ledger.engine) as db:
        assert db.scalars(select(Reader)).all() == []


def test_the_cli_records_an_inbound_message_with_the_token_from_stdin(
    account: str, ledger: Ledger
) -> None:
    result = CliRunner().invoke(
        cli, ["inbound", account, PEER, "--context-token", "-"], input="ctx-from-stdin\n"
    )
    assert result.exit_code == 0, result.output
    assert "ctx-from-stdin" not in result.output
    row = reader_row(ledger)
    assert row is not None and row.context_token == "ctx-from-stdin"
    listing = CliRunner().invoke(cli, ["readers", "--account", account])
    assert listing.exit_code == 0 and PEER in listing.output and "open" in listing.output
    refused = CliRunner().invoke(cli, ["inbound", account, PEER, "--at", "yesterday"])
    assert refused.exit_code == 2 and "not an ISO 8601 time" in refused.output


# -- holding a message for its reader -------------------------------------------------------------


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Each reader may be sent 10 messages an hour."""
    return SimulatorConfig(reader_window_seconds=3600.0, reader_budget=10)


@pytest.fixture
def pipeline(
    ledger: Ledger,
    redis_db: RedisInfo,
    bot_sim: PlatformSimulator,
    configure: Configure,
) -> SendPipeline:
    configure(reader_wait_seconds=1, reader_window_seconds=3600)
    delivery.add_account(ACCOUNT, token=TOKEN, base_url=bot_sim.base_url)
    return in_process_pipeline(redis_db.url, publisher=Published())


def run(pipeline: SendPipeline, message_id: str) -> str:
    with session_scope(pipeline._ctx.engine) as db:
        chunk = db.scalars(
            select(Chunk).where(Chunk.message_id == int(message_id), Chunk.status == "pending")
        ).first()
        assert chunk is not None
    deadline = time.monotonic() + 10
    # A task comes back when its slot comes (the account's rate), as a worker would run it
    while isinstance(result := pipeline.process(chunk.id, chunk.generation), Wait):
        assert time.monotonic() < deadline, result.why
        time.sleep(result.seconds)
    return result.summary


def test_a_message_to_a_closed_reader_waits_without_a_send_then_dies_at_its_hold_limit(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a reader who last wrote two hours ago, outside a one-hour window
    delivery.record_inbound(ACCOUNT, PEER, at=utcnow() - dt.timedelta(hours=2))
    message_id = delivery.enqueue(ACCOUNT, PEER, "today's leaderboard")

    # When its task runs, then it waits for the reader: nothing is sent, nothing spent
    assert "waits for its reader" in run(pipeline, message_id)
    status = delivery.get_status(message_id)
    assert status.status == "awaiting_reader"
    assert [c.waiting_for for c in status.chunks] == ["reader"]
    assert bot_sim.model.snapshot().counters.requests.get("sendmessage", 0) == 0
    listed = delivery.list_messages(status="awaiting_reader")
    assert [m.id for m in listed] == [message_id]
    # ... and `delivery status` and the exporter say so
    shown = CliRunner().invoke(cli, ["status"])
    assert shown.exit_code == 0, shown.output
    assert "readers: window_closed 1; awaiting their reader: 1 message(s)" in shown.output
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        build_collector(runtime.current().settings)
    )  # as `delivery metrics` serves it
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert scraped[("delivery_readers", (("state", "window_closed"),))] == 1
    assert scraped[("delivery_messages_awaiting_reader", ())] == 1
    assert 0 <= scraped[("delivery_oldest_awaiting_reader_seconds", ())] < 60

    # When its hold limit (1 s here) passes, the reconciler wakes it, and it is dead
    start = utcnow()
    wait_until(lambda: (utcnow() - start).total_seconds() > 1.0, timeout=5)
    assert reconcile(ledger.engine, Published(), grace_seconds=120).unparked == 1
    assert "dead" in run(pipeline, message_id)
    dead = delivery.get_status(message_id)
    assert dead.status == "dead"
    assert "reader did not write within 1 s" in (dead.dead_reason or "")
    assert "DELIVERY_READER_WAIT_SECONDS" in (dead.dead_reason or "")

    # And once the reader writes, a replay delivers it
    bot_sim.model.inject_inbound(ACCOUNT, from_user_id=PEER, text="hello?")
    delivery.record_inbound(ACCOUNT, PEER)
    delivery.replay(message_id)
    assert "accepted" in run(pipeline, message_id)
    assert delivery.get_status(message_id).status == "delivered"


def test_parts_keep_room_for_the_notice(account: str, ledger: Ledger) -> None:
    # Given reader limits on (the default) and a text of many parts
    text = "\n\n".join(paragraph(f"p{n}") + " " + "y" * 400 for n in range(5))

    message_id = delivery.enqueue(account, PEER, text)

    # Then every part leaves room for "... N more parts: reply to get them"
    room = (
        runtime.current().settings.chunk_max_chars - runtime.current().settings.reader_notice_chars
    )
    with session_scope(ledger.engine) as db:
        texts = list(db.scalars(select(Chunk.text).where(Chunk.message_id == int(message_id))))
    assert len(texts) > 1 and all(len(t) <= room for t in texts)


def test_without_reader_limits_a_bare_refusal_is_the_accounts_rate_limit(
    pipeline: SendPipeline,
    bot_sim: PlatformSimulator,
    ledger: Ledger,
    configure: Configure,
) -> None:
    # Given a platform without reader limits (DELIVERY_READER_LIMITS=false) whose rate
    # limit answers a bare -2
    configure(reader_limits=False)
    bot_sim.model.configure(reader_window_seconds=None, rate_limit_sends=1, rate_limit_errmsg=None)
    first = delivery.enqueue(ACCOUNT, PEER, "one")
    second = delivery.enqueue(ACCOUNT, "other@im.wechat", "two")
    limited = in_process_pipeline(runtime.current().settings.broker_url, publisher=Published())
    assert "accepted" in run(limited, first)

    # When the next send is refused, then it is a rate limit, as it always was
    assert "rate_limited -> cool_down" in run(limited, second)


# -- collapse keys ---------------------------------------------------------------------------------


def test_only_the_newest_message_with_a_collapse_key_goes(account: str, ledger: Ledger) -> None:
    # Given yesterday's and this morning's leaderboards still queued to one reader
    old = delivery.enqueue(account, PEER, "leaderboard, Monday", collapse_key="leaderboard")
    older_elsewhere = delivery.enqueue(
        account, "other@im.wechat", "leaderboard, Monday", collapse_key="leaderboard"
    )
    other_key = delivery.enqueue(account, PEER, "weather", collapse_key="weather")
    middle = delivery.enqueue(account, PEER, "leaderboard, Tuesday", collapse_key="leaderboard")

    # When today's is enqueued
    new = delivery.enqueue(account, PEER, "leaderboard, Wednesday", collapse_key="leaderboard")

    # Then the older ones to that reader with that key are superseded, the rest untouched
    assert delivery.get_status(old).status == "superseded"
    assert delivery.get_status(middle).status == "superseded"
    assert f"superseded by message {middle}" in (delivery.get_status(old).dead_reason or "")
    assert f"superseded by message {new}" in (delivery.get_status(middle).dead_reason or "")
    assert [c.status for c in delivery.get_status(old).chunks] == ["unsent"]
    for untouched in (older_elsewhere, other_key, new):
        assert delivery.get_status(untouched).status == "queued"
    with session_scope(ledger.engine) as db:
        assert db.scalar(select(Message.collapse_key).where(Message.id == int(new))) == (
            "leaderboard"
        )


def test_a_bad_collapse_key_is_refused(account: str, ledger: Ledger) -> None:
    with pytest.raises(errors.InvalidIdempotencyKey, match="collapse key"):
        delivery.enqueue(account, PEER, "text", collapse_key="has spaces")
    with session_scope(ledger.engine) as db:
        assert db.scalars(select(Message)).all() == []


def test_a_message_waiting_for_its_reader_is_not_dead_at_the_ordinary_deadline(
    pipeline: SendPipeline, ledger: Ledger, configure: Configure
) -> None:
    # Given a closed reader and a message past the ordinary deadline, within the hold
    configure(reader_wait_seconds=3600, reader_window_seconds=3600)
    delivery.record_inbound(ACCOUNT, PEER, at=utcnow() - dt.timedelta(hours=2))
    message_id = delivery.enqueue(ACCOUNT, PEER, "held")
    with session_scope(ledger.engine) as db:
        db.execute(update(Message).values(deadline_at=utcnow() - dt.timedelta(seconds=1)))
    held = in_process_pipeline(runtime.current().settings.broker_url, publisher=Published())

    # When its task runs, then it waits for the reader instead of dying
    result = run(held, message_id)
    assert "waits for its reader" in result
    assert delivery.get_status(message_id).status == "awaiting_reader"

    # And when the reader writes, its deadline runs again from then
    delivery.record_inbound(ACCOUNT, PEER)
    with session_scope(ledger.engine) as db:
        deadline = db.scalar(select(Message.deadline_at).where(Message.id == int(message_id)))
    assert deadline is not None and deadline > utcnow() + dt.timedelta(hours=23)
    assert isinstance(held.process(0), Done)
