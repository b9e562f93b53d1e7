"""Replay: a dead message is re-delivered once its cause is cured, from its first unsent chunk."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import delivery
from delivery.cli import cli
from delivery.simulator import Fault
from tests.support.stack import Stack
from tests.support.waiting import wait_until

PEER = "o9cq80peer@im.wechat"


def three_chunks(tag: str) -> str:
    return "\n\n".join(f"{tag} part {i} " + "x" * 1500 for i in range(3))


def test_replay_resends_only_what_the_platform_did_not_accept(stack: Stack) -> None:
    # Given a message whose second chunk the platform refused for good
    account = stack.add_account()
    stack.start_worker()
    message_id = delivery.enqueue(account, PEER, three_chunks("report"))
    wait_until(lambda: stack.snapshot().counters.accepted >= 1, timeout=30, message="chunk 1")
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-1, errcode=-1, errmsg="invalid param"), account_id=account
    )
    assert stack.wait_final([message_id], timeout=30) == {message_id: "dead"}
    dead = delivery.get_status(message_id)
    assert [c.status for c in dead.chunks] == ["sent", "failed", "unsent"]

    # When the cause is cured (the fault is gone) and an operator replays it
    result = CliRunner().invoke(cli, ["replay", message_id])

    # Then it is delivered, and the accepted chunk was not sent again
    assert result.exit_code == 0, result.output
    assert f"message {message_id} re-queued from chunk 2/3" in result.output
    assert stack.wait_final([message_id], timeout=30) == {message_id: "delivered"}
    texts = stack.snapshot().texts(PEER)
    assert [t.split(" ")[2] for t in texts] == ["0", "1", "2"]
    status = delivery.get_status(message_id)
    assert [c.attempts for c in status.chunks] == [1, 2, 1]
    assert status.replay_count == 1
    assert [c.client_id for c in status.chunks] == [c.client_id for c in dead.chunks]


def test_replay_of_everything_dead_since(stack: Stack) -> None:
    # Given three messages killed by a refusal of their first chunks
    account = stack.add_account()
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-1, errcode=-1, errmsg="invalid param"), count=3, account_id=account
    )
    stack.start_worker()
    ids = [delivery.enqueue(account, f"u{n}@im.wechat", f"hello {n}") for n in range(3)]
    assert set(stack.wait_final(ids, timeout=30).values()) == {"dead"}

    # When they are replayed together, with a progress bar
    result = CliRunner().invoke(cli, ["replay", "--dead-since", "1h"])

    # Then all are delivered
    assert result.exit_code == 0, result.output
    assert "3 dead message(s) re-queued" in result.output
    assert set(stack.wait_final(ids, timeout=30).values()) == {"delivered"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["replay"], "give a MESSAGE_ID or --dead-since"),
        (["replay", "999"], "no message with id 999"),
        (["replay", "abc"], "is not a message id"),
        (["replay", "--dead-since", "yesterday-ish"], "neither a duration"),
    ],
)
def test_replay_refuses_clearly(sqlite_ledger: object, args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert words in result.output


def test_only_a_dead_message_is_replayed(stack: Stack) -> None:
    account = stack.add_account()
    message_id = delivery.enqueue(account, PEER, "queued, not dead")
    with pytest.raises(delivery.NotReplayable, match="is queued; only a dead message"):
        delivery.replay(message_id)


def test_a_replayed_message_waits_for_the_one_in_progress(stack: Stack) -> None:
    # Given a chat with message A (dead at its second chunk) and message B sending,
    # its chunks a second apart
    stack.overrides.update(DELIVERY_CHUNK_GAP_SECONDS="1.0", DELIVERY_CHUNK_GAP_BASE_SECONDS="1.0")
    account = stack.add_account()
    stack.start_worker()
    a = delivery.enqueue(account, PEER, three_chunks("A"))
    wait_until(lambda: stack.snapshot().counters.accepted >= 1, timeout=30, message="A1")
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-1, errcode=-1, errmsg="invalid param"), account_id=account
    )
    b = delivery.enqueue(account, PEER, three_chunks("B"))
    wait_until(lambda: len(stack.snapshot().texts(PEER)) >= 2, timeout=30, message="B1")

    # When A is replayed while B is under way
    delivery.replay(a)

    # Then B finishes before A goes on: the chat never gets them interleaved
    assert stack.wait_final([a, b], timeout=60) == {a: "delivered", b: "delivered"}
    order = [f"{t.split(' ')[0]}{t.split(' ')[2]}" for t in stack.snapshot().texts(PEER)]
    assert order == ["A0", "B0", "B1", "B2", "A1", "A2"]
