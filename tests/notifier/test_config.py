"""The notifier's configuration: one reader of every variable, secrets without defaults,
bad values refused at start with one clear line naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from events.config import ConfigError
from services.notifier.adapters.smtp import SmtpSettings, TlsMode
from services.notifier.config import Settings

LONG = "a-secret-that-is-at-least-32-bytes-long"
ROOT = Path(__file__).resolve().parents[2]


def test_the_unsubscribe_secret_is_the_portal_jwt_secret_unless_the_notifier_has_its_own() -> None:
    assert Settings.from_env({"PORTAL_JWT_SECRET": LONG}).unsubscribe_secret == LONG
    own = Settings.from_env({"PORTAL_JWT_SECRET": LONG, "NOTIFIER_UNSUBSCRIBE_SECRET": LONG + "-own"})
    assert own.unsubscribe_secret == LONG + "-own"
    assert Settings.from_env({"NOTIFIER_UNSUBSCRIBE_SECRET": LONG}).unsubscribe_secret == LONG


def test_without_a_secret_the_notifier_refuses_to_start_with_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})
    message = str(raised.value)
    assert "PORTAL_JWT_SECRET" in message and "PORTAL_DEV_MODE" in message and "\n" not in message


def test_only_the_development_switch_starts_without_a_secret_and_then_no_secret_is_written_in_the_source() -> None:
    first = Settings.from_env({"PORTAL_DEV_MODE": "true"})
    second = Settings.from_env({"PORTAL_DEV_MODE": "true"})
    assert first.dev_mode and first.secret != second.secret and len(first.secret) >= 32
    with pytest.raises(ConfigError):
        Settings.from_env({"PORTAL_DEV_MODE": "false"})
    source = (ROOT / "services/notifier/config.py").read_text()
    assert "dev-secret" not in source


@pytest.mark.parametrize(("env", "message"), [
    ({"NOTIFIER_UNSUBSCRIBE_SECRET": "short"}, "NOTIFIER_UNSUBSCRIBE_SECRET is shorter than 32 bytes"),
    ({"PORTAL_JWT_SECRET": "short"}, "PORTAL_JWT_SECRET is shorter than 32 bytes"),
    ({"NOTIFIER_RETRY_HOURS": "0"}, "NOTIFIER_RETRY_HOURS='0' is out of range"),
    ({"NOTIFIER_RETRY_HOURS": "soon"}, "NOTIFIER_RETRY_HOURS='soon' is not a whole number"),
    ({"SMTP_TLS": "ssl"}, "SMTP_TLS='ssl' is not one of none/starttls/tls"),
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT='smtp' is not a whole number"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT='70000' is out of range"),
    ({"SMTP_USERNAME": "u"}, "username and password"),
    ({"SMTP_POOL_SIZE": "0"}, "SMTP_POOL_SIZE='0' is out of range"),
    ({"SMTP_TIMEOUT": "soon"}, "SMTP_TIMEOUT='soon' is not a number"),
    ({"MAIL_FROM": "nobody"}, "MAIL_FROM='nobody' has no email address"),
    ({"PORTAL_BASE_URL": "portal.example"}, "PORTAL_BASE_URL='portal.example' is not an http(s) URL"),
    ({"PORTAL_DEV_MODE": "maybe"}, "PORTAL_DEV_MODE='maybe' is not a boolean"),
])
def test_bad_values_fail_at_start_with_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"PORTAL_JWT_SECRET": LONG, **env})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_secret_is_never_echoed_in_an_error() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"PORTAL_JWT_SECRET": "hunter2-short"})
    assert "hunter2" not in str(raised.value)


def test_the_retry_period_is_read() -> None:
    assert Settings.from_env({"PORTAL_JWT_SECRET": LONG, "NOTIFIER_RETRY_HOURS": "72"}).retry_hours == 72
    assert Settings.from_env({"PORTAL_JWT_SECRET": LONG}).retry_hours == 24


def test_smtp_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({
        "PORTAL_JWT_SECRET": LONG, "SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525", "SMTP_USERNAME": "u",
        "SMTP_PASSWORD": "hunter2-secret", "SMTP_TLS": "STARTTLS", "SMTP_TIMEOUT": "5", "SMTP_POOL_SIZE": "2",
    }).smtp
    assert (settings.host, settings.effective_port, settings.tls) == ("smtp.example.com", 2525, TlsMode.STARTTLS)
    assert (settings.username, settings.password, settings.timeout, settings.pool_size) == (
        "u", "hunter2-secret", 5.0, 2)
    assert "hunter2" not in repr(settings)
    assert Settings.from_env({"PORTAL_JWT_SECRET": LONG}).smtp.effective_port == 1025  # the local sink


@pytest.mark.parametrize(("tls", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
def test_the_smtp_port_follows_the_tls_mode_when_not_given(tls: str, port: int) -> None:
    assert SmtpSettings(tls=TlsMode(tls)).effective_port == port


def test_every_variable_read_is_listed_once_with_the_shared_kafka_ones() -> None:
    names = Settings.variables()
    assert len(names) == len(set(names))
    kafka_source = (ROOT / "events/config.py").read_text()
    read_by_kafka = set(re.findall(r'"(KAFKA_[A-Z_]+)"', kafka_source))
    assert read_by_kafka <= set(names), read_by_kafka - set(names)
    for name in ("NOTIFIER_DB", "SMTP_HOST", "MAIL_FROM", "PORTAL_JWT_SECRET", "PORTAL_DEV_MODE",
                 "NOTIFIER_UNSUBSCRIBE_SECRET", "NOTIFIER_PUBLIC_URL", "NOTIFIER_RETRY_HOURS"):
        assert name in names
    notifier_sources = "".join(p.read_text() for p in (ROOT / "services/notifier").rglob("*.py")
                               if p.name != "config.py")
    assert "os.environ" not in notifier_sources  # config.py is the only reader
