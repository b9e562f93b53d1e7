"""The simulator's refusals as users of the real platform report them: rate limits that
are sometimes a bare ``-2``, lockouts every attempt extends, readers whose sends are
accepted and silently dropped, and ``message_id`` on accepted answers (switchable)."""

from __future__ import annotations

from typing import Any

import pytest

from delivery.simulator import PlatformModel, SimulatorConfig
from delivery.simulator.config import apply_changes
from delivery.simulator.envelope import SendMessage
from tests.integration.test_simulator import ACCOUNT, TOKEN, FakeClock, answer

BARE = {"ret": -2}


def model(clock: FakeClock, **config: Any) -> PlatformModel:
    made = PlatformModel(config=SimulatorConfig(**config), clock=clock)
    made.register_account(ACCOUNT, token=TOKEN)
    return made


def send(made: PlatformModel, client_id: str, *, to: str = "u@im.wechat") -> dict[str, Any]:
    message = SendMessage(to_user_id=to, client_id=client_id, text="hi", context_token=None)
    return answer(made.sendmessage(token=TOKEN, send=message))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_the_first_refusals_of_a_lockout_can_be_bare(clock: FakeClock) -> None:
    # Given 1 send per 10 s, a 60 s lockout, its first two refusals a bare -2
    made = model(clock, rate_limit_sends=1, rate_limit_bare_refusals=2)
    send(made, "a")

    refusals = [send(made, f"r{n}") for n in range(3)]

    assert refusals[:2] == [BARE, BARE]
    assert refusals[2] == {"ret": -2, "errcode": -2, "errmsg": "rate limited"}
    # a new lockout starts bare again
    clock.advance(200)
    send(made, "b")
    assert send(made, "c") == BARE


def test_every_attempt_during_a_lockout_extends_it(clock: FakeClock) -> None:
    made = model(clock, rate_limit_sends=1, lockout_seconds=30, lockout_extend_seconds=10)
    send(made, "a")
    send(made, "trips")  # the lockout: 30 s
    clock.advance(29)
    send(made, "during")  # +10 s
    clock.advance(9)  # 38 s: still locked out
    assert send(made, "still") != {"ret": 0} and "message_id" not in send(made, "x")
    assert made.snapshot().accounts[ACCOUNT].lockouts == 1


def test_a_silently_dropping_reader_is_answered_ret_0_without_an_id(clock: FakeClock) -> None:
    made = model(clock, silent_drop_readers=("dropped@im.wechat",))

    dropped = send(made, "a", to="dropped@im.wechat")
    delivered = send(made, "b", to="fine@im.wechat")

    assert dropped == {"ret": 0}
    assert delivered["ret"] == 0 and "message_id" in delivered
    snapshot = made.snapshot()
    assert snapshot.texts("dropped@im.wechat") == [] and len(snapshot.texts("fine@im.wechat")) == 1
    assert snapshot.counters.silently_dropped == {"dropped@im.wechat": 1}


def test_silent_drops_count_against_the_window(clock: FakeClock) -> None:
    made = model(clock, rate_limit_sends=1, silent_drop_readers=("dropped@im.wechat",))
    send(made, "a", to="dropped@im.wechat")
    assert send(made, "b")["ret"] == -2


def test_message_ids_can_be_switched_off(clock: FakeClock) -> None:
    made = model(clock, message_ids=False)
    assert send(made, "a") == {"ret": 0}
    assert made.snapshot().counters.accepted == 1


def test_the_new_knobs_are_checked_and_survive_json() -> None:
    config = apply_changes(
        SimulatorConfig(), {"silent_drop_readers": ["a@im.wechat"], "rate_limit_bare_refusals": 2}
    )
    assert config.silent_drop_readers == ("a@im.wechat",)
    for bad in ({"rate_limit_bare_refusals": -1}, {"silent_drop_readers": "a"}, {"message_ids": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            apply_changes(SimulatorConfig(), bad)
