"""The platform simulator proves its own model before anything trusts it.

Model tests drive :class:`PlatformModel` with a fake clock (no sleeping); HTTP tests
talk to a started :class:`PlatformSimulator` with ``requests``, building requests
with the project's own protocol helpers, the way the real client does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from delivery.ilink.protocol import (
    ENDPOINT_GETCONFIG,
    ENDPOINT_GETUPDATES,
    ENDPOINT_QRCODE,
    ENDPOINT_QRCODE_STATUS,
    ENDPOINT_SENDMESSAGE,
    ENDPOINT_SENDTYPING,
    build_headers,
    encode_body,
    endpoint_url,
    sendmessage_fields,
)
from delivery.simulator import (
    Fault,
    PlatformModel,
    PlatformSimulator,
    SendMessage,
    SimulatorConfig,
    SimulatorControl,
    SimulatorControlError,
    serve_forever,
)
from delivery.simulator.replies import Outcome
from tests.support.waiting import wait_until

ACCOUNT = "bot-1@im.bot"
TOKEN = "token-one-123"
PEER = "peer@im.wechat"
TIMEOUT_SECONDS = 5.0


class FakeClock:
    """A clock a test moves by hand, in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(outcome: Outcome) -> dict[str, Any]:
    assert outcome.reply is not None
    payload: dict[str, Any] = json.loads(outcome.reply.body)
    return payload


# -- model: a fake clock, no HTTP --------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_model(clock: FakeClock, **config: Any) -> PlatformModel:
    model = PlatformModel(config=SimulatorConfig(**config), clock=clock)
    model.register_account(ACCOUNT, token=TOKEN)
    return model


def model_send(
    model: PlatformModel, client_id: str, *, text: str = "hi", token: str = TOKEN
) -> dict[str, Any]:
    send = SendMessage(to_user_id=PEER, client_id=client_id, text=text, context_token=None)
    return answer(model.sendmessage(token=token, send=send))


RATE_LIMITED = {"ret": -2, "errcode": -2, "errmsg": "rate limited"}


def accepted(payload: dict[str, Any]) -> bool:
    """``ret`` 0 and a ``message_id``: a JSON number past 2**53, within uint64."""
    message_id = payload.get("message_id")
    is_id = isinstance(message_id, int) and 2**53 < message_id < 2**64
    return set(payload) == {"ret", "message_id"} and payload["ret"] == 0 and is_id


def test_rate_limit_starts_a_lockout_that_sends_extend(clock: FakeClock) -> None:
    # Given 2 sends per 10 s, a 60 s lockout extended 5 s by every send during it
    model = make_model(
        clock,
        rate_limit_sends=2,
        rate_limit_window_seconds=10.0,
        lockout_seconds=60.0,
        lockout_extend_seconds=5.0,
    )
    start = clock.now
    # When a third send comes within the window
    assert accepted(model_send(model, "c1"))
    clock.advance(1)
    assert accepted(model_send(model, "c2"))
    clock.advance(1)
    # Then it is refused and a lockout starts
    assert model_send(model, "c3") == RATE_LIMITED
    assert model.snapshot().accounts[ACCOUNT].lockout_until == start + 62
    # And each send during the lockout is refused and pushes the end 5 s further
    clock.advance(30)
    assert model_send(model, "c3") == RATE_LIMITED
    clock.advance(34.9)  # start + 66.9, just before the extended end at start + 67
    assert model_send(model, "c3") == RATE_LIMITED
    assert model.snapshot().accounts[ACCOUNT].lockout_until == start + 72
    clock.advance(72 - 66.9)
    assert accepted(model_send(model, "c3"))
    snap = model.snapshot()
    assert snap.texts(PEER) == ["hi", "hi", "hi"]
    assert snap.counters.rejected == {"rate_limited": 3}
    assert snap.accounts[ACCOUNT].lockout_until is None


def test_a_lockout_can_be_started_on_demand(clock: FakeClock) -> None:
    # Given an account that an earlier burst locked out for 20 s
    model = make_model(clock, lockout_extend_seconds=1.0)
    model.lock_out(ACCOUNT, seconds=20.0)
    # When it sends during the lockout, then it is refused and the lockout grows
    clock.advance(19.5)
    assert model_send(model, "c1") == RATE_LIMITED
    clock.advance(1.0)  # 20.5 s: inside the extended lockout
    assert model_send(model, "c1") == RATE_LIMITED
    clock.advance(1.6)
    assert accepted(model_send(model, "c1"))
    with pytest.raises(ValueError, match="positive"):
        model.lock_out(ACCOUNT, seconds=0)


def test_window_slides_a_send_stops_counting_after_exactly_the_window(clock: FakeClock) -> None:
    model = make_model(clock, rate_limit_sends=2, rate_limit_window_seconds=10.0)
    assert accepted(model_send(model, "c1"))
    clock.advance(5)
    assert accepted(model_send(model, "c2"))
    clock.advance(5)  # c1 is exactly 10 s old: out of the window
    assert accepted(model_send(model, "c3"))
    accepted_at = model.snapshot().accounts[ACCOUNT].accepted_at
    assert [t - accepted_at[0] for t in accepted_at] == [0, 5, 10]


@pytest.mark.parametrize(
    ("errmsg", "expected"),
    [
        ("rate limited", {"ret": -2, "errcode": -2, "errmsg": "rate limited"}),
        ("", {"ret": -2, "errcode": -2, "errmsg": ""}),
        (None, {"ret": -2, "errcode": -2}),
    ],
)
def test_rate_limit_errmsg_variants(
    clock: FakeClock, errmsg: str | None, expected: dict[str, Any]
) -> None:
    model = make_model(clock, rate_limit_sends=1, rate_limit_errmsg=errmsg)
    model_send(model, "c1")
    assert model_send(model, "c2") == expected


@pytest.mark.parametrize(
    ("fault", "expected", "label"),
    [
        (
            Fault.unknown_error(),
            {"ret": -2, "errcode": -2, "errmsg": "unknown error"},
            "unknown_error",
        ),
        (
            Fault.prepare_failed(),
            {"ret": -2, "errcode": -2, "errmsg": "prepare failed"},
            "prepare_failed",
        ),
        (Fault.answer(ret=-2), {"ret": -2}, "answer_-2"),
        (
            Fault.answer(ret=-9, errcode=40001, errmsg="whatever"),
            {"ret": -9, "errcode": 40001, "errmsg": "whatever"},
            "answer_-9",
        ),
    ],
)
def test_injected_answers_refuse_without_delivering(
    clock: FakeClock, fault: Fault, expected: dict[str, Any], label: str
) -> None:
    model = make_model(clock)
    model.queue_fault(fault)
    assert model_send(model, "c1") == expected
    assert accepted(model_send(model, "c1"))  # the fault fired once; a retry goes through
    snap = model.snapshot()
    assert snap.texts(PEER) == ["hi"]
    assert snap.counters.rejected == {label: 1}
    assert snap.counters.faults_fired == {label: 1}
    assert snap.counters.duplicates == 0


def test_session_expires_after_k_sends_and_only_a_new_token_cures_it(clock: FakeClock) -> None:
    model = make_model(clock, expire_after_sends=2)
    assert accepted(model_send(model, "c1"))
    assert accepted(model_send(model, "c2"))
    expired = {"ret": -14, "errcode": -14, "errmsg": "session timeout"}
    assert model_send(model, "c3") == expired
    assert answer(model.getconfig(token=TOKEN)) == expired
    with pytest.raises(ValueError, match="new one"):
        model.set_token(ACCOUNT, token=TOKEN)
    model.set_token(ACCOUNT, token="token-two-456")
    assert accepted(model_send(model, "c3", token="token-two-456"))
    assert model_send(model, "c4", token=TOKEN) == expired  # the old token stays dead
    snap = model.snapshot()
    assert snap.counters.rejected == {"session_expired": 2}
    assert snap.accounts[ACCOUNT].token_sends == 1


def test_session_expires_on_demand_and_unknown_tokens_are_expired(clock: FakeClock) -> None:
    model = make_model(clock)
    model.expire_session(ACCOUNT)
    assert model_send(model, "c1")["ret"] == -14
    assert model_send(model, "c1", token="never-issued")["ret"] == -14
    assert model.snapshot().counters.accepted == 0


def test_duplicate_client_id_is_answered_ok_and_never_delivered_twice(clock: FakeClock) -> None:
    # Given one send per window: a duplicate must not spend that budget
    model = make_model(clock, rate_limit_sends=1)
    first = model_send(model, "c1", text="first")
    again = model_send(model, "c1", text="first")
    # Then the duplicate is answered like the first send, with the same message_id
    assert accepted(first) and again == first
    assert model_send(model, "c2") == RATE_LIMITED
    # During the lockout every send is refused, a duplicate too
    assert model_send(model, "c1", text="first") == RATE_LIMITED
    snap = model.snapshot()
    assert snap.texts(PEER) == ["first"]
    assert snap.counters.accepted == 1
    assert snap.counters.duplicates == 1


def test_text_over_the_limit_is_refused_for_good(clock: FakeClock) -> None:
    model = make_model(clock)
    assert accepted(model_send(model, "c1", text="x" * 2000))
    assert model_send(model, "c2", text="x" * 2001) == {
        "ret": -1,
        "errcode": -1,
        "errmsg": "text too long",
    }
    assert model.snapshot().counters.rejected == {"text_too_long": 1}


def test_account_faults_fire_before_global_ones_and_only_for_their_account(
    clock: FakeClock,
) -> None:
    model = make_model(clock)
    model.register_account("bot-2", token="token-two-456")
    model.queue_fault(Fault.http_error(503), count=1)
    model.queue_fault(Fault.http_error(502), count=2, account_id=ACCOUNT)
    statuses = []
    for client_id in ("a", "b", "c"):
        outcome = model.sendmessage(
            token=TOKEN, send=SendMessage(PEER, client_id, "hi", context_token=None)
        )
        assert outcome.reply is not None
        statuses.append(outcome.reply.status)
    assert statuses == [502, 502, 503]
    assert accepted(model_send(model, "d", token="token-two-456"))


def test_reset_after_delivery_delivers_then_gives_no_answer(clock: FakeClock) -> None:
    model = make_model(clock)
    model.queue_fault(Fault.reset_after_delivery())
    outcome = model.sendmessage(token=TOKEN, send=SendMessage(PEER, "c1", "hi", None))
    assert outcome == Outcome(reply=None)
    assert model.snapshot().texts(PEER) == ["hi"]


def test_a_qr_script_must_end_at_a_terminal_status(clock: FakeClock) -> None:
    model = make_model(clock)
    with pytest.raises(ValueError, match="last step"):
        model.script_qr(steps=["confirmed", "wait"])
    with pytest.raises(ValueError, match="unknown QR status"):
        model.script_qr(steps=["scanned"])


def test_faults_and_config_survive_a_json_round_trip() -> None:
    for fault in (Fault.hang(2.5, deliver=True), Fault.http_error(429, empty_body=True)):
        assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault
    with pytest.raises(ValueError, match="kind"):
        Fault.from_json({"kind": "explode"})
    with pytest.raises(ValueError, match="rate_limit_sends"):
        SimulatorConfig(rate_limit_sends=0)


# -- HTTP: a real server ------------------------------------------------------------------


@pytest.fixture
def sim_accounts() -> dict[str, str]:
    return {ACCOUNT: TOKEN}


@pytest.fixture
def control(sim: PlatformSimulator) -> SimulatorControl:
    return SimulatorControl(sim.base_url)


def post(
    base_url: str,
    endpoint: str,
    fields: dict[str, Any],
    *,
    token: str = TOKEN,
    timeout: float = TIMEOUT_SECONDS,
) -> requests.Response:
    return requests.post(
        endpoint_url(base_url, endpoint),
        data=encode_body(fields),
        headers=build_headers(token=token),
        timeout=timeout,
    )


def http_send(
    base_url: str, client_id: str, *, text: str = "hi", timeout: float = TIMEOUT_SECONDS
) -> requests.Response:
    fields = sendmessage_fields(
        to_user_id=PEER, client_id=client_id, text=text, context_token="ctx-1"
    )
    return post(base_url, ENDPOINT_SENDMESSAGE, fields, timeout=timeout)


def test_a_well_formed_send_is_delivered(sim: PlatformSimulator, control: SimulatorControl) -> None:
    response = http_send(sim.base_url, "c1", text="héllo")
    assert response.status_code == 200 and accepted(response.json())
    [message] = control.received().messages[PEER]
    assert (message.client_id, message.text, message.account_id) == ("c1", "héllo", ACCOUNT)
    assert message.context_token == "ctx-1"


def test_a_reused_uin_is_counted(sim: PlatformSimulator, control: SimulatorControl) -> None:
    uin = base64.b64encode(b"12345").decode()
    for client_id in ("c1", "c2"):
        fields = sendmessage_fields(
            to_user_id=PEER, client_id=client_id, text="hi", context_token=None
        )
        response = requests.post(
            endpoint_url(sim.base_url, ENDPOINT_SENDMESSAGE),
            data=encode_body(fields),
            headers=build_headers(token=TOKEN, uin=uin),
            timeout=TIMEOUT_SECONDS,
        )
        assert accepted(response.json())
    assert control.received().counters.repeated_uins == 1


def _without(name: str) -> Callable[[dict[str, str]], object]:
    return lambda headers: headers.pop(name)


def _setting(name: str, value: str) -> Callable[[dict[str, str]], object]:
    return lambda headers: headers.__setitem__(name, value)


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (_without("Content-Type"), "Content-Type"),
        (_setting("Content-Type", "text/plain"), "Content-Type"),
        (_without("AuthorizationType"), "AuthorizationType"),
        (_setting("Authorization", "Token abc"), "Authorization"),
        (_without("X-WECHAT-UIN"), "X-WECHAT-UIN"),
        (_setting("X-WECHAT-UIN", "12345"), "X-WECHAT-UIN"),  # not base64
        (_setting("X-WECHAT-UIN", base64.b64encode(b"4294967296").decode()), "X-WECHAT-UIN"),
        (_setting("iLink-App-Id", "app"), "iLink-App-Id"),
        (_setting("iLink-App-ClientVersion", "2.2.0"), "iLink-App-ClientVersion"),
    ],
)
def test_a_malformed_envelope_is_a_400_naming_the_problem(
    sim: PlatformSimulator, mutate: Callable[[dict[str, str]], object], named: str
) -> None:
    headers = build_headers(token=TOKEN)
    mutate(headers)
    fields = sendmessage_fields(to_user_id=PEER, client_id="c1", text="hi", context_token=None)
    response = requests.post(
        endpoint_url(sim.base_url, ENDPOINT_SENDMESSAGE),
        data=encode_body(fields),
        headers=headers,
        timeout=TIMEOUT_SECONDS,
    )
    assert response.status_code == 400
    assert response.json()["ret"] == -1
    assert named in response.json()["errmsg"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "JSON"),
        (json.dumps({"msg": {}}).encode(), "base_info"),
        (json.dumps({"base_info": {"channel_version": 2.4}}).encode(), "channel_version"),
        (json.dumps({"base_info": {"channel_version": ""}}).encode(), "channel_version"),
        (json.dumps({"base_info": "2.4.9"}).encode(), "base_info"),
        (
            json.dumps({"base_info": {"channel_version": "2.4.9", "bot_agent": 7}}).encode(),
            "bot_agent",
        ),
    ],
)
def test_a_malformed_body_is_a_400(sim: PlatformSimulator, body: bytes, named: str) -> None:
    response = requests.post(
        endpoint_url(sim.base_url, ENDPOINT_SENDMESSAGE),
        data=body,
        headers=build_headers(token=TOKEN),
        timeout=TIMEOUT_SECONDS,
    )
    assert response.status_code == 400
    assert named in response.json()["errmsg"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"message_type": 1}, "message_type"),
        ({"message_state": 1}, "message_state"),
        ({"client_id": ""}, "client_id"),
        ({"to_user_id": 7}, "to_user_id"),
        ({"context_token": ""}, "context_token"),
        ({"item_list": []}, "item_list"),
        ({"item_list": [{"type": 2, "image_item": {}}]}, "type"),
    ],
)
def test_malformed_msg_fields_are_a_400(
    sim: PlatformSimulator, control: SimulatorControl, change: dict[str, Any], named: str
) -> None:
    fields = sendmessage_fields(to_user_id=PEER, client_id="c1", text="hi", context_token=None)
    fields["msg"].update(change)
    response = post(sim.base_url, ENDPOINT_SENDMESSAGE, fields)
    assert response.status_code == 400
    assert named in response.json()["errmsg"]
    snap = control.received()
    assert snap.counters.rejected == {"bad_request": 1}
    assert named in snap.bad_requests[0]


def test_an_unknown_token_is_a_session_timeout(sim: PlatformSimulator) -> None:
    fields = sendmessage_fields(to_user_id=PEER, client_id="c1", text="hi", context_token=None)
    response = post(sim.base_url, ENDPOINT_SENDMESSAGE, fields, token="nobody-has-this")
    assert (response.status_code, response.json()) == (
        200,
        {"ret": -14, "errcode": -14, "errmsg": "session timeout"},
    )


@pytest.mark.parametrize(
    ("fault", "status", "body_check"),
    [
        (Fault.http_error(500), 500, lambda body: b"<html>" in body),
        (Fault.http_error(502, empty_body=True), 502, lambda body: body == b""),
        (Fault.http_error(503), 503, lambda body: b"<html>" in body),
        (Fault.http_error(429), 429, lambda body: b"<html>" in body),
        (Fault.html_200(), 200, lambda body: body.startswith(b"<html>")),
        (Fault.garbage(), 200, lambda body: not body.startswith(b"{")),
    ],
)
def test_transport_faults_reach_the_client_as_they_are(
    sim: PlatformSimulator,
    control: SimulatorControl,
    fault: Fault,
    status: int,
    body_check: Callable[[bytes], bool],
) -> None:
    control.queue_fault(fault, account_id=ACCOUNT)
    response = http_send(sim.base_url, "c1")
    assert response.status_code == status
    assert body_check(response.content)
    assert accepted(http_send(sim.base_url, "c1").json())
    snap = control.received()
    assert snap.texts(PEER) == ["hi"]
    assert snap.counters.rejected == {fault.name: 1}


def test_reset_after_delivery_then_a_resend_is_a_duplicate(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given the connection dies after the platform delivered the message
    control.queue_fault(Fault.reset_after_delivery())
    # When the client sends, it cannot know the message arrived
    with pytest.raises(requests.ConnectionError):
        http_send(sim.base_url, "c1")
    assert control.received().texts(PEER) == ["hi"]
    # And a resend with the same client_id is answered ok but not delivered again
    assert accepted(http_send(sim.base_url, "c1").json())
    snap = control.received()
    assert snap.texts(PEER) == ["hi"]
    assert (snap.counters.accepted, snap.counters.duplicates) == (1, 1)
    assert snap.counters.faults_fired == {"reset_after_delivery": 1}


def test_reset_before_delivery_delivers_nothing(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    control.queue_fault(Fault.reset_before_delivery())
    with pytest.raises(requests.ConnectionError):
        http_send(sim.base_url, "c1")
    assert control.received().texts(PEER) == []
    assert accepted(http_send(sim.base_url, "c1").json())
    snap = control.received()
    assert (snap.counters.accepted, snap.counters.duplicates) == (1, 0)


@pytest.mark.parametrize("deliver", [False, True])
def test_a_hang_outlasts_the_client_timeout(
    sim: PlatformSimulator, control: SimulatorControl, deliver: bool
) -> None:
    control.queue_fault(Fault.hang(30.0, deliver=deliver))
    with pytest.raises(requests.Timeout):
        http_send(sim.base_url, "c1", timeout=0.2)
    # The server notices the client gave up; the send is no longer in flight.
    snap = control.wait_until(lambda s: s.accounts[ACCOUNT].in_flight == 0, timeout_seconds=3)
    assert snap.texts(PEER) == (["hi"] if deliver else [])


def test_stop_does_not_wait_for_a_hanging_request() -> None:
    simulator = PlatformSimulator().start()
    simulator.model.register_account(ACCOUNT, token=TOKEN)
    simulator.model.queue_fault(Fault.hang(60.0))
    errors: list[Exception] = []

    def send() -> None:
        try:
            http_send(simulator.base_url, "c1", timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(
        lambda: simulator.model.snapshot().accounts[ACCOUNT].in_flight == 1,
        timeout=3,
        interval=0.005,
        message="a send in flight",
    )
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 2.0
    sender.join(timeout=5)
    assert not sender.is_alive()
    assert len(errors) == 1  # the client sees the connection end without an answer


def test_qr_login_through_an_expired_code_and_a_redirect(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given the first code expires and the second is scanned on another host
    control.script_qr(steps=["wait", "scaned", "scaned_but_redirect", "confirmed"], expire_first=1)

    def new_code(base_url: str) -> str:
        url = f"{endpoint_url(base_url, ENDPOINT_QRCODE)}?bot_type=3"
        qr = requests.get(url, timeout=TIMEOUT_SECONDS).json()
        assert qr["qrcode_img_content"].startswith("http")
        return str(qr["qrcode"])

    # When a client runs the login loop
    base_url = sim.base_url
    qrcode = new_code(base_url)
    seen: list[str] = []
    for _ in range(20):
        status = requests.get(
            endpoint_url(base_url, ENDPOINT_QRCODE_STATUS),
            params={"qrcode": qrcode},
            timeout=TIMEOUT_SECONDS,
        ).json()
        seen.append(status["status"])
        if status["status"] == "expired":
            qrcode = new_code(base_url)
        elif status["status"] == "scaned_but_redirect":
            base_url = f"http://{status['redirect_host']}"
        elif status["status"] == "confirmed":
            break
    # Then it ends confirmed with a fresh account whose token sends
    assert seen == ["wait", "expired", "wait", "scaned", "scaned_but_redirect", "confirmed"]
    assert status["baseurl"] == base_url
    assert status["ilink_user_id"].endswith("@im.wechat")
    fields = sendmessage_fields(to_user_id=PEER, client_id="q1", text="hi", context_token=None)
    response = post(status["baseurl"], ENDPOINT_SENDMESSAGE, fields, token=status["bot_token"])
    assert accepted(response.json())
    snap = control.received()
    assert snap.messages[PEER][0].account_id == status["ilink_bot_id"]
    assert snap.qr_codes[qrcode].account_id == status["ilink_bot_id"]
    assert snap.qr_codes[qrcode].status == "confirmed"


def test_getupdates_hands_out_inbound_messages_once(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    context_token = control.inject_inbound(ACCOUNT, from_user_id=PEER, text="hello bot")
    control.inject_inbound(ACCOUNT, from_user_id="other@im.wechat", text="hi", context_token="c-9")
    first = post(sim.base_url, ENDPOINT_GETUPDATES, {"get_updates_buf": ""}).json()
    assert first["ret"] == 0
    assert [(m["from_user_id"], m["context_token"]) for m in first["msgs"]] == [
        (PEER, context_token),
        ("other@im.wechat", "c-9"),
    ]
    assert first["msgs"][0]["item_list"][0]["text_item"]["text"] == "hello bot"
    assert first["longpolling_timeout_ms"] == 35_000
    control.configure(longpolling_timeout_ms=100)  # the next poll finds nothing: held 0.1 s
    second = post(
        sim.base_url, ENDPOINT_GETUPDATES, {"get_updates_buf": first["get_updates_buf"]}
    ).json()
    assert second["msgs"] == []
    assert second["longpolling_timeout_ms"] == 100
    assert second["get_updates_buf"]
    assert control.received().counters.requests["getupdates"] == 2


def test_getconfig_is_the_session_check_and_sendtyping_answers_ok(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    config = post(sim.base_url, ENDPOINT_GETCONFIG, {"ilink_user_id": PEER}).json()
    assert config["ret"] == 0
    typing = {"ilink_user_id": PEER, "typing_ticket": config["typing_ticket"], "status": 1}
    assert post(sim.base_url, ENDPOINT_SENDTYPING, typing).json() == {"ret": 0}
    control.expire_session(ACCOUNT)
    assert post(sim.base_url, ENDPOINT_GETCONFIG, {"ilink_user_id": PEER}).json()["ret"] == -14
    assert post(sim.base_url, ENDPOINT_GETUPDATES, {"get_updates_buf": ""}).json()["ret"] == -14


def test_the_control_api_drives_and_inspects_the_simulator(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given an account, a rate limit and a session expiry set over HTTP
    control.register_account("bot-2", token="token-two-456")
    config = control.configure(rate_limit_sends=1, lockout_seconds=100)
    assert config["rate_limit_sends"] == 1
    assert control.config()["lockout_seconds"] == 100
    # When the account sends twice
    fields = sendmessage_fields(to_user_id="p2", client_id="x1", text="one", context_token=None)
    assert accepted(post(sim.base_url, ENDPOINT_SENDMESSAGE, fields, token="token-two-456").json())
    fields["msg"]["client_id"] = "x2"
    refused = post(sim.base_url, ENDPOINT_SENDMESSAGE, fields, token="token-two-456").json()
    assert refused["ret"] == -2
    # Then the inspection shows it all
    snap = control.received()
    assert snap.texts("p2") == ["one"]
    assert snap.counters.rejected == {"rate_limited": 1}
    assert snap.accounts["bot-2"].lockout_until is not None
    assert len(snap.accounts["bot-2"].accepted_at) == 1
    # And mistakes and resets are explicit
    with pytest.raises(SimulatorControlError, match="unknown account"):
        control.expire_session("nobody")
    with pytest.raises(SimulatorControlError, match="unknown config"):
        control.configure(rate_limit=3)
    control.reset()
    snap = control.received()
    assert (snap.messages, snap.accounts) == ({}, {})
    assert control.config()["rate_limit_sends"] is None


def test_control_can_set_a_new_token_and_queue_faults_per_account(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    control.queue_fault(Fault.prepare_failed(), count=2, account_id=ACCOUNT)
    assert http_send(sim.base_url, "c1").json()["errmsg"] == "prepare failed"
    control.set_token(ACCOUNT, token="token-new-789")
    # Faults come before the session check: the old token still belongs to the account
    assert http_send(sim.base_url, "c1").json()["errmsg"] == "prepare failed"
    assert http_send(sim.base_url, "c1").json()["ret"] == -14
    fields = sendmessage_fields(to_user_id=PEER, client_id="c1", text="hi", context_token=None)
    assert accepted(post(sim.base_url, ENDPOINT_SENDMESSAGE, fields, token="token-new-789").json())
    assert control.received().counters.faults_fired == {"prepare_failed": 2}


def test_concurrent_sends_of_one_account_are_seen_in_flight_together(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given each send is held 0.5 s by the server
    control.configure(send_latency_seconds=0.5)
    results: list[int] = []

    def send(client_id: str) -> None:
        results.append(http_send(sim.base_url, client_id).json()["ret"])

    # When a second send starts while the first is still held
    first = threading.Thread(target=send, args=("c1",))
    first.start()
    control.wait_until(lambda s: s.accounts[ACCOUNT].in_flight == 1, timeout_seconds=3)
    second = threading.Thread(target=send, args=("c2",))
    second.start()
    first.join(timeout=5)
    second.join(timeout=5)
    # Then the simulator saw both in flight at once
    assert results == [0, 0]
    report = control.received().accounts[ACCOUNT]
    assert (report.max_in_flight, report.in_flight) == (2, 0)
    assert len(report.accepted_at) == 2


def test_sequential_sends_never_overlap(sim: PlatformSimulator, control: SimulatorControl) -> None:
    control.configure(send_latency_seconds=0.01)
    for index in range(3):
        assert accepted(http_send(sim.base_url, f"c{index}").json())
    assert control.received().accounts[ACCOUNT].max_in_flight == 1


def test_serve_forever_serves_until_stopped() -> None:
    started: list[PlatformSimulator] = []
    server = threading.Thread(
        target=serve_forever,
        kwargs={
            "host": "127.0.0.1",
            "port": 0,
            "config": SimulatorConfig(rate_limit_sends=7),
            "ready": started.append,
        },
    )
    server.start()
    wait_until(lambda: bool(started), timeout=3, interval=0.005, message="the server up")
    control = SimulatorControl(started[0].base_url)
    assert control.config()["rate_limit_sends"] == 7
    started[0].stop()
    server.join(timeout=5)
    assert not server.is_alive()
