"""The notifier's configuration: every environment variable it reads, with its default and
validation, in one place (`Environment`), turned into `Settings` once at start.

A bad value is a `ConfigError` of one line naming the variable. No secret has a default: the
unsubscribe links are signed with `NOTIFIER_UNSUBSCRIBE_SECRET` (or `PORTAL_JWT_SECRET`), and
without either the notifier refuses to start unless `PORTAL_DEV_MODE=true` (a developer's
machine), which signs with a random secret of the process.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from events.config import ConfigError, KafkaSettings, StoreUrl
from events.tracing import TracingSettings
from services.notifier.adapters.smtp.settings import SmtpSettings, TlsMode

MIN_SECRET_BYTES = 32
DEFAULT_MAIL_FROM = "Partner portal <no-reply@portal.localhost>"

# The shared Kafka variables, read by events/config.py's KafkaSettings.from_env
# (tests/notifier/test_config.py checks this list against that module).
KAFKA_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE", "KAFKA_ENABLE_IDEMPOTENCE", "KAFKA_ACKS",
    "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_MAX_POLL_RECORDS",
)
_SECRETS = frozenset({"NOTIFIER_UNSUBSCRIBE_SECRET", "PORTAL_JWT_SECRET", "SMTP_PASSWORD"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _whole(value: Any, lo: int, hi: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("is not a whole number") from None
    if not lo <= number <= hi:
        raise ValueError(f"is out of range ({lo}-{hi})")
    return number


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("is not an http(s) URL")
    return value.rstrip("/")


class Environment(BaseSettings):
    """The notifier's environment variables (field aliases), as given, validated."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    db: str = Field("sqlite:///var/notifier.db", alias="NOTIFIER_DB")
    smtp_host: str = Field("127.0.0.1", alias="SMTP_HOST")
    smtp_port: int = Field(1025, alias="SMTP_PORT")  # the local sink's port (`make run`)
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD", repr=False)
    smtp_tls: TlsMode = Field(TlsMode.NONE, alias="SMTP_TLS")
    smtp_timeout: float = Field(30.0, alias="SMTP_TIMEOUT")
    smtp_pool_size: int = Field(4, alias="SMTP_POOL_SIZE")
    mail_from: str = Field(DEFAULT_MAIL_FROM, alias="MAIL_FROM")
    portal_base_url: str = Field("http://127.0.0.1:8000", alias="PORTAL_BASE_URL")
    public_url: str | None = Field(None, alias="NOTIFIER_PUBLIC_URL")  # default: the HTTP port on loopback
    http_host: str = Field("127.0.0.1", alias="NOTIFIER_HTTP_HOST")
    http_port: int = Field(8001, alias="NOTIFIER_HTTP_PORT")
    group_id: str = Field("notifier", alias="NOTIFIER_GROUP_ID")
    retry_hours: int = Field(24, alias="NOTIFIER_RETRY_HOURS")
    unsubscribe_secret: str | None = Field(None, alias="NOTIFIER_UNSUBSCRIBE_SECRET", repr=False)
    jwt_secret: str | None = Field(None, alias="PORTAL_JWT_SECRET", repr=False)
    dev_mode: bool = Field(False, alias="PORTAL_DEV_MODE")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what `read` passes: the mapping it was given (os.environ in production).
        return (init_settings,)

    @classmethod
    def names(cls) -> list[str]:
        return [str(info.alias) for info in cls.model_fields.values()]

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Environment:
        given: dict[str, Any] = {name: env[name] for name in cls.names() if env.get(name, "").strip()}
        try:
            return cls(**given)
        except ValidationError as error:
            raise ConfigError(_one_line(error, given)) from None

    @field_validator("smtp_port", "http_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        return _whole(value, 1, 65535)

    @field_validator("smtp_pool_size", mode="before")
    @classmethod
    def _pool(cls, value: Any) -> int:
        return _whole(value, 1, 100)

    @field_validator("retry_hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> int:
        return _whole(value, 1, 24 * 7)

    @field_validator("smtp_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError("is not a number of seconds") from None
        if not 0 < seconds <= 3600:
            raise ValueError("is out of range (0-3600 seconds)")
        return seconds

    @field_validator("smtp_tls", mode="before")
    @classmethod
    def _tls(cls, value: Any) -> TlsMode:
        try:
            return TlsMode(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"is not one of {'/'.join(mode.value for mode in TlsMode)}") from None

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError("has no email address")
        return value

    @field_validator("portal_base_url", "public_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("unsubscribe_secret", "jwt_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"is shorter than {MIN_SECRET_BYTES} bytes (it signs the unsubscribe links)")
        return value

    @field_validator("dev_mode", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> bool:
        text = str(value).strip().lower()
        if text not in _TRUE + _FALSE:
            raise ValueError("is not a boolean (true/false)")
        return text in _TRUE


def _one_line(error: ValidationError, given: Mapping[str, str]) -> str:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "configuration"
    reason = first["msg"].removeprefix("Value error, ")
    if name in _SECRETS or name not in given:
        return f"{name} {reason}"
    return f"{name}={given[name]!r} {reason}"


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings
    store: StoreUrl
    smtp: SmtpSettings
    mail_from: str
    portal_base_url: str
    public_base_url: str  # where the notifier's one-click unsubscribe endpoint is reached
    http_host: str
    http_port: int
    group_id: str = "notifier"
    # Signs the unsubscribe links (HMAC-SHA256); None only with dev_mode, which then signs with
    # a random secret of this process (links die with it).
    unsubscribe_secret: str | None = field(default=None, repr=False)
    retry_hours: int = 24  # how long an email refused with a 4xx is retried before it fails
    dev_mode: bool = False
    tracing: TracingSettings = field(default_factory=TracingSettings)  # off unless OTEL_* say otherwise

    def __post_init__(self) -> None:
        if self.unsubscribe_secret is None:
            if not self.dev_mode:
                raise ConfigError(
                    "PORTAL_JWT_SECRET (or NOTIFIER_UNSUBSCRIBE_SECRET) is not set: it signs the unsubscribe "
                    f"links (at least {MIN_SECRET_BYTES} bytes); PORTAL_DEV_MODE=true only on a developer's machine")
            object.__setattr__(self, "unsubscribe_secret", secrets.token_urlsafe(MIN_SECRET_BYTES))
        elif len(self.unsubscribe_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"the unsubscribe secret is shorter than {MIN_SECRET_BYTES} bytes")

    @property
    def secret(self) -> str:
        assert self.unsubscribe_secret is not None  # set by __post_init__
        return self.unsubscribe_secret

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable the notifier reads (deploy/check.py lists them)."""
        return [*Environment.names(), *KAFKA_VARIABLES, *TracingSettings.variables()]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        values = Environment.read(env)
        kafka = KafkaSettings.from_env(env)
        store = StoreUrl.parse("NOTIFIER_DB", values.db)
        try:
            smtp = SmtpSettings(host=values.smtp_host, port=values.smtp_port, username=values.smtp_username,
                                password=values.smtp_password, tls=values.smtp_tls, timeout=values.smtp_timeout,
                                pool_size=values.smtp_pool_size)
        except ValueError as error:  # e.g. a username without a password
            raise ConfigError(f"SMTP_USERNAME/SMTP_PASSWORD: {error}") from None
        return cls(
            kafka=kafka, store=store, smtp=smtp, mail_from=values.mail_from,
            portal_base_url=values.portal_base_url,
            public_base_url=values.public_url or f"http://127.0.0.1:{values.http_port}",
            http_host=values.http_host, http_port=values.http_port, group_id=values.group_id,
            unsubscribe_secret=values.unsubscribe_secret or values.jwt_secret, retry_hours=values.retry_hours,
            dev_mode=values.dev_mode, tracing=TracingSettings.from_env(env),
        )
