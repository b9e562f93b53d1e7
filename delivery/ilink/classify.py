"""What a platform answer means: one pure function, the only place that decides.

The iLink API has no published error catalogue; this module encodes what has been
observed (``ilink-protocol.md``). The raw ``http_status``, ``ret``, ``errcode`` and
``errmsg`` of every attempt are kept in the ledger, so when more is learned the
rules change here and old attempts can be re-read.

======================================  =====================
answer                                  class
======================================  =====================
no answer (timeout, reset, refused)     transient
HTTP 429                                rate_limited
other non-2xx, or a body that is not    transient (unless the JSON says -14)
JSON
``ret``/``errcode`` -14                 session_expired
-2, errmsg "" or absent (a bare -2)     refused: the account's limit *or* this
                                        reader's closed window or spent budget;
                                        the pipeline decides which (see
                                        ``delivery.policy.reader_rules``)
-2, errmsg "rate limited"               rate_limited
-2 "unknown error"                      stale_context
-2 "prepare failed"                     stale_context when a context token was
                                        sent, else rate_limited (the two readings
                                        reported; see the protocol notes)
-2 with any other errmsg                rate_limited (the frequency-limit family)
other non-zero ``ret`` or ``errcode``   permanent
``ret`` 0 (or absent) and no errcode    accepted; *unconfirmed* when it carries no
                                        ``message_id`` although this account's
                                        accepted answers do (a silent drop: the
                                        platform took it and may never deliver it)
======================================  =====================

Known clients treat a JSON answer without ``ret`` as success, and so does this.

Example::

    classify(Answer(http_status=200, ret=-2, errcode=None, errmsg=None), used_context_token=False)
    # Verdict(outcome=AttemptOutcome.REFUSED, reason='refused, reader or rate limit? (ret -2)')
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.ilink.protocol import ERRCODE_SESSION_EXPIRED, RET_FREQUENCY_LIMIT
from delivery.ledger.states import AttemptOutcome

__all__ = ["Answer", "Verdict", "classify"]

_STALE_MESSAGES = frozenset({"unknown error"})
_DISPUTED_MESSAGES = frozenset({"prepare failed"})


@dataclass(frozen=True)
class Answer:
    """The raw facts of one HTTP answer, as the ledger keeps them.

    ``json_ok`` is False when the body was not a JSON object (HTML error page,
    garbage); ``excerpt`` then holds its first characters for the operator.
    ``message_id`` is the platform's id of an accepted message when the answer
    carries one: a uint64 in decimal, every digit kept (it can exceed 2**53).
    """

    http_status: int
    ret: int | None
    errcode: int | None
    errmsg: str | None
    json_ok: bool = True
    excerpt: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The class of an answer and a short phrase an operator can read."""

    outcome: AttemptOutcome
    reason: str


def _codes(answer: Answer) -> str:
    parts = []
    if answer.ret is not None:
        parts.append(f"ret {answer.ret}")
    if answer.errcode is not None and answer.errcode != answer.ret:
        parts.append(f"errcode {answer.errcode}")
    if answer.errmsg:
        parts.append(repr(answer.errmsg[:120]))
    return " ".join(parts) or "no ret"


def classify(
    answer: Answer, *, used_context_token: bool, expects_message_id: bool = False
) -> Verdict:
    """The class of one answer to ``sendmessage`` (or another call).

    ``used_context_token`` says whether the request carried a context token; it
    decides the disputed ``-2 "prepare failed"``. ``expects_message_id``: this
    account's accepted answers carry a ``message_id``, so one without is unconfirmed.
    """
    status = answer.http_status
    codes = {answer.ret, answer.errcode} - {None, 0}
    if ERRCODE_SESSION_EXPIRED in codes:
        return Verdict(AttemptOutcome.SESSION_EXPIRED, f"session expired ({_codes(answer)})")
    if status == 429:
        return Verdict(AttemptOutcome.RATE_LIMITED, "rate limited (HTTP 429)")
    if not 200 <= status < 300:
        return Verdict(AttemptOutcome.TRANSIENT, f"HTTP {status} from the platform")
    if not answer.json_ok:
        return Verdict(AttemptOutcome.TRANSIENT, f"HTTP {status} with a body that is not JSON")
    if RET_FREQUENCY_LIMIT in codes:
        message = (answer.errmsg or "").strip().lower()
        if message in _STALE_MESSAGES:
            return Verdict(AttemptOutcome.STALE_CONTEXT, f"stale context ({_codes(answer)})")
        if message in _DISPUTED_MESSAGES and used_context_token:
            return Verdict(AttemptOutcome.STALE_CONTEXT, f"stale context? ({_codes(answer)})")
        if not message:
            return Verdict(
                AttemptOutcome.REFUSED, f"refused, reader or rate limit? ({_codes(answer)})"
            )
        return Verdict(AttemptOutcome.RATE_LIMITED, f"rate limited ({_codes(answer)})")
    if codes:
        return Verdict(AttemptOutcome.PERMANENT, f"refused ({_codes(answer)})")
    if expects_message_id and answer.message_id is None:
        return Verdict(
            AttemptOutcome.UNCONFIRMED,
            "accepted without a message_id: unconfirmed (the platform may drop it silently)",
        )
    return Verdict(AttemptOutcome.ACCEPTED, "accepted")
