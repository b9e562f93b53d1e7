"""Bad input through the public API and the CLI: a clear error naming it, nothing written."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import delivery
from delivery import errors
from delivery.briefings import add_briefing
from delivery.briefings.runner import claim_due_slots, run_slot
from delivery.cli import cli
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Briefing, BriefingRun, Chunk, Message
from delivery.ledger.types import utcnow
from tests.conftest import Ledger
from tests.integration.conftest import ACCOUNT

PEER = "o9cq80peer@im.wechat"

API_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "empty text",
        lambda: delivery.enqueue(ACCOUNT, PEER, ""),
        errors.InvalidText,
        "text is empty",
    ),
    (
        "whitespace text",
        lambda: delivery.enqueue(ACCOUNT, PEER, "\n \t"),
        errors.InvalidText,
        "only whitespace",
    ),
    (
        "oversized text",
        lambda: delivery.enqueue(ACCOUNT, PEER, "y" * 100_001),
        errors.InvalidText,
        "100,001 characters; the maximum is 100,000",
    ),
    (
        "NUL",
        lambda: delivery.enqueue(ACCOUNT, PEER, "x\x00"),
        errors.InvalidText,
        "control character U+0000 at index 1",
    ),
    (
        "escape",
        lambda: delivery.enqueue(ACCOUNT, PEER, "\x1b[31mred"),
        errors.InvalidText,
        "U+001B",
    ),
    (
        "lone surrogate",
        lambda: delivery.enqueue(ACCOUNT, PEER, "ok \ud83d"),
        errors.InvalidText,
        "lone surrogate U+D83D",
    ),
    (
        "unknown account",
        lambda: delivery.enqueue("nobody", PEER, "hi"),
        errors.UnknownAccount,
        "unknown account 'nobody'",
    ),
    (
        "bad recipient",
        lambda: delivery.enqueue(ACCOUNT, "bob smith", "hi"),
        errors.InvalidRecipient,
        "recipient id 'bob smith' is malformed",
    ),
    (
        "empty recipient",
        lambda: delivery.enqueue(ACCOUNT, "", "hi"),
        errors.InvalidRecipient,
        "recipient id is empty",
    ),
    (
        "bad context token",
        lambda: delivery.enqueue(ACCOUNT, PEER, "hi", context_token="\x01"),
        errors.InvalidContextToken,
        "printable",
    ),
    (
        "bad account id",
        lambda: delivery.enqueue("bot/1", PEER, "hi"),
        errors.InvalidAccountId,
        "account id 'bot/1' is malformed",
    ),
    (
        "bad message id",
        lambda: delivery.get_status("12abc"),
        errors.InvalidMessageId,
        "'12abc' is not a message id",
    ),
    (
        "bad idempotency key",
        lambda: delivery.enqueue(ACCOUNT, PEER, "hi", idempotency_key="k\n"),
        errors.InvalidIdempotencyKey,
        "printable ASCII",
    ),
    (
        "bad token",
        lambda: delivery.add_account("bot-2", token="short", base_url="http://h"),
        errors.InvalidToken,
        "minimum is 8",
    ),
    (
        "bad base URL",
        lambda: delivery.add_account("bot-2", token="tok-secret-0002", base_url="ftp://h"),
        errors.InvalidBaseUrl,
        "not an absolute http(s) URL",
    ),
    (
        "bad briefing schedule",
        lambda: add_briefing(
            "b",
            account_id=ACCOUNT,
            recipients=[PEER],
            producer="delivery.briefings.examples:daily_briefing",
            schedule="sometimes",
        ),
        errors.BriefingError,
        "neither 'every <n>",
    ),
]


def rows(ledger: Ledger) -> tuple[int, ...]:
    with session_scope(ledger.engine) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Account, Message, Chunk, Briefing)
        )


@pytest.mark.parametrize(
    ("case", "call", "error", "words"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_the_api_refuses_bad_input_and_writes_nothing(
    account: str,
    ledger: Ledger,
    case: str,
    call: Callable[[], object],
    error: type[Exception],
    words: str,
) -> None:
    before = rows(ledger)
    with pytest.raises(error, match=re.escape(words)):
        call()
    assert rows(ledger) == before


CLI_CASES: list[tuple[str, list[str], str | None, int, str]] = [
    ("empty text", ["enqueue", ACCOUNT, PEER, ""], None, 2, "error: text is empty"),
    ("text from stdin with NUL", ["enqueue", ACCOUNT, PEER], "a\x00b", 2, "U+0000"),
    ("unknown account", ["enqueue", "ghost", PEER, "hi"], None, 2, "unknown account 'ghost'"),
    ("bad recipient", ["enqueue", ACCOUNT, "a b", "hi"], None, 2, "is malformed"),
    ("bad message id", ["show", "x1"], None, 2, "'x1' is not a message id"),
    ("no such message", ["show", "4242"], None, 1, "no message with id 4242"),
    ("short token", ["account", "add", "bot-2", "--token", "abc"], None, 2, "minimum is 8"),
    (
        "unimportable producer",
        [
            "briefing",
            "add",
            "b",
            "--account",
            ACCOUNT,
            "--to",
            PEER,
            "--producer",
            "nowhere:fn",
            "--schedule",
            "every 1h",
        ],
        None,
        1,
        "cannot import nowhere",
    ),
]


@pytest.mark.parametrize(
    ("case", "args", "stdin", "code", "words"), CLI_CASES, ids=[c[0] for c in CLI_CASES]
)
def test_the_cli_refuses_bad_input_and_writes_nothing(
    account: str,
    ledger: Ledger,
    case: str,
    args: list[str],
    stdin: str | None,
    code: int,
    words: str,
) -> None:
    before = rows(ledger)
    result = CliRunner().invoke(cli, args, input=stdin)
    assert result.exit_code == code, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert rows(ledger) == before


def test_a_producer_that_raises_fails_its_run_with_the_error(account: str, ledger: Ledger) -> None:
    add_briefing(
        "broken",
        account_id=ACCOUNT,
        recipients=[PEER],
        producer="tests.support.producers:broken",
        schedule="every 1h",
    )
    later = utcnow() + dt.timedelta(hours=1, minutes=1)
    [run_id] = claim_due_slots(ledger.engine, now=later, misfire_grace_seconds=7200)

    summary = run_slot(ledger.engine, run_id, lease_seconds=60)

    assert "RuntimeError: the leaderboard database is down" in summary
    with session_scope(ledger.engine) as session:
        run = session.get(BriefingRun, run_id)
        assert run is not None and run.status == "failed"
        assert session.scalar(select(func.count()).select_from(Message)) == 0
