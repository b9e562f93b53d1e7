"""The QR login, against a real simulated platform over HTTP.

The flow gets a no-op ``sleep`` (or a fake clock that the sleeps move), so no test
waits for a poll interval; the simulator walks each code one scripted step per poll.
"""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery import list_accounts
from delivery.cli import cli
from delivery.cli.login_commands import login
from delivery.errors import LoginError
from delivery.ilink.classify import Answer
from delivery.ilink.client import ILinkClient
from delivery.ledger.models import Account
from delivery.sessions.login import SCANNED_MESSAGE, LoginResult
from delivery.sessions.qr_answers import (
    Confirmed,
    Pending,
    Redirected,
    Trouble,
    read_status,
    redirected_base_url,
)
from delivery.simulator import Fault, PlatformSimulator
from tests.conftest import Ledger
from tests.support.qr_login import FakeClock, Terminal, confirmed_login, run_login

PEER = "peer@im.wechat"
OK = Answer(http_status=200, ret=0, errcode=None, errmsg=None)

if "login" not in cli.commands:
    cli.add_command(login)


def port_of(sim: PlatformSimulator) -> int:
    return int(sim.base_url.rsplit(":", 1)[1])


# -- the flow against the simulator ------------------------------------------------------


def test_login_through_scan_and_redirect_yields_a_working_token(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a code that is scanned, redirected to another name of the same platform,
    # then confirmed
    here = f"127.0.0.1:{port_of(sim)}"
    there = f"localhost:{port_of(sim)}"
    sim.model.script_qr(
        steps=["wait", "scaned", "scaned_but_redirect", "confirmed"], redirect_host=there
    )

    # When the login runs
    result = confirmed_login(sim, http, terminal)

    # Then polling moved to the redirect host, and the code confirmed that bot there
    [code] = terminal.shown
    report = sim.model.snapshot().qr_codes[code.qrcode]
    assert report.hosts == (here, here, here, there)
    assert report.status == "confirmed"
    assert report.account_id == result.ilink_bot_id
    assert result.base_url == f"http://{there}"
    assert result.ilink_user_id is not None and result.ilink_user_id.endswith("@im.wechat")
    assert code.url.startswith(sim.base_url)
    # And the person was told once that the code was scanned
    assert terminal.said.count(SCANNED_MESSAGE) == 1
    # And the token was never said or shown in a repr
    assert result.token not in terminal.text
    assert result.token not in repr(result)

    # And the token is accepted by the platform
    client = ILinkClient(base_url=result.base_url, token=result.token, session=http)
    config = client.get_config(ilink_user_id=result.ilink_user_id)
    assert config.answer.ret == 0 and config.payload["typing_ticket"]
    sent = client.send_text(to_user_id=PEER, client_id="login-1", text="hi", context_token=None)
    assert sent.answer.ret == 0
    [delivered] = sim.model.snapshot().messages[PEER]
    assert delivered.account_id == result.ilink_bot_id


def test_expired_codes_are_replaced_until_one_is_confirmed(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given the first two codes expire
    sim.model.script_qr(steps=["wait", "scaned", "confirmed"], expire_first=2)

    # When the login runs with room for two refreshes
    result = confirmed_login(sim, http, terminal, max_refreshes=2)

    # Then three codes were shown, and the third one confirmed the login
    assert [code.number for code in terminal.shown] == [1, 2, 3]
    codes = sim.model.snapshot().qr_codes
    assert [codes[code.qrcode].status for code in terminal.shown] == [
        "expired",
        "expired",
        "confirmed",
    ]
    assert codes[terminal.shown[-1].qrcode].account_id == result.ilink_bot_id


def test_more_expired_codes_than_refreshes_end_the_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given every code expires
    sim.model.script_qr(steps=["wait", "scaned", "confirmed"], expire_first=10)

    # When the login runs with room for two refreshes
    # Then it gives up after the third expired code, saying so
    with pytest.raises(LoginError, match=r"3 QR codes expired .*at most 2 refreshes"):
        run_login(sim, http, terminal, max_refreshes=2)
    assert len(terminal.shown) == 3
    assert all(report.account_id is None for report in sim.model.snapshot().qr_codes.values())


def test_a_code_nobody_confirms_times_out(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given a code that is scanned but never confirmed
    sim.model.script_qr(steps=["wait", "scaned"])
    clock = FakeClock()
    started = clock.now

    # When the login runs with a 5 s timeout
    # Then it ends with a LoginError saying how far it got, at the deadline
    with pytest.raises(LoginError, match=r"within 5s \(the code was scanned but not confirmed"):
        run_login(sim, http, terminal, clock=clock, timeout_seconds=5.0)
    assert clock.now - started == pytest.approx(5.0)
    [code] = terminal.shown
    assert len(sim.model.snapshot().qr_codes[code.qrcode].hosts) == 9  # 0.5 s apart


def test_transient_trouble_while_polling_is_retried(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given the status polls meet a 503, a body that is not JSON and a reset
    for fault in (
        Fault.http_error(503, endpoint="get_qrcode_status"),
        Fault.garbage(endpoint="get_qrcode_status"),
        Fault.reset_before_delivery(endpoint="get_qrcode_status"),
    ):
        sim.model.queue_fault(fault)

    # When the login runs
    result = confirmed_login(sim, http, terminal)

    # Then it still succeeds, and the trouble was reported once, not on every poll
    assert result.token
    assert sum("platform trouble" in line for line in terminal.said) == 1
    assert sim.model.snapshot().counters.faults_fired == {
        "http_503": 1,
        "garbage": 1,
        "reset_before_delivery": 1,
    }


def test_trouble_that_never_ends_times_out_naming_it(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given every status poll answers 502
    sim.model.queue_fault(Fault.http_error(502, endpoint="get_qrcode_status"), count=1000)

    # When the login runs with a 3 s timeout
    # Then the timeout names the last trouble
    with pytest.raises(LoginError, match=r"within 3s .*last trouble: HTTP 502"):
        run_login(sim, http, terminal, timeout_seconds=3.0)


def test_a_refused_status_poll_ends_the_login(
    sim: PlatformSimulator, http: requests.Session, terminal: Terminal
) -> None:
    # Given the platform refuses the status poll
    refusal = Fault.answer(ret=-1, errcode=-1, errmsg="nope", endpoint="get_qrcode_status")
    sim.model.queue_fault(refusal)

    # When the login runs, then it fails at once, naming the answer
    with pytest.raises(LoginError, match=r"refused the QR status poll.*ret -1.*'nope'"):
        run_login(sim, http, terminal)


def test_an_unreachable_platform_fails_before_showing_a_code(
    http: requests.Session, terminal: Terminal
) -> None:
    # Given a platform that is no longer listening
    gone = PlatformSimulator()
    gone.stop()

    # When the login runs, then it fails at once, before any code is shown
    with pytest.raises(LoginError, match="cannot get a QR code"):
        run_login(gone, http, terminal, timeout_seconds=3.0)
    assert terminal.shown == []


# -- the pure helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "redirect_host", "expected"),
    [
        ("http://127.0.0.1:8765", "localhost:8765", "http://localhost:8765"),
        ("https://ilinkai.weixin.qq.com", "sh.weixin.qq.com", "https://sh.weixin.qq.com"),
        ("https://ilinkai.weixin.qq.com/", "http://other:81/", "http://other:81"),
    ],
)
def test_a_redirect_keeps_the_scheme_unless_it_names_one(
    current: str, redirect_host: str, expected: str
) -> None:
    assert redirected_base_url(current_base_url=current, redirect_host=redirect_host) == expected


def test_statuses_read_as_outcomes() -> None:
    base = "http://here:1"
    assert read_status(answer=OK, payload={"status": "wait"}, base_url=base) == Pending(False)
    assert read_status(answer=OK, payload={"status": "scaned"}, base_url=base) == Pending(True)
    redirect = {"status": "scaned_but_redirect", "redirect_host": "there:2"}
    assert read_status(answer=OK, payload=redirect, base_url=base) == Redirected("http://there:2")
    html = Answer(http_status=200, ret=None, errcode=None, errmsg=None, json_ok=False)
    assert isinstance(read_status(answer=html, payload={}, base_url=base), Trouble)


def test_a_confirmed_status_without_baseurl_uses_the_host_that_confirmed() -> None:
    payload = {"status": "confirmed", "ilink_bot_id": "b@im.bot", "bot_token": "secret-token-1"}
    outcome = read_status(answer=OK, payload=payload, base_url="http://here:1")
    assert outcome == Confirmed(LoginResult("b@im.bot", "secret-token-1", "http://here:1", None))
    assert "secret-token-1" not in repr(outcome)


def test_an_unknown_status_or_a_confirmation_without_token_is_refused() -> None:
    with pytest.raises(LoginError, match="unknown QR login status 'cancelled'"):
        read_status(answer=OK, payload={"status": "cancelled"}, base_url="http://h")
    with pytest.raises(LoginError, match="sent no bot_token"):
        read_status(
            answer=OK, payload={"status": "confirmed", "ilink_bot_id": "b"}, base_url="http://h"
        )


# -- the command line -------------------------------------------------------------------


def stored_token(ledger: Ledger, account_id: str) -> str:
    with Session(ledger.engine) as session:
        token = session.scalar(select(Account.token).where(Account.id == account_id))
    assert token is not None
    return token


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_stores_the_confirmed_token(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    # Given a platform whose codes are confirmed on the third poll
    # When an operator logs in as bot-x
    result = CliRunner().invoke(
        cli, ["login", "bot-x", "--base-url", sim.base_url, "--poll-interval", "0.01"]
    )

    # Then the command succeeds, having drawn the code and printed its URL
    assert result.exit_code == 0, result.output
    assert "█" in result.stdout and "▀" in result.stdout
    [report] = sim.model.snapshot().qr_codes.values()
    assert f"/_sim/qr/scan?qrcode={report.qrcode}" in result.stdout
    # And bot-x holds the token the platform issued, with the base URL it named
    [account] = list_accounts()
    assert (account.id, account.base_url) == ("bot-x", sim.base_url)
    assert account.ilink_user_id is not None
    token = stored_token(sqlite_ledger, "bot-x")
    assert sim.model.account_for_token(token) == report.account_id
    # And the token shows only masked
    assert token not in result.output
    assert f"account bot-x logged in (token {account.token_masked}, " in result.stdout


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_names_the_account_after_the_bot_by_default(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    result = CliRunner().invoke(
        cli, ["login", "--base-url", sim.base_url, "--poll-interval", "0.01"]
    )
    assert result.exit_code == 0, result.output
    [report] = sim.model.snapshot().qr_codes.values()
    assert [account.id for account in list_accounts()] == [report.account_id]


@pytest.mark.usefixtures("restore_logging")
def test_cli_login_that_fails_says_why_and_stores_nothing(
    sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    # Given every code expires
    sim.model.script_qr(steps=["wait", "scaned", "confirmed"], expire_first=10)
    # When the operator allows one refresh
    args = ["login", "bot-x", "--base-url", sim.base_url, "--poll-interval", "0.01"]
    result = CliRunner().invoke(cli, [*args, "--max-refreshes", "1"])
    # Then the command fails with the reason and no account is stored
    assert result.exit_code == 1
    assert "error: 2 QR codes expired" in result.stderr
    assert list_accounts() == []
