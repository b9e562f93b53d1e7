"""Every observed platform answer gets one class, decided in one place."""

from __future__ import annotations

import pytest

from delivery.ilink.classify import Answer, classify
from delivery.ledger.states import AttemptOutcome as O


@pytest.mark.parametrize(
    ("answer", "with_context", "outcome"),
    [
        (Answer(200, 0, None, None), False, O.ACCEPTED),
        (Answer(200, None, None, None), False, O.ACCEPTED),
        (Answer(200, 0, 0, "ok"), False, O.ACCEPTED),
        (Answer(200, -14, -14, "session timeout"), False, O.SESSION_EXPIRED),
        (Answer(200, None, -14, None), False, O.SESSION_EXPIRED),
        (Answer(200, -2, -2, "rate limited"), False, O.RATE_LIMITED),
        # a bare -2: the account's limit or this reader's window; the pipeline decides
        (Answer(200, -2, None, ""), False, O.REFUSED),
        (Answer(200, -2, None, None), False, O.REFUSED),
        (Answer(200, None, -2, None), False, O.REFUSED),
        (Answer(200, -2, -2, "unknown error"), True, O.STALE_CONTEXT),
        (Answer(200, -2, -2, "unknown error"), False, O.STALE_CONTEXT),
        (Answer(200, -2, -2, "prepare failed"), True, O.STALE_CONTEXT),
        (Answer(200, -2, -2, "prepare failed"), False, O.RATE_LIMITED),
        (Answer(200, -1, -1, "invalid param"), False, O.PERMANENT),
        (Answer(200, 0, 40001, "bad"), False, O.PERMANENT),
        (Answer(429, None, None, None, json_ok=False), False, O.RATE_LIMITED),
        (Answer(502, None, None, None, json_ok=False, excerpt="<html>"), False, O.TRANSIENT),
        (Answer(500, -1, -1, "oops"), False, O.TRANSIENT),
        (Answer(404, None, None, None, json_ok=False), False, O.TRANSIENT),
        (Answer(200, None, None, None, json_ok=False, excerpt="<html>"), False, O.TRANSIENT),
        (Answer(401, -14, -14, "session timeout"), False, O.SESSION_EXPIRED),
    ],
)
def test_classification(answer: Answer, with_context: bool, outcome: O) -> None:
    assert classify(answer, used_context_token=with_context).outcome == outcome


def test_reasons_carry_the_raw_codes() -> None:
    verdict = classify(Answer(200, -2, -2, "rate limited"), used_context_token=False)
    assert verdict.reason == "rate limited (ret -2 'rate limited')"
    assert classify(
        Answer(503, None, None, None, json_ok=False), used_context_token=False
    ).reason == ("HTTP 503 from the platform")
