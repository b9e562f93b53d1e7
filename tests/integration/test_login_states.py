"""The QR login's newer states and code request, against a real simulated platform.

The number the phone shows (``need_verifycode``), a wrong one, a blocked login,
a bot that is already bound (``binded_redirect``), and the code request by POST
naming the tokens held, with GET as the fallback: through ``qr_login`` and
through ``delivery login``.
"""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery import add_account, list_accounts
from delivery.cli import cli
from delivery.errors import LoginError
from delivery.ilink.classify import Answer
from delivery.ilink.protocol import ClientVersion
from delivery.ledger.models import Account
from delivery.sessions.login import ASK_CODE_PROMPT, WRONG_CODE_MESSAGE, AlreadyBound
from delivery.sessions.qr_answers import (
    BLOCKED_MESSAGE,
    NeedsCode,
    qrcode_post_refused,
    read_status,
)
from delivery.sessions.qr_answers import (
    AlreadyBound as Bound,
)
from delivery.simulator import Fault, PlatformSimulator
from tests.conftest import Ledger
from tests.support.configure import Configure
from tests.support.qr_login import Terminal, confirmed_login, run_login

OK = Answer(http_status=200, ret=0, errcode=None, errmsg=None)
NUMBER = "42"  # the number the simulated phone shows
VERIFY_STEPS = ["wait", "need_verifycode", "scaned", "confirmed"]
HELD_TOKEN = "held-token-0123456789"


# -- the flow --------------------------------------------------------------------------


def test_the_number_on_the_phone_completes_the_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a code that, once scanned, asks for the number the phone shows
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER)
    terminal.typed = [NUMBER]

    # When the login runs and the person types that number
    result = confirmed_login(sim, http, terminal)

    # Then they were asked once, and the code went on to confirm the login
    assert terminal.asked == [ASK_CODE_PROMPT]
    [report] = sim.model.snapshot().qr_codes.values()
    assert (report.status, report.wrong_codes) == ("confirmed", 0)
    assert report.account_id == result.ilink_bot_id
    # And the number went to the platform at once: four polls, no fifth wait
    assert len(report.hosts) == 4


def test_a_wrong_number_is_asked_for_again(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a code that asks for the number, and a person who first mistypes it
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER)
    terminal.typed = ["17", NUMBER]

    # When the login runs
    result = confirmed_login(sim, http, terminal)

    # Then the person was told the first number was wrong and asked again
    assert terminal.asked == [ASK_CODE_PROMPT, ASK_CODE_PROMPT]
    assert terminal.said.count(WRONG_CODE_MESSAGE) == 1
    report = sim.model.snapshot().qr_codes[terminal.shown[0].qrcode]
    assert (report.status, report.wrong_codes, report.account_id) == (
        "confirmed",
        1,
        result.ilink_bot_id,
    )


def test_too_many_wrong_numbers_block_the_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a platform that blocks a code after two wrong numbers
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER, verify_attempts=2)
    terminal.typed = ["17", "18"]

    # When the person mistypes twice, then the login ends saying it was blocked
    with pytest.raises(LoginError, match="blocked this login after too many wrong numbers"):
        run_login(sim, http, terminal)
    [report] = sim.model.snapshot().qr_codes.values()
    assert (report.status, report.wrong_codes, report.account_id) == (
        "verify_code_blocked",
        2,
        None,
    )


def test_a_number_with_nobody_to_ask_ends_the_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER)
    with pytest.raises(LoginError, match=r"need_verifycode.*nobody to ask"):
        run_login(sim, http, terminal, interactive=False)


def test_a_bot_already_bound_issues_no_token(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a platform that knows the bot is bound to this client already
    sim.model.register_account("bot-x", token=HELD_TOKEN)
    sim.model.script_qr(steps=["wait", "scaned", "binded_redirect"])

    # When the login runs naming the token held for it
    outcome = run_login(sim, http, terminal, local_tokens=[HELD_TOKEN])

    # Then it says so, and no account was created
    assert outcome == AlreadyBound()
    [report] = sim.model.snapshot().qr_codes.values()
    assert (report.status, report.account_id) == ("binded_redirect", None)
    assert report.local_token_accounts == ("bot-x",)


def test_the_code_request_is_a_post_naming_the_tokens_held(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given the platform knows the held token as bot-x's, and the first code expires
    sim.model.register_account("bot-x", token=HELD_TOKEN)
    sim.model.script_qr(steps=["wait", "confirmed"], expire_first=1)

    # When the login runs with that token held
    confirmed_login(sim, http, terminal, local_tokens=[HELD_TOKEN])

    # Then both codes were asked for by POST, each naming the held token
    reports = [sim.model.snapshot().qr_codes[code.qrcode] for code in terminal.shown]
    assert [(r.method, r.local_tokens, r.local_token_accounts) for r in reports] == [
        ("POST", 1, ("bot-x",)),
        ("POST", 1, ("bot-x",)),
    ]
    # And the token was never said
    assert HELD_TOKEN not in terminal.text


@pytest.mark.parametrize(
    "refusal",
    [
        Fault.http_error(404, endpoint="get_bot_qrcode"),
        Fault.http_error(405, endpoint="get_bot_qrcode"),
        Fault.html_200(endpoint="get_bot_qrcode"),
    ],
    ids=["404", "405", "html"],
)
def test_a_platform_that_refuses_the_post_is_asked_by_get(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal, refusal: Fault
) -> None:
    # Given a platform that refuses the POST form of the code request, and a first
    # code that expires
    sim.model.queue_fault(refusal)
    sim.model.script_qr(steps=["wait", "confirmed"], expire_first=1)

    # When the login runs
    confirmed_login(sim, http, terminal)

    # Then it asked by GET, the refreshed code too
    snap = sim.model.snapshot()
    assert [snap.qr_codes[code.qrcode].method for code in terminal.shown] == ["GET", "GET"]
    assert sum(snap.counters.faults_fired.values()) == 1


def test_trouble_with_the_post_is_not_taken_for_a_refusal(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given the first code request meets a 503
    sim.model.queue_fault(Fault.http_error(503, endpoint="get_bot_qrcode"))
    # When the login runs, then it fails fast, as for any first code it cannot get
    with pytest.raises(LoginError, match=r"cannot get a QR code .*HTTP 503"):
        run_login(sim, http, terminal)
    assert sim.model.snapshot().qr_codes == {}


# -- the pure helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "json_ok", "refused"),
    [
        (404, True, True),
        (405, True, True),
        (200, False, True),
        (400, False, True),
        (200, True, False),
        (400, True, False),
        (502, False, False),
        (503, True, False),
    ],
)
def test_which_answers_refuse_the_post_form(status: int, json_ok: bool, refused: bool) -> None:
    answer = Answer(http_status=status, ret=None, errcode=None, errmsg=None, json_ok=json_ok)
    assert qrcode_post_refused(answer) is refused


def test_the_newer_statuses_read_as_outcomes() -> None:
    base = "http://here:1"
    assert read_status(answer=OK, payload={"status": "need_verifycode"}, base_url=base) == (
        NeedsCode()
    )
    assert read_status(answer=OK, payload={"status": "binded_redirect"}, base_url=base) == Bound()
    with pytest.raises(LoginError) as blocked:
        read_status(answer=OK, payload={"status": "verify_code_blocked"}, base_url=base)
    assert str(blocked.value) == BLOCKED_MESSAGE


# -- the command line -------------------------------------------------------------------


def stored_token(ledger: Ledger, account_id: str) -> str | None:
    with Session(ledger.engine) as session:
        return session.scalar(select(Account.token).where(Account.id == account_id))


def login_args(sim: PlatformSimulator, *extra: str) -> list[str]:
    return ["login", *extra, "--base-url", sim.base_url, "--poll-interval", "0.01"]


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_prompts_for_the_number_until_it_is_right(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    # Given a code that asks for the number on the phone
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER)

    # When the operator types a wrong number, then the right one
    result = CliRunner().invoke(cli, login_args(sim, "bot-x"), input=f"17\n{NUMBER}\n")

    # Then the command was told the first was wrong, and logged bot-x in
    assert result.exit_code == 0, result.output
    assert result.stdout.count(ASK_CODE_PROMPT) == 2
    assert WRONG_CODE_MESSAGE in result.stdout
    assert [account.id for account in list_accounts()] == ["bot-x"]


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_that_is_blocked_says_so_and_stores_nothing(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    sim.model.script_qr(steps=VERIFY_STEPS, verify_code=NUMBER, verify_attempts=1)
    result = CliRunner().invoke(cli, login_args(sim, "bot-x"), input="17\n")
    assert result.exit_code == 1
    assert f"error: {BLOCKED_MESSAGE}" in result.stderr
    assert list_accounts() == []


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_of_a_bound_bot_keeps_the_stored_token(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    # Given bot-x is stored with its token, and the platform knows the bot as bound
    add_account("bot-x", token=HELD_TOKEN, base_url=sim.base_url)
    sim.model.register_account("bot-x", token=HELD_TOKEN)
    sim.model.script_qr(steps=["wait", "scaned", "binded_redirect"])

    # When the operator logs bot-x in again
    result = CliRunner().invoke(cli, login_args(sim, "bot-x"))

    # Then the command says the bot is already bound and succeeds, keeping the token
    assert result.exit_code == 0, result.output
    assert "already bound to this client" in result.stdout
    assert stored_token(sqlite_ledger, "bot-x") == HELD_TOKEN
    # And the code request named bot-x's token, which was never printed
    [report] = sim.model.snapshot().qr_codes.values()
    assert (report.method, report.local_token_accounts) == ("POST", ("bot-x",))
    assert HELD_TOKEN not in result.output


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_of_a_bound_bot_with_no_token_held_says_what_to_do(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    sim.model.script_qr(steps=["wait", "binded_redirect"])
    result = CliRunner().invoke(cli, login_args(sim, "bot-y"))
    assert result.exit_code == 1
    assert "already bound" in result.stderr
    assert "delivery account add bot-y --token -" in result.stderr
    [report] = sim.model.snapshot().qr_codes.values()
    assert report.local_tokens == 0


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_announces_the_configured_client_version(
    sim: PlatformSimulator, sqlite_ledger: Ledger, configure: Configure
) -> None:
    # Given the operator follows the platform to client version 2.5.1
    configure(client_version="2.5.1")

    # When they log in
    result = CliRunner().invoke(cli, login_args(sim))

    # Then every request of the login said 2.5.1, packed
    assert result.exit_code == 0, result.output
    seen = sim.model.snapshot().seen
    assert {request.endpoint for request in seen} == {"get_bot_qrcode", "get_qrcode_status"}
    packed = ClientVersion(2, 5, 1).header_value
    assert {request.client.client_version for request in seen} == {packed}
    assert {request.client.app_id for request in seen} == {"bot"}
