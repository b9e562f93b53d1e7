"""The wire contract: what the official client sends and what this project sends.

The official client's requests are written here as data (method, path, headers,
JSON body), as the published source of Tencent's openclaw-weixin 2.4.9 shows
them; no code of it is copied. This project's requests are captured from the
simulator's own records after its client made them. The simulator accepts both,
and refuses a malformed request of each kind with HTTP 400 naming the problem.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from delivery.ilink.client import ILinkClient
from delivery.ilink.protocol import DEFAULT_CLIENT_VERSION, ClientVersion
from delivery.simulator import ClientIdentity, PlatformSimulator, SimulatorConfig
from tests.support.qr_login import Terminal, confirmed_login

TOKEN = "contract-token-0123456789"
PEER = "o9cq80contract@im.wechat"
TIMEOUT_SECONDS = 5.0
OFFICIAL_VERSION = "2.4.9"
OFFICIAL_HEADER = "132105"  # 2 << 16 | 4 << 8 | 9
OFFICIAL_BASE_INFO = {"channel_version": OFFICIAL_VERSION, "bot_agent": "OpenClaw"}
OFFICIAL_IDENTITY = ClientIdentity(
    app_id="bot",
    client_version=OFFICIAL_HEADER,
    channel_version=OFFICIAL_VERSION,
    bot_agent="OpenClaw",
)


@dataclass(frozen=True)
class Wire:
    """One request as it goes over the wire. ``{token}`` and ``{uin}`` are filled in."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    expect: dict[str, Any] = field(default_factory=lambda: {"ret": 0})


POST_HEADERS = {
    "Content-Type": "application/json",
    "AuthorizationType": "ilink_bot_token",
    "X-WECHAT-UIN": "{uin}",
    "iLink-App-Id": "bot",
    "iLink-App-ClientVersion": OFFICIAL_HEADER,
    "Authorization": "Bearer {token}",
}
QR_POST_HEADERS = {name: v for name, v in POST_HEADERS.items() if name != "Authorization"}
GET_HEADERS = {"iLink-App-Id": "bot", "iLink-App-ClientVersion": OFFICIAL_HEADER}

# What openclaw-weixin 2.4.9 sends, per its published source.
OFFICIAL: dict[str, Wire] = {
    "sendmessage": Wire(
        "POST",
        "ilink/bot/sendmessage",
        POST_HEADERS,
        {
            "msg": {
                "from_user_id": "",
                "to_user_id": PEER,
                "client_id": "openclaw-weixin:1767225600000-0a1b2c3d",
                "message_type": 2,
                "message_state": 2,
                "item_list": [{"type": 1, "text_item": {"text": "hello from 2.4.9"}}],
                "context_token": "ctx-from-inbound",
                "run_id": "run-1",
            },
            "base_info": OFFICIAL_BASE_INFO,
        },
    ),
    "getconfig": Wire(
        "POST",
        "ilink/bot/getconfig",
        POST_HEADERS,
        {
            "ilink_user_id": PEER,
            "context_token": "ctx-from-inbound",
            "base_info": OFFICIAL_BASE_INFO,
        },
    ),
    "getupdates": Wire(
        "POST",
        "ilink/bot/getupdates",
        POST_HEADERS,
        {"get_updates_buf": "", "base_info": OFFICIAL_BASE_INFO},
    ),
    "sendtyping": Wire(
        "POST",
        "ilink/bot/sendtyping",
        POST_HEADERS,
        {
            "ilink_user_id": PEER,
            "typing_ticket": "ticket",
            "status": 1,
            "base_info": OFFICIAL_BASE_INFO,
        },
    ),
    "notifystart": Wire(
        "POST", "ilink/bot/msg/notifystart", POST_HEADERS, {"base_info": OFFICIAL_BASE_INFO}
    ),
    "notifystop": Wire(
        "POST", "ilink/bot/msg/notifystop", POST_HEADERS, {"base_info": OFFICIAL_BASE_INFO}
    ),
    "sendmessage with a route tag": Wire(
        "POST",
        "ilink/bot/sendmessage",
        {**POST_HEADERS, "SKRouteTag": "1001"},
        {
            "msg": {
                "from_user_id": "",
                "to_user_id": PEER,
                "client_id": "openclaw-weixin:1767225600001-0a1b2c3e",
                "message_type": 2,
                "message_state": 2,
                "item_list": [{"type": 1, "text_item": {"text": "routed"}}],
            },
            "base_info": OFFICIAL_BASE_INFO,
        },
    ),
    "get_bot_qrcode": Wire(
        "POST",
        "ilink/bot/get_bot_qrcode?bot_type=3",
        QR_POST_HEADERS,
        {"local_token_list": ["{token}"]},
    ),
    "get_qrcode_status": Wire(
        "GET",
        "ilink/bot/get_qrcode_status?qrcode={qrcode}&verify_code=42",
        GET_HEADERS,
        expect={"ret": 0, "status": "wait"},
    ),
}


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def send(sim: PlatformSimulator, wire: Wire, *, qrcode: str = "") -> requests.Response:
    """Send ``wire`` to ``sim`` as it stands, with a fresh UIN."""
    uin = base64.b64encode(str(secrets.randbits(32)).encode()).decode()
    values = {"token": TOKEN, "uin": uin, "qrcode": qrcode}
    body = None if wire.body is None else json.dumps(_fill(wire.body, values)).encode()
    return requests.request(
        wire.method,
        f"{sim.base_url}/{_fill(wire.path, values)}",
        headers=_fill(wire.headers, values),
        data=body,
        timeout=TIMEOUT_SECONDS,
    )


@pytest.fixture
def sim_config() -> SimulatorConfig:
    # An empty getupdates is a long poll: held this long (not the platform's 35 s).
    return SimulatorConfig(longpolling_timeout_ms=50)


@pytest.fixture
def sim_accounts() -> dict[str, str]:
    return {"bot-1": TOKEN}


def a_qrcode(sim: PlatformSimulator) -> str:
    return str(send(sim, OFFICIAL["get_bot_qrcode"]).json()["qrcode"])


# -- the official client's requests --------------------------------------------------------


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_the_official_clients_request_is_accepted(sim: PlatformSimulator, name: str) -> None:
    # Given a request as openclaw-weixin 2.4.9 sends it
    wire = OFFICIAL[name]
    qrcode = a_qrcode(sim) if "{qrcode}" in wire.path else ""
    before = len(sim.model.snapshot().seen)

    # When it reaches the simulator
    response = send(sim, wire, qrcode=qrcode)

    # Then it is accepted, and recorded with the identity the client gave
    assert response.status_code == 200, response.text
    assert wire.expect.items() <= response.json().items()
    snap = sim.model.snapshot()
    assert snap.bad_requests == ()
    [seen] = snap.seen[before:]
    assert seen.method == wire.method
    expected = OFFICIAL_IDENTITY
    if wire.body is None or "base_info" not in wire.body:
        expected = ClientIdentity(app_id="bot", client_version=OFFICIAL_HEADER)
    assert seen.client == dataclasses.replace(expected, route_tag=wire.headers.get("SKRouteTag"))


def test_an_accepted_send_answers_a_message_id_past_2_53(sim: PlatformSimulator) -> None:
    response = send(sim, OFFICIAL["sendmessage"])
    message_id = response.json()["message_id"]
    assert isinstance(message_id, int) and 2**53 < message_id < 2**64
    # A JSON number, not a string: the raw body carries its digits bare
    assert f'"message_id":{message_id}' in response.text
    [delivered] = sim.model.snapshot().messages[PEER]
    assert delivered.message_id == str(message_id)


def test_the_official_qr_request_names_the_tokens_it_holds(sim: PlatformSimulator) -> None:
    qrcode = a_qrcode(sim)
    report = sim.model.snapshot().qr_codes[qrcode]
    assert (report.method, report.local_tokens, report.local_token_accounts) == (
        "POST",
        1,
        ("bot-1",),
    )


# -- this project's requests ---------------------------------------------------------------


def test_this_projects_requests_are_accepted_and_say_its_version(sim: PlatformSimulator) -> None:
    # Given this project's client at its default version
    with requests.Session() as http:
        client = ILinkClient(base_url=sim.base_url, token=TOKEN, session=http)

        # When it makes every call it has, and logs a bot in
        sent = client.send_text(to_user_id=PEER, client_id="dlv-1", text="hi", context_token="c")
        answers = [
            sent.answer,
            client.get_config(ilink_user_id=PEER, context_token="c").answer,
            client.send_typing(ilink_user_id=PEER, typing_ticket="t", typing=True).answer,
            client.get_updates(cursor="").answer,
        ]
        confirmed_login(sim, http, Terminal(), local_tokens=[TOKEN])

    # Then every one was accepted
    assert all(answer.http_status == 200 and answer.ret == 0 for answer in answers)
    snap = sim.model.snapshot()
    assert snap.bad_requests == ()
    # And each said what the official client 2.4.9 says, but for bot_agent
    ours = {(seen.method, seen.endpoint): seen.client for seen in snap.seen}
    posted = ClientIdentity(
        app_id="bot", client_version=OFFICIAL_HEADER, channel_version=OFFICIAL_VERSION
    )
    unposted = ClientIdentity(app_id="bot", client_version=OFFICIAL_HEADER)
    assert ours == {
        ("POST", "sendmessage"): posted,
        ("POST", "getconfig"): posted,
        ("POST", "sendtyping"): posted,
        ("POST", "getupdates"): posted,
        ("POST", "get_bot_qrcode"): unposted,
        ("GET", "get_qrcode_status"): unposted,
    }
    assert DEFAULT_CLIENT_VERSION.header_value == OFFICIAL_HEADER
    # And the send's message_id came back with every digit
    [delivered] = snap.messages[PEER]
    assert sent.answer.message_id == delivered.message_id
    assert int(delivered.message_id) > 2**53


def test_another_client_version_reaches_header_and_base_info_alike(
    sim: PlatformSimulator,
) -> None:
    version = ClientVersion.parse("3.0.17")
    with requests.Session() as http:
        client = ILinkClient(
            base_url=sim.base_url, token=TOKEN, session=http, client_version=version
        )
        assert client.get_config(ilink_user_id=PEER).answer.ret == 0
    [seen] = sim.model.snapshot().seen
    assert (seen.client.client_version, seen.client.channel_version) == (
        str(3 << 16 | 17),
        "3.0.17",
    )


# -- malformed requests: one of each kind ----------------------------------------------------


def _changed(name: str, *, headers: dict[str, str | None] | None = None, **body: Any) -> Wire:
    """The official ``name`` request with headers set (``None``: removed) and body keys
    replaced (dotted paths reach into objects; ``None``: removed)."""
    wire = OFFICIAL[name]
    new_headers = {**wire.headers, **(headers or {})}
    new_body = copy.deepcopy(wire.body) or {}
    for dotted, value in body.items():
        *parents, last = dotted.split("__")
        target = new_body
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return Wire(
        wire.method,
        wire.path,
        {key: value for key, value in new_headers.items() if value is not None},
        new_body if wire.body is not None else None,
    )


MALFORMED = {
    "client version not a decimal": (
        _changed("sendmessage", headers={"iLink-App-ClientVersion": "2.4.9"}),
        "iLink-App-ClientVersion",
    ),
    "client version past 24 bits": (
        _changed("getconfig", headers={"iLink-App-ClientVersion": str(1 << 24)}),
        "iLink-App-ClientVersion",
    ),
    "client version missing": (
        _changed("getupdates", headers={"iLink-App-ClientVersion": None}),
        "iLink-App-ClientVersion",
    ),
    "another app id": (_changed("sendmessage", headers={"iLink-App-Id": "app"}), "iLink-App-Id"),
    "no token": (_changed("sendmessage", headers={"Authorization": None}), "Authorization"),
    "no token on notifystart": (
        _changed("notifystart", headers={"Authorization": None}),
        "Authorization",
    ),
    "channel_version not a string": (
        _changed("sendmessage", base_info={"channel_version": 2.49}),
        "base_info.channel_version must be a string",
    ),
    "no base_info": (_changed("getconfig", base_info=None), "base_info is missing"),
    "bot_agent not a string": (
        _changed("getupdates", base_info={"channel_version": "2.4.9", "bot_agent": ["x"]}),
        "bot_agent",
    ),
    "message_type a string": (_changed("sendmessage", msg__message_type="2"), "message_type"),
    "ilink_user_id a number": (_changed("getconfig", ilink_user_id=7), "ilink_user_id"),
    "get_updates_buf missing": (_changed("getupdates", get_updates_buf=None), "get_updates_buf"),
    "typing status 3": (_changed("sendtyping", status=3), "status"),
    "local_token_list not a list": (
        _changed("get_bot_qrcode", local_token_list="{token}"),
        "local_token_list",
    ),
    "local_token_list of numbers": (
        _changed("get_bot_qrcode", local_token_list=[7]),
        "local_token_list",
    ),
    "qr request without a UIN": (
        _changed("get_bot_qrcode", headers={"X-WECHAT-UIN": None}),
        "X-WECHAT-UIN",
    ),
    "qr status with a bad client version": (
        _changed("get_qrcode_status", headers={"iLink-App-ClientVersion": "x"}),
        "iLink-App-ClientVersion",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_request_is_refused_naming_the_problem(
    sim: PlatformSimulator, name: str
) -> None:
    # Given a request with one thing wrong
    wire, named = MALFORMED[name]
    qrcode = a_qrcode(sim) if "{qrcode}" in wire.path else ""
    before = len(sim.model.snapshot().seen)

    # When it reaches the simulator
    response = send(sim, wire, qrcode=qrcode)

    # Then it is refused with HTTP 400 and an errmsg naming the problem, and kept as bad
    assert response.status_code == 400
    assert named in response.json()["errmsg"]
    snap = sim.model.snapshot()
    assert any(named in reason for reason in snap.bad_requests)
    assert snap.seen[before:] == ()
    # And the token never shows in the answer or the records
    assert TOKEN not in response.text
    assert all(TOKEN not in reason for reason in snap.bad_requests)
