"""The simulator's QR login states and the client records, in the model and over HTTP.

The model is driven directly (no HTTP, no clock needed); the control API is driven
over HTTP, so its JSON round trip of the snapshot is proven too.
"""

from __future__ import annotations

import json

import pytest
import requests

from delivery.ilink.client import fetch_qrcode, poll_qrcode_status
from delivery.ilink.protocol import ENDPOINT_NOTIFYSTART, build_headers, encode_body, endpoint_url
from delivery.simulator import ClientIdentity, PlatformModel, PlatformSimulator, SimulatorControl
from delivery.simulator.qr import QrFlow

HOST = "127.0.0.1:8000"
NUMBER = "42"
TOKEN = "qr-token-0123456789"


def statuses(flow: QrFlow, qrcode: str, codes: list[str | None]) -> list[str]:
    """The status each poll answers, with the verify code it carries."""
    return [flow.poll(qrcode, host=HOST, verify_code=code).status for code in codes]


# -- the flow ----------------------------------------------------------------------------


def test_a_code_waits_for_the_right_number_then_goes_on() -> None:
    flow = QrFlow()
    flow.script(steps=["wait", "need_verifycode", "scaned", "confirmed"], verify_code=NUMBER)
    code = flow.issue()
    # Polls without a number, or with a wrong one, stay at need_verifycode
    assert statuses(flow, code.qrcode, [None, None, None, "17", NUMBER, NUMBER, None]) == [
        "wait",
        "need_verifycode",
        "need_verifycode",
        "need_verifycode",
        "scaned",
        "confirmed",
        "confirmed",
    ]
    assert code.wrong_codes == 1


def test_wrong_numbers_block_the_code_for_good() -> None:
    flow = QrFlow()
    flow.script(steps=["need_verifycode", "confirmed"], verify_code=NUMBER, verify_attempts=2)
    code = flow.issue()
    assert statuses(flow, code.qrcode, [None, "1", "2", NUMBER]) == [
        "need_verifycode",
        "need_verifycode",
        "verify_code_blocked",
        "verify_code_blocked",
    ]


def test_without_a_scripted_number_each_code_gets_its_own() -> None:
    flow = QrFlow()
    flow.script(steps=["need_verifycode", "confirmed"])
    first, second = flow.issue(), flow.issue()
    assert first.verify_code.isdigit() and len(first.verify_code) == 2
    assert statuses(flow, first.qrcode, [None, first.verify_code]) == [
        "need_verifycode",
        "confirmed",
    ]
    assert second.report(()).verify_code == second.verify_code


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["binded_redirect", "wait"], "must be the last"),
        (["verify_code_blocked", "wait"], "must be the last"),
        (["wait", "need_verifycode"], "must be followed"),
    ],
)
def test_a_script_must_make_sense(steps: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QrFlow().script(steps=steps)
    with pytest.raises(ValueError, match="verify_attempts"):
        QrFlow().script(steps=["wait"], verify_attempts=0)


def test_binded_redirect_confirms_no_account() -> None:
    model = PlatformModel()
    model.script_qr(steps=["scaned", "binded_redirect"])
    issued = model.get_bot_qrcode(scan_base_url=f"http://{HOST}")
    assert issued.reply is not None
    qrcode = json.loads(issued.reply.body)["qrcode"]
    for _ in range(3):
        model.get_qrcode_status(qrcode=qrcode, host=HOST, base_url=f"http://{HOST}")
    report = model.snapshot().qr_codes[qrcode]
    assert (report.status, report.account_id) == ("binded_redirect", None)


# -- over HTTP, through the control API ------------------------------------------------------


@pytest.fixture
def control(sim: PlatformSimulator) -> SimulatorControl:
    return SimulatorControl(sim.base_url)


def test_the_control_api_scripts_a_number_and_reports_what_it_saw(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given a script asking for a number, and an account whose token a client holds
    control.register_account("bot-1", token=TOKEN)
    control.script_qr(steps=["need_verifycode", "confirmed"], verify_code=NUMBER)

    # When a client asks for a code by POST and answers the number
    with requests.Session() as http:
        issued = fetch_qrcode(http, base_url=sim.base_url, local_tokens=[TOKEN, "unknown-token"])
        qrcode = issued.payload["qrcode"]
        asked = poll_qrcode_status(http, base_url=sim.base_url, qrcode=qrcode)
        done = poll_qrcode_status(http, base_url=sim.base_url, qrcode=qrcode, verify_code=NUMBER)

    # Then the platform asked, then confirmed
    assert (asked.payload["status"], done.payload["status"]) == ("need_verifycode", "confirmed")
    # And the snapshot, read over HTTP, says how the code was asked for and answered
    report = control.received().qr_codes[qrcode]
    assert (report.method, report.local_tokens, report.local_token_accounts) == (
        "POST",
        2,
        ("bot-1",),
    )
    assert (report.verify_code, report.wrong_codes, report.status) == (NUMBER, 0, "confirmed")
    # And every request is recorded with the client version it said
    seen = control.received().seen
    assert [(s.method, s.endpoint) for s in seen] == [
        ("POST", "get_bot_qrcode"),
        ("GET", "get_qrcode_status"),
        ("GET", "get_qrcode_status"),
    ]
    assert {s.client for s in seen} == {ClientIdentity(app_id="bot", client_version="132105")}


def test_notifystart_needs_a_live_session(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    control.register_account("bot-1", token=TOKEN)

    def notify() -> dict[str, object]:
        response = requests.post(
            endpoint_url(sim.base_url, ENDPOINT_NOTIFYSTART),
            data=encode_body({}),
            headers=build_headers(token=TOKEN),
            timeout=5,
        )
        payload: dict[str, object] = response.json()
        return payload

    assert notify() == {"ret": 0}
    control.expire_session("bot-1")
    assert notify()["ret"] == -14
    assert control.received().counters.requests["notifystart"] == 2
