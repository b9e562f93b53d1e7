"""Pure policy: backoff, cooldown, spacing and what each outcome does next."""

from __future__ import annotations

import itertools
import random

import pytest

from delivery.ledger.states import AttemptOutcome
from delivery.policy.outcomes import Step, decide
from delivery.policy.timing import (
    chunk_gap_seconds,
    cooldown_seconds,
    spread_seconds,
    transient_backoff_seconds,
)


def test_transient_backoff_doubles_to_its_cap_without_jitter() -> None:
    waits = [
        transient_backoff_seconds(
            failures=n, base_seconds=2, max_seconds=60, jitter=False, floor_seconds=0.5
        )
        for n in range(1, 8)
    ]
    assert waits == [2, 4, 8, 16, 32, 60, 60]


def test_jittered_backoff_is_never_below_the_floor() -> None:
    rng = random.Random(7)
    waits = [
        transient_backoff_seconds(
            failures=1, base_seconds=2, max_seconds=60, jitter=True, floor_seconds=0.5, rng=rng
        )
        for _ in range(2000)
    ]
    assert min(waits) >= 0.5
    assert max(waits) <= 2
    assert len({round(w, 3) for w in waits}) > 100  # really jittered


def test_backoff_survives_absurd_failure_counts() -> None:
    wait = transient_backoff_seconds(
        failures=10_000, base_seconds=2, max_seconds=600, jitter=False, floor_seconds=0.5
    )
    assert wait == 600


def test_cooldown_grows_per_strike_is_capped_and_never_zero() -> None:
    rng = random.Random(1)
    by_strike = [
        cooldown_seconds(strikes=s, base_seconds=30, max_seconds=900, rng=rng) for s in range(1, 10)
    ]
    assert 30 <= by_strike[0] <= 37.5
    assert 60 <= by_strike[1] <= 75
    assert all(later >= earlier for earlier, later in itertools.pairwise(by_strike))
    assert by_strike[-1] == 900


def test_cooldown_of_the_seed_is_far_longer_than_its_12_second_window() -> None:
    # The seed retried 5 times 3 s apart and gave up: about 12 s in all.
    total = sum(
        cooldown_seconds(strikes=s, base_seconds=30, max_seconds=900, rng=random.Random(0))
        for s in range(1, 4)
    )
    assert total > 12 * 10


def test_spread_is_positive_and_not_shorter_than_the_wait() -> None:
    rng = random.Random(3)
    assert all(spread_seconds(0, rng=rng) > 0 for _ in range(1000))
    assert all(10 <= spread_seconds(10, rng=rng) <= 11 for _ in range(1000))


@pytest.mark.parametrize(("n_chunks", "expected"), [(1, 0.0), (2, 2.6), (6, 3.8), (10, 5.0)])
def test_chunk_gap_is_the_seeds_dynamic_delay(n_chunks: int, expected: float) -> None:
    gap = chunk_gap_seconds(
        n_chunks=n_chunks, gap_seconds=1.5, base_seconds=2.0, per_chunk_seconds=0.3
    )
    assert gap == pytest.approx(expected)


def _decide(outcome: AttemptOutcome, **overrides: object) -> object:
    options: dict[str, object] = {
        "reason": "why",
        "failures": 0,
        "max_failures": 5,
        "used_context_token": False,
        "last_chunk": False,
    }
    options.update(overrides)
    return decide(outcome, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "overrides", "step", "spend"),
    [
        (AttemptOutcome.ACCEPTED, {}, Step.SENT, False),
        (AttemptOutcome.ACCEPTED, {"last_chunk": True}, Step.DELIVERED, False),
        (AttemptOutcome.RATE_LIMITED, {}, Step.COOL_DOWN, False),
        (AttemptOutcome.SESSION_EXPIRED, {}, Step.AWAIT_SESSION, False),
        (AttemptOutcome.STALE_CONTEXT, {"used_context_token": True}, Step.RETRY_SOON, False),
        (AttemptOutcome.STALE_CONTEXT, {}, Step.BACK_OFF, True),
        (AttemptOutcome.TRANSIENT, {"failures": 3}, Step.BACK_OFF, True),
        (AttemptOutcome.TRANSIENT, {"failures": 4}, Step.DEAD, True),
        (AttemptOutcome.PERMANENT, {}, Step.DEAD, False),
    ],
)
def test_each_outcome_has_one_next_step(
    outcome: AttemptOutcome, overrides: dict[str, object], step: Step, spend: bool
) -> None:
    decision = _decide(outcome, **overrides)
    assert decision.step == step  # type: ignore[attr-defined]
    assert decision.spend_failure == spend  # type: ignore[attr-defined]


def test_waits_never_spend_the_failure_budget() -> None:
    for outcome, options in (
        (AttemptOutcome.RATE_LIMITED, {}),
        (AttemptOutcome.SESSION_EXPIRED, {}),
        (AttemptOutcome.STALE_CONTEXT, {"used_context_token": True}),
    ):
        assert not _decide(outcome, failures=4, **options).spend_failure  # type: ignore[attr-defined]


def test_dead_reasons_name_the_cause() -> None:
    transient = _decide(AttemptOutcome.TRANSIENT, failures=4, reason="HTTP 502 from the platform")
    assert transient.dead_reason == (  # type: ignore[attr-defined]
        "gave up after 5 failed attempts; last: HTTP 502 from the platform"
    )
    permanent = _decide(AttemptOutcome.PERMANENT, reason="refused (ret -1 'bad')")
    assert permanent.dead_reason == "refused by the platform: refused (ret -1 'bad')"  # type: ignore[attr-defined]


def test_an_unfinished_outcome_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not the outcome of a finished attempt"):
        _decide(AttemptOutcome.IN_FLIGHT)
