"""The webhook's signature: ``verify`` says no to every malformed header (it never raises),
and yes to every header ``sign`` made within the time allowed. Pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from delivery.inbound.signing import TOLERANCE_SECONDS, sign, verify

SECRET = "webhook-secret-0123"
BODY = b'{"idempotency_key":"bot-1:1","text":"hi"}'
NOW = 1_764_489_600
GOOD = sign(secret=SECRET, body=BODY, timestamp=NOW)
DIGEST = GOOD.partition(",v1=")[2]


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1={'é' * 64}",  # not ASCII: compare_digest raised TypeError
        f"t={NOW},v1=\u0661{DIGEST[1:]}",  # an Arabic-Indic digit
        f"t=\u00b2,v1={DIGEST}",  # str.isdigit() says yes to a superscript two
        f"t=\u0661\u0662,v1={DIGEST}",  # int() reads Arabic-Indic digits
        f"t={'9' * 5000},v1={DIGEST}",  # past int()'s digit limit: ValueError
        f"t={'9' * 400},v1={DIGEST}",  # a float overflow against now
        f"t=+{NOW},v1={DIGEST}",
        f"t= {NOW},v1={DIGEST}",
        f"t={NOW}\n,v1={DIGEST}",
        f"t={NOW},v1={DIGEST.upper()}",
        f"t={NOW},v1={DIGEST}0",
        f"t={NOW},v1={DIGEST[:-1]}",
        f"t={NOW}",
        f"v1={DIGEST}",
        "",
        ",,,",
        "=",
        "t=,v1=",
        "\x00",
        "\ud800",  # a lone surrogate: cannot be encoded at all
    ],
)
def test_a_malformed_signature_is_refused_without_an_exception(header: str) -> None:
    # A receiver's clock is a float (time.time()): a huge int against it overflows
    assert verify(secret=SECRET, body=BODY, header=header, now=float(NOW)) is False
    assert verify(secret=SECRET, body=BODY, header=header, now=NOW) is False


@given(header=st.text(), now=st.floats(allow_nan=True, allow_infinity=True))
@example(header=GOOD, now=float("nan"))
@example(header=GOOD, now=float("inf"))
@example(header=f"t=\u00b2,v1={DIGEST}", now=float(NOW))
def test_verify_answers_a_bool_for_any_header_and_any_clock(header: str, now: float) -> None:
    # Given any header a client (or an attacker) could send, and any reading of the clock
    # When a receiver verifies it, then it gets an answer, never an exception; and a yes
    # only for the exact header sign() made for this body
    answer = verify(secret=SECRET, body=BODY, header=header, now=now)
    assert answer is False or (header == GOOD and abs(now - NOW) <= TOLERANCE_SECONDS)


@given(header=st.text(alphabet=st.sampled_from("tv1=,0123456789abcdef\u00b2\u0661é "), max_size=90))
def test_headers_close_to_a_real_one_are_refused(header: str) -> None:
    # Shapes near the real one (the fields, digits, hex) are where a parser slips
    assert verify(secret=SECRET, body=BODY, header=header, now=NOW) is (header == GOOD)


@given(
    secret=st.text(min_size=1),
    body=st.binary(),
    timestamp=st.integers(min_value=0, max_value=10**11),
    skew=st.floats(min_value=-TOLERANCE_SECONDS, max_value=TOLERANCE_SECONDS),
)
def test_what_sign_made_verifies_within_the_time_allowed(
    secret: str, body: bytes, timestamp: int, skew: float
) -> None:
    header = sign(secret=secret, body=body, timestamp=timestamp)
    assert verify(secret=secret, body=body, header=header, now=timestamp + skew)
    assert not verify(secret=secret, body=body + b" ", header=header, now=timestamp + skew)
    late = timestamp + TOLERANCE_SECONDS + 1
    assert not verify(secret=secret, body=body, header=header, now=late)
