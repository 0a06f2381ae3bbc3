"""Bad configuration stops a service at start with one clear line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from events.config import DEFAULT_SESSION_TIMEOUT_MS, ConfigError, KafkaSettings
from tests.secret import SECRET

ROOT = Path(__file__).resolve().parents[2]


def start(service: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SMTP_", "PORTAL_", "NOTIFIER_",
                                                                       "CLIENT_DIRECTORY_", "MAIL_"))}
    base["CLIENT_DIRECTORY_DB"] = f"sqlite:///{tmp_path}/cd.db"
    base["NOTIFIER_DB"] = f"sqlite:///{tmp_path}/n.db"
    base["PORTAL_JWT_SECRET"] = SECRET
    return subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("service", "variable", "value", "expected"),
    [
        ("client_directory", "KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS"),
        ("client_directory", "CLIENT_DIRECTORY_DB", "mysql://x/y", "CLIENT_DIRECTORY_DB"),
        ("client_directory", "CLIENT_DIRECTORY_HTTP_PORT", "eighty", "CLIENT_DIRECTORY_HTTP_PORT"),
        ("client_directory", "PORTAL_JWT_SECRET", "short", "PORTAL_JWT_SECRET"),
        ("client_directory", "PORTAL_BASE_URL", "portal.example", "PORTAL_BASE_URL"),
        ("client_directory", "KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "KAFKA_SASL_USERNAME"),
        ("notifier", "SMTP_TLS", "ssl3", "SMTP_TLS"),
        ("notifier", "SMTP_PORT", "x", "SMTP_PORT"),
        ("notifier", "MAIL_FROM", "nobody", "MAIL_FROM"),
        ("notifier", "NOTIFIER_DB", "sqlite://host/x.db", "NOTIFIER_DB"),
        ("notifier", "NOTIFIER_HTTP_PORT", "70000", "NOTIFIER_HTTP_PORT"),
        ("notifier", "KAFKA_MAX_POLL_RECORDS", "0", "KAFKA_MAX_POLL_RECORDS"),
    ],
)
def test_a_bad_value_stops_the_service_with_one_line_naming_it(
    service: str, variable: str, value: str, expected: str, tmp_path: Path
) -> None:
    result = start(service, {variable: value}, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "configuration error" in lines[0]


# ---- the shared pieces, in process -------------------------------------------------------


def test_kafka_settings_name_every_variable_they_read() -> None:
    names = KafkaSettings.variables()
    assert names[0] == "KAFKA_BOOTSTRAP_SERVERS"
    assert {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE", "KAFKA_ACKS",
            "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_MAX_POLL_RECORDS"} <= set(names)
    assert len(names) == len(KafkaSettings.model_fields)


def test_kafka_settings_read_only_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_ACKS", "0")
    assert KafkaSettings("kafka:9092").acks == "all"  # direct construction reads no environment
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2", "KAFKA_ENABLE_IDEMPOTENCE": "true",
                                       "KAFKA_SESSION_TIMEOUT_MS": ""})
    assert (settings.bootstrap_servers, settings.acks, settings.enable_idempotence) == ("a:1,b:2", "all", True)
    assert settings.session_timeout_ms == DEFAULT_SESSION_TIMEOUT_MS  # empty means unset
    secured = KafkaSettings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u",
                                      "KAFKA_SASL_PASSWORD": "p"})
    assert secured.sasl_mechanism == "PLAIN" and "'p'" not in repr(secured)


def test_each_bad_value_is_one_line_naming_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "localhost", "KAFKA_ACKS": "2",
                                "KAFKA_MAX_POLL_RECORDS": "0"})
    assert sorted(line.split("=")[0] for line in caught.value.problems) == [
        "KAFKA_ACKS", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_MAX_POLL_RECORDS"]
    assert str(caught.value).count("\n") == 2
    with pytest.raises(ConfigError, match=r"^KAFKA_SASL_USERNAME is not set \(KAFKA_SECURITY_PROTOCOL=SASL_SSL\)$"):
        KafkaSettings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match=r"^KAFKA_SSL_CAFILE='/no/such/ca.crt': is not a readable file$"):
        KafkaSettings.from_env({"KAFKA_SSL_CAFILE": "/no/such/ca.crt"})
