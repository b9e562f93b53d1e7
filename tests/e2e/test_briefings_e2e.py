"""Briefings through real beat processes: one message per slot per reader, delivered."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from delivery.briefings import add_briefing
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import BriefingRun, Message
from tests.support.stack import Stack
from tests.support.waiting import wait_until

READERS = ("alice@im.wechat", "bob@im.wechat")


def runs(stack: Stack) -> list[BriefingRun]:
    with session_scope(engine_for(stack.database_url)) as session:
        return list(session.scalars(select(BriefingRun).order_by(BriefingRun.slot_at)))


def test_two_beats_make_one_message_per_slot_per_reader(stack: Stack) -> None:
    # Given a briefing every second, a worker and two beat processes
    account = stack.add_account()
    stack.start_worker()
    add_briefing(
        "pulse",
        account_id=account,
        recipients=READERS,
        producer="tests.support.producers:hello",
        schedule="every 1s",
    )
    first = stack.start_beat("beat-1")
    second = stack.start_beat("beat-2")

    # When slots pass, and the leading beat stops part-way
    wait_until(lambda: len(runs(stack)) >= 3, timeout=60, message="three slots")
    leader, standby = (first, second) if "beat: leading" in first.log_text() else (second, first)
    # (the second beat may still be starting on a loaded machine: its first tick says it)
    wait_until(lambda: "stands by" in standby.log_text(), timeout=30, message="a standby beat")
    leader.stop()
    done_before = len(runs(stack))
    wait_until(lambda: len(runs(stack)) >= done_before + 2, timeout=60, message="takeover")
    standby.stop()

    # Then every slot ran once, made one message per reader, and all were delivered
    all_runs = runs(stack)
    assert len({r.slot_at for r in all_runs}) == len(all_runs)
    wait_until(
        lambda: all(r.status == "enqueued" for r in runs(stack)), timeout=30, message="runs done"
    )
    with session_scope(engine_for(stack.database_url)) as session:
        rows = session.execute(select(Message.id, Message.to_user_id, Message.idempotency_key))
        messages = list(rows)
    per_slot_reader = Counter((key.rsplit(":", 1)[0], to) for _, to, key in messages)
    assert set(per_slot_reader.values()) == {1}
    assert len(messages) == 2 * len(all_runs)
    ids = [str(i) for i, _, _ in messages]
    assert set(stack.wait_final(ids, timeout=60).values()) == {"delivered"}
    snapshot = stack.snapshot()
    for reader in READERS:
        texts = snapshot.texts(reader)
        assert len(texts) == len(all_runs) == len(set(texts))
    assert "beat: leading" in standby.log_text()
