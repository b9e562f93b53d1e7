"""The protocol's own facts: the client version and the lossless ``message_id``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.ilink.protocol import (
    MESSAGE_ID_MAX,
    ClientVersion,
    base_info,
    build_get_headers,
    build_headers,
    message_id_of,
)


@pytest.mark.parametrize(
    ("text", "header", "channel"),
    [
        ("2.4.9", "132105", "2.4.9"),
        ("2.2.0", "131584", "2.2.0"),
        ("0.0.0", "0", "0.0.0"),
        ("255.255.255", str(2**24 - 1), "255.255.255"),
        (" 1.0.11 ", "65547", "1.0.11"),
    ],
)
def test_one_version_gives_the_header_and_the_channel_version(
    text: str, header: str, channel: str
) -> None:
    version = ClientVersion.parse(text)
    assert (version.header_value, version.channel_version) == (header, channel)
    headers = build_headers(token="t", client_version=version)
    assert (headers["iLink-App-Id"], headers["iLink-App-ClientVersion"]) == ("bot", header)
    assert base_info(client_version=version) == {"channel_version": channel}


@pytest.mark.parametrize("text", ["2.4", "2.4.9.1", "2.256.0", "02.4.9", "-1.0.0", "v2.4.9", ""])
def test_a_malformed_version_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"major\.minor\.patch|0\.\.255"):
        ClientVersion.parse(text)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
def test_a_packed_version_unpacks_to_itself(major: int, minor: int, patch: int) -> None:
    version = ClientVersion(major, minor, patch)
    assert ClientVersion.unpack(version.packed) == version
    assert ClientVersion.parse(str(version)) == version


def test_the_qr_request_carries_no_token() -> None:
    headers = build_headers(token=None)
    assert "Authorization" not in headers
    assert headers["AuthorizationType"] == "ilink_bot_token"
    assert build_get_headers() == {"iLink-App-Id": "bot", "iLink-App-ClientVersion": "132105"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"ret":0,"message_id":9007199254740993}', "9007199254740993"),  # 2**53 + 1
        (f'{{"ret":0,"message_id":{MESSAGE_ID_MAX}}}', str(MESSAGE_ID_MAX)),
        ('{"ret":0,"message_id":"7318001"}', "7318001"),
        ('{"ret":0}', None),
        (f'{{"ret":0,"message_id":{MESSAGE_ID_MAX + 1}}}', None),
        ('{"ret":0,"message_id":-5}', None),
        ('{"ret":0,"message_id":1.5}', None),
        ('{"ret":0,"message_id":null}', None),
        ('{"msg":{"message_id":5}}', None),  # only the answer's own field
        ("not json", None),
    ],
)
def test_message_id_keeps_every_digit(body: str, expected: str | None) -> None:
    assert message_id_of(body) == expected


def test_a_float_parser_would_have_lost_the_digits() -> None:
    body = '{"ret":0,"message_id":18446744073709551557}'
    assert message_id_of(body) == "18446744073709551557"
    assert str(int(float(json.loads(body)["message_id"]))) != "18446744073709551557"
