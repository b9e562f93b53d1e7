"""An account learns its rate limit from a refusal: the estimate, the ledger row, the
operator's view and reset (the pipeline end to end is in ``test_pace_e2e``)."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

import delivery
from delivery.api.account_admin import reset_pace
from delivery.cli import cli
from delivery.errors import InvalidInput
from delivery.ledger import accounts
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account
from delivery.ledger.types import utcnow
from delivery.ratelimit.learning import LEARN_FACTOR, learned_rate, lesson, raised
from tests.conftest import Ledger, RedisInfo

DAY = 86_400.0


def test_the_ceiling_is_half_the_rate_that_tripped_less_a_margin() -> None:
    # 5 sends 0.3 s apart (200/min), refused 0.3 s after the last: 3 of them in its last
    # second (180/min), 5 in its last two (150/min)
    found = lesson(
        sends=[0.0, 0.3, 0.6, 0.9, 1.2],
        refused_at=1.5,
        pace_per_minute=200.0,
        configured_per_minute=200.0,
    )

    assert found.tripped_per_minute == pytest.approx(180.0)
    assert found.per_minute == pytest.approx(180.0 * LEARN_FACTOR)
    assert found.counts[1] == 3 and found.counts[2] == 5 and found.counts[600] == 5
    assert "refused at 180.0/min" in found.note and "5 in 2s" in found.note


def test_a_few_sends_bunched_up_by_the_network_do_not_read_as_a_faster_rate() -> None:
    # A platform of 5 sends in any 1 s; the account sent at 25/s, spaced from answers:
    # 5 accepted within 0.4 s, the 6th refused. Their instantaneous rate was 750/min; the
    # platform's second held 5 (300/min), the rate the ceiling is learned from.
    sends = [10.0 + 0.08 * i for i in range(5)]
    found = lesson(
        sends=sends, refused_at=10.4, pace_per_minute=1500.0, configured_per_minute=1500.0
    )

    assert found.tripped_per_minute == pytest.approx(300.0)
    assert found.per_minute is not None and found.per_minute < 300.0


def test_the_rate_that_tripped_is_read_from_the_last_sends_only() -> None:
    # A slow morning, then a burst at 120/min that trips
    slow = [float(t) for t in range(0, 300, 30)]
    burst = [400.0 + 0.5 * i for i in range(12)]

    found = lesson(
        sends=slow + burst, refused_at=406.0, pace_per_minute=120.0, configured_per_minute=120.0
    )

    # its last 5 s held 9 sends (108/min); the slow morning is no part of it
    assert found.tripped_per_minute == pytest.approx(108.0)
    assert found.per_minute == pytest.approx(108.0 * LEARN_FACTOR)


def test_a_refusal_with_no_accepted_send_before_it_teaches_nothing() -> None:
    # The demo's finding: a burst that starts inside a lockout an earlier burst caused
    found = lesson(sends=[], refused_at=10.0, pace_per_minute=285.0, configured_per_minute=285.0)

    assert found.per_minute is None
    assert "no accepted send in the 10 minutes before it" in found.note
    assert "nothing learned" in found.note


def test_sends_long_before_the_refusal_are_no_evidence() -> None:
    found = lesson(
        sends=[0.0, 1.0, 2.0], refused_at=3600.0, pace_per_minute=60.0, configured_per_minute=60.0
    )
    assert found.per_minute is None and "no accepted send" in found.note


def test_too_few_sends_teach_nothing() -> None:
    found = lesson(
        sends=[9.0, 9.5], refused_at=10.0, pace_per_minute=600.0, configured_per_minute=600.0
    )
    assert found.per_minute is None and "only 2 accepted send(s)" in found.note


def test_sending_slowly_proves_nothing_about_the_limit() -> None:
    # The review's finding: 3 sends 3 minutes apart, then a refusal, taught 0.75/min
    found = lesson(
        sends=[0.0, 180.0, 360.0],
        refused_at=540.0,
        pace_per_minute=15.0,
        configured_per_minute=15.0,
    )

    assert found.per_minute is None
    assert "sending slowly proves nothing" in found.note and "nothing learned" in found.note


def test_a_refused_probe_teaches_nothing_new() -> None:
    found = lesson(
        sends=[0.0, 0.3, 0.6, 0.9],
        refused_at=1.2,
        pace_per_minute=200.0,
        configured_per_minute=200.0,
        probe=True,
    )
    assert found.per_minute is None and "probe" in found.note


def test_a_later_refusal_only_lowers_the_ceiling_and_never_below_the_floor() -> None:
    higher = lesson(
        sends=[0.0, 1.0, 2.0],
        refused_at=3.0,
        pace_per_minute=60.0,
        configured_per_minute=60.0,
        previous_per_minute=10.0,
    )
    floor = lesson(
        sends=[0.0, 1.0, 2.0],
        refused_at=3.0,
        pace_per_minute=60.0,
        configured_per_minute=6000.0,
    )

    assert higher.per_minute is None and "is lower already" in higher.note
    assert floor.per_minute == pytest.approx(300.0)  # 5% of the configured 6000/min


def test_a_refusal_above_a_proven_rate_falls_back_to_it_not_below() -> None:
    # 40/min held for a long run; the ceiling rose to 50/min, which trips
    sends = [0.0 + 1.2 * i for i in range(10)]  # 3 in its last 2 s: 90/min
    found = lesson(
        sends=sends,
        refused_at=12.0,
        pace_per_minute=50.0,
        configured_per_minute=100.0,
        proven_per_minute=40.0,
    )

    assert found.per_minute == pytest.approx(40.0)


def test_a_ceiling_rises_by_a_quarter_until_the_configured_rate() -> None:
    assert raised(per_minute=40.0, configured_per_minute=100.0, factor=1.25) == 50.0
    assert raised(per_minute=90.0, configured_per_minute=100.0, factor=1.25) is None


def test_a_learned_rate_is_in_force_until_forgotten() -> None:
    now = utcnow()
    at = now - dt.timedelta(hours=1)

    assert learned_rate(90.0, at, now=now, memory_seconds=DAY) == 90.0
    assert learned_rate(90.0, at, now=now, memory_seconds=60) is None
    assert learned_rate(None, None, now=now, memory_seconds=DAY) is None


def _learn(ledger: Ledger, per_minute: float, *, at: dt.datetime) -> float | None:
    with session_scope(ledger.engine) as db:
        return accounts.learn_rate(
            db,
            "bot-1",
            per_minute=per_minute,
            evidence=f"e{per_minute}",
            now=at,
            memory_seconds=DAY,
        )


def test_the_ledger_keeps_the_lowest_ceiling_in_force(ledger: Ledger, redis_db: RedisInfo) -> None:
    delivery.add_account("bot-1", token="tok-secret-0001", base_url="http://127.0.0.1:9")
    now = utcnow()

    assert _learn(ledger, 90.0, at=now) == 90.0
    assert _learn(ledger, 120.0, at=now + dt.timedelta(hours=1)) == 90.0  # a higher one never
    with session_scope(ledger.engine, readonly=True) as db:  # ... nor renews its memory
        row = db.get(Account, "bot-1")
        assert row is not None and row.learned_at == now and row.pace_note == "e120.0"
    assert _learn(ledger, 40.0, at=now) == 40.0
    assert _learn(ledger, 120.0, at=now + dt.timedelta(days=2)) == 120.0  # the old one expired
    with session_scope(ledger.engine, readonly=True) as db:
        row = db.get(Account, "bot-1")
        assert row is not None and row.learned_from == "e120.0"
    assert _learn(ledger, 1.0, at=now) is not None
    with session_scope(ledger.engine) as db:
        assert (
            accounts.learn_rate(
                db, "nobody", per_minute=1.0, evidence="", now=now, memory_seconds=DAY
            )
            is None
        )


def test_status_shows_configured_and_learned_and_reset_pace_forgets(
    ledger: Ledger, redis_db: RedisInfo
) -> None:
    delivery.add_account("bot-1", token="tok-secret-0001", base_url="http://127.0.0.1:9")
    _learn(ledger, 6.75, at=utcnow())
    runner = CliRunner()

    status = runner.invoke(cli, ["status"])
    reset = runner.invoke(cli, ["account", "reset-pace", "bot-1"])
    again = runner.invoke(cli, ["account", "reset-pace", "bot-1"])
    after = runner.invoke(cli, ["status"])

    assert status.exit_code == 0, status.output
    assert "6.75 learned" in status.output and "learned limit of bot-1: e6.75" in status.output
    assert reset.exit_code == 0 and "forgotten" in reset.output
    assert again.exit_code == 0 and "no learned rate limit" in again.output
    assert "learned" not in after.output and "15 configured" in after.output


def test_reset_pace_of_an_unknown_account_says_so(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="no account 'ghost'"):
        reset_pace("ghost")
    result = CliRunner().invoke(cli, ["account", "reset-pace", "ghost"])
    assert result.exit_code == 2 and "no account 'ghost'" in result.output
