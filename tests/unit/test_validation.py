"""Input validation: every kind of bad input is refused with a message naming it."""

from __future__ import annotations

import re

import pytest

from delivery import errors
from delivery.validation import (
    parse_message_id,
    validate_account_id,
    validate_base_url,
    validate_context_token,
    validate_recipient,
    validate_text,
    validate_token,
)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "text is empty"),
        ("   \n\t ", "only whitespace"),
        ("x" * 101, "101 characters; the maximum is 100"),
        ("ok\x00no", "control character U+0000 at index 2"),
        ("bell\x07", "U+0007 at index 4"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("lone \ud800 surrogate", "lone surrogate U+D800 at index 5"),
        (b"bytes", "must be a str, not bytes"),
        (None, "must be a str, not NoneType"),
    ],
)
def test_bad_text_is_refused_with_its_reason(text: object, error: str) -> None:
    with pytest.raises(errors.InvalidText, match=re.escape(error)):
        validate_text(text, max_chars=100)


def test_good_text_keeps_tabs_newlines_and_emoji() -> None:
    text = "line\tone\r\nline two 👩🏽‍💻 ✓"
    assert validate_text(text, max_chars=100) == text


@pytest.mark.parametrize(
    "value", ["", " u", "u ser", "a/b", "x" * 257, "é@im.wechat", "-leading", 42]
)
def test_bad_recipient_is_refused(value: object) -> None:
    with pytest.raises(errors.InvalidRecipient):
        validate_recipient(value)


@pytest.mark.parametrize("value", ["o9cq80Ab-_x@im.wechat", "wxid_abc", "u:1+2=3"])
def test_platform_shaped_ids_are_accepted(value: str) -> None:
    assert validate_recipient(value) == value
    assert validate_account_id(value) == value


def test_token_errors_never_repeat_the_token() -> None:
    secret = "s3cret token with spaces"
    with pytest.raises(errors.InvalidToken) as caught:
        validate_token(secret)
    assert secret not in str(caught.value)
    with pytest.raises(errors.InvalidToken, match="minimum is 8"):
        validate_token("short")
    with pytest.raises(errors.InvalidContextToken) as caught_ctx:
        validate_context_token("ctx with space")
    assert "ctx with space" not in str(caught_ctx.value)


@pytest.mark.parametrize(
    "url", ["", "ilinkai.weixin.qq.com", "ftp://x", "https://user:pw@host", "https://h/?a=1"]
)
def test_bad_base_url_is_refused(url: str) -> None:
    with pytest.raises(errors.InvalidBaseUrl) as caught:
        validate_base_url(url)
    assert "pw" not in str(caught.value)


def test_base_url_loses_its_trailing_slash() -> None:
    assert validate_base_url("https://ilinkai.weixin.qq.com/") == "https://ilinkai.weixin.qq.com"


@pytest.mark.parametrize("value", ["", "abc", "-1", "01", "1.5", "٣", "9" * 20, None, True])
def test_bad_message_ids_are_refused(value: object) -> None:
    with pytest.raises(errors.InvalidMessageId):
        parse_message_id(value)


def test_message_id_round_trip() -> None:
    assert parse_message_id("42") == 42


def test_every_input_error_is_a_value_error_and_a_delivery_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_text("", max_chars=10)
    assert issubclass(errors.InvalidInput, errors.DeliveryError)
