"""Who may drive the simulator: its control API (``/_sim/``) can reset it, replace its
tokens and read every message it received. On a loopback address it needs nothing, as
ever; ``delivery simulator`` refuses any other address unless ``--allow-remote`` says so,
and then every control call must carry the token it printed. Real processes, real HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from delivery.devstack.processes import ManagedProcess
from delivery.ilink.protocol import ENDPOINT_GETUPDATES
from delivery.simulator import PlatformSimulator, SimulatorControl, SimulatorControlError
from tests.integration.test_simulator import post

TOKEN = "token-one-123"
COMMAND = [sys.executable, "-m", "delivery", "simulator", "--port", "0"]


def test_the_command_refuses_a_non_loopback_address_without_allow_remote() -> None:
    # When the simulator is asked to listen on every interface
    try:
        done = subprocess.run(
            [*COMMAND, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the simulator served on 0.0.0.0 (it should have refused at once)")

    # Then it refuses at once, saying why and what to do
    assert done.returncode == 2
    assert "0.0.0.0 is not a loopback address" in done.stderr
    assert "--allow-remote" in done.stderr
    # And so does the simulator as a library, without a token for its control API
    with pytest.raises(ValueError, match="needs a control token"):
        PlatformSimulator(host="0.0.0.0")


def test_allowed_on_a_remote_address_the_control_api_needs_the_printed_token(
    tmp_path: Path, http: requests.Session
) -> None:
    # Given the simulator serving on every interface, as allowed
    log = tmp_path / "simulator.log"
    argv = [*COMMAND, "--host", "0.0.0.0", "--allow-remote", "--account", f"bot-1={TOKEN}"]
    simulator = ManagedProcess(argv, env=dict(os.environ), log_path=log)
    try:
        simulator.wait_for_log("control token", timeout_seconds=60)
        text = simulator.log_text()
        port = re.search(r"simulator at http://0\.0\.0\.0:(\d+)", text)
        token = re.search(r"control token: (\S+)", text)
        assert port is not None and token is not None, text
        base_url = f"http://127.0.0.1:{port[1]}"

        # Then a control call without the token, or with another, is refused
        for presented in (None, "not-the-token"):
            with pytest.raises(SimulatorControlError, match="HTTP 401"):
                SimulatorControl(base_url, token=presented).received()
        assert http.post(f"{base_url}/_sim/reset", json={}, timeout=5).status_code == 401

        # And with it, the simulator is driven as ever
        control = SimulatorControl(base_url, token=token[1])
        sent = control.inbound("bot-1", from_user_id="u@im.wechat", text="hi")
        # And the platform's own endpoints need only the bot's token
        answer = post(base_url, ENDPOINT_GETUPDATES, {"get_updates_buf": ""}, token=TOKEN)
        assert [str(m["message_id"]) for m in answer.json()["msgs"]] == [sent.message_id]
    finally:
        simulator.stop()


def test_a_control_token_is_required_wherever_one_is_set(http: requests.Session) -> None:
    with PlatformSimulator(control_token="a-token-of-my-own") as simulator:
        with pytest.raises(SimulatorControlError, match="HTTP 401"):
            SimulatorControl(simulator.base_url).config()
        control = SimulatorControl(simulator.base_url, token="a-token-of-my-own")
        assert control.config()["rate_limit_sends"] is None
        # (the page a QR code points to is opened by a phone, which sends no header)
        page = http.get(f"{simulator.base_url}/_sim/qr/scan?qrcode=q1", timeout=5)
        assert page.status_code == 200
