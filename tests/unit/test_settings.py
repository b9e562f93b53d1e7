"""Settings: defaults that make sense, and a refusal naming the variable for nonsense."""

from __future__ import annotations

import pytest

from delivery.errors import ConfigError
from delivery.settings import as_env, from_env, load_settings


def test_defaults_are_sane() -> None:
    settings = load_settings()
    assert settings.chunk_max_chars == 2000
    assert settings.max_text_chars == 100_000
    assert settings.delivery_deadline_seconds == 24 * 3600
    assert settings.max_countdown_seconds < settings.visibility_timeout_seconds
    # minutes to hours, as users of the platform report its penalties
    assert 60 <= settings.cooldown_base_seconds <= settings.cooldown_max_seconds
    assert settings.cooldown_growth > 1 and settings.cooldown_max_seconds >= 3600
    assert settings.worker_watchdog_seconds == 120


def test_the_client_version_defaults_to_the_newest_official_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DELIVERY_CLIENT_VERSION", raising=False)
    assert load_settings().ilink_client_version.header_value == "132105"  # 2.4.9
    monkeypatch.setenv("DELIVERY_CLIENT_VERSION", " 2.5.0 ")
    settings = load_settings()
    assert (settings.client_version, settings.ilink_client_version.packed) == ("2.5.0", 132352)


def test_redis_url_defaults_to_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DELIVERY_REDIS_URL", raising=False)
    monkeypatch.setenv("DELIVERY_BROKER_URL", "redis://example:6379/3")
    assert load_settings().limiter_redis_url == "redis://example:6379/3"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DELIVERY_SEND_RATE_PER_MINUTE", "fast", "DELIVERY_SEND_RATE_PER_MINUTE='fast'"),
        ("DELIVERY_SEND_RATE_PER_MINUTE", "0", "DELIVERY_SEND_RATE_PER_MINUTE='0'"),
        ("DELIVERY_CHUNK_MAX_CHARS", "10", "DELIVERY_CHUNK_MAX_CHARS='10'"),
        ("DELIVERY_BACKOFF_MAX_SECONDS", "7200", "DELIVERY_BACKOFF_MAX_SECONDS=7200"),
        ("DELIVERY_RETRY_JITTER", "maybe", "DELIVERY_RETRY_JITTER='maybe'"),
        ("DELIVERY_SEND_LOCK_TTL_SECONDS", "5", "DELIVERY_SEND_LOCK_TTL_SECONDS"),
        ("DELIVERY_COOLDOWN_BASE_SECONDS", "30000", "DELIVERY_COOLDOWN_BASE_SECONDS"),
        ("DELIVERY_COOLDOWN_GROWTH", "0.5", "DELIVERY_COOLDOWN_GROWTH='0.5'"),
        ("DELIVERY_READER_DROPS_BEFORE_HOLD", "0", "DELIVERY_READER_DROPS_BEFORE_HOLD='0'"),
        ("DELIVERY_CLIENT_VERSION", "2.4", "DELIVERY_CLIENT_VERSION='2.4': must be major.minor"),
        ("DELIVERY_CLIENT_VERSION", "2.256.0", "DELIVERY_CLIENT_VERSION='2.256.0'"),
        ("DELIVERY_CLIENT_VERSION", "132105", "DELIVERY_CLIENT_VERSION='132105'"),
        ("DELIVERY_WORKER_WATCHDOG_SECONDS", "-1", "DELIVERY_WORKER_WATCHDOG_SECONDS='-1'"),
        ("DELIVERY_WORKER_WATCHDOG_SECONDS", "0.5", "DELIVERY_WORKER_WATCHDOG_SECONDS"),
    ],
)
def test_nonsense_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings()
    assert expected in str(caught.value)


def test_url_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_BROKER_URL", "")
    monkeypatch.setenv("DELIVERY_VISIBILITY_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings(broker_url=["redis://:hunter2@host"])
    assert "hunter2" not in str(caught.value)
    assert "DELIVERY_BROKER_URL" in str(caught.value)


SECRET = "whsec-0123456789abcdef"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"DELIVERY_INBOUND_WEBHOOK_URL": "ftp://agent.example/in"},
            "DELIVERY_INBOUND_WEBHOOK_URL must be an absolute http(s) URL",
        ),
        (
            {"DELIVERY_INBOUND_WEBHOOK_URL": "agent.example/inbound"},
            "DELIVERY_INBOUND_WEBHOOK_URL must be an absolute http(s) URL",
        ),
        (
            {"DELIVERY_INBOUND_WEBHOOK_URL": "https://agent.example/in"},
            "DELIVERY_INBOUND_WEBHOOK_SECRET must be set with DELIVERY_INBOUND_WEBHOOK_URL",
        ),
        (
            {
                "DELIVERY_INBOUND_WEBHOOK_URL": "https://agent.example/in",
                "DELIVERY_INBOUND_WEBHOOK_SECRET": "short-secret",
            },
            "DELIVERY_INBOUND_WEBHOOK_SECRET must be at least 16 printable ASCII",
        ),
        (
            {
                "DELIVERY_INBOUND_WEBHOOK_URL": "https://agent.example/in",
                "DELIVERY_INBOUND_WEBHOOK_SECRET": "a secret with spaces in it",
            },
            "DELIVERY_INBOUND_WEBHOOK_SECRET must be at least 16 printable ASCII",
        ),
        (
            {"DELIVERY_INBOUND_WEBHOOK_SECRET": SECRET},
            "DELIVERY_INBOUND_WEBHOOK_SECRET is set but DELIVERY_INBOUND_WEBHOOK_URL is not",
        ),
        ({"DELIVERY_INBOUND_CALLBACK": "agent.on_inbound"}, "DELIVERY_INBOUND_CALLBACK"),
        ({"DELIVERY_INBOUND_TASK": "agent inbound"}, "DELIVERY_INBOUND_TASK"),
    ],
)
def test_a_malformed_inbound_hand_over_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings()
    assert expected in str(caught.value)
    for value in env.values():
        if "secret" in value or "agent.example" in value:
            assert value not in str(caught.value)  # neither the URL nor the secret shown


def test_the_configured_inbound_hand_overs_are_the_channels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().inbound_channels == ()
    monkeypatch.setenv("DELIVERY_INBOUND_TASK", "agent.on_inbound")
    monkeypatch.setenv("DELIVERY_INBOUND_WEBHOOK_URL", "https://agent.example/in?key=k")
    monkeypatch.setenv("DELIVERY_INBOUND_WEBHOOK_SECRET", SECRET)
    settings = load_settings()
    assert settings.inbound_channels == ("task", "webhook")
    assert SECRET not in repr(settings) and "agent.example" not in repr(settings)


def test_explicit_values_win_over_the_environment_and_an_unknown_name_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_SEND_RATE_PER_MINUTE", "20")
    assert load_settings().send_rate_per_minute == 20
    assert load_settings(send_rate_per_minute=30).send_rate_per_minute == 30
    with pytest.raises(ConfigError, match="no such setting: send_rate_per_hour"):
        load_settings(send_rate_per_hour=30)


def test_a_child_process_is_given_the_settings_as_variables() -> None:
    # Given settings with explicit values of every kind
    settings = load_settings(
        reader_limits=False,
        send_burst=3,
        chunk_gap_seconds=0.25,
        inbound_webhook_url="https://agent.example/in",
        inbound_webhook_secret="a-good-secret-0123456789",
    )

    # When they are turned into variables and read back
    env = as_env(settings)
    again = load_settings(**from_env(env))

    # Then the child reads the same values
    assert env["DELIVERY_READER_LIMITS"] == "false"
    assert env["DELIVERY_INBOUND_WEBHOOK_SECRET"] == "a-good-secret-0123456789"
    assert again == settings
