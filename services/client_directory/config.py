"""client_directory's configuration: every variable it reads, with its default and validation,
read once at start (`Settings.from_env`). A bad value is a ConfigError of one line."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from events.config import EnvSettings, KafkaSettings, MappingSource, StoreUrl, config_error
from events.tracing import TracingSettings

# The development secret, accepted only with PORTAL_DEV_MODE=true (SQLite on loopback): a
# secret written in the source is public, so it can never sign a real caller's token.
DEV_SECRET = "dev-secret-change-me-in-production-32b"
MIN_SECRET_BYTES = 32
STORE_VARIABLE = "CLIENT_DIRECTORY_DB"
STORE_DEFAULT = "sqlite:///var/client_directory.db"


class Settings(EnvSettings):
    """Every variable the client directory reads (`variables()`), its default and validation."""

    model_config = SettingsConfigDict(arbitrary_types_allowed=True)

    kafka: KafkaSettings
    store: StoreUrl
    tracing: TracingSettings = Field(default_factory=TracingSettings)  # off unless OTEL_* say otherwise
    http_host: str = Field(default="127.0.0.1", min_length=1, validation_alias="CLIENT_DIRECTORY_HTTP_HOST")
    http_port: int = Field(default=8000, ge=1, le=65535, validation_alias="CLIENT_DIRECTORY_HTTP_PORT")
    # Empty means not given: refused unless dev_mode (see _secret).
    jwt_secret: str = Field(default="", validation_alias="PORTAL_JWT_SECRET")
    portal_base_url: str = Field(default="http://127.0.0.1:8000", validation_alias="PORTAL_BASE_URL")
    group_id: str = Field(default="client-directory", min_length=1, validation_alias="CLIENT_DIRECTORY_GROUP_ID")
    dev_mode: bool = Field(default=False, validation_alias="PORTAL_DEV_MODE")
    dev_mail_dir: str = Field(default="var/mail", min_length=1, validation_alias="PORTAL_DEV_MAIL_DIR")
    # Tokens whose `exp` is further ahead than this are refused: a leaked token is bounded.
    token_max_lifetime_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600,
                                      validation_alias="PORTAL_TOKEN_MAX_LIFETIME_SECONDS")

    @field_validator("portal_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret_and_dev_mode(self) -> Settings:
        # Dev mode mints tokens for anyone: only on a laptop's stack (SQLite, loopback), never
        # where a shared database or a reachable address suggests real users.
        if self.dev_mode and (not self.store.embedded or not _loopback(self.http_host)):
            raise ValueError(
                f"PORTAL_DEV_MODE=true needs a sqlite:// {STORE_VARIABLE} and a loopback "
                f"CLIENT_DIRECTORY_HTTP_HOST (got {self.store.kind} on {self.http_host})")
        if not self.jwt_secret:
            if not self.dev_mode:
                raise ValueError(
                    f"PORTAL_JWT_SECRET is not set: give a secret of at least {MIN_SECRET_BYTES} bytes "
                    "(only a local run with PORTAL_DEV_MODE=true may go without)")
            object.__setattr__(self, "jwt_secret", DEV_SECRET)
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"PORTAL_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes "
                              "(HS256 needs at least 256 bits)")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        kafka = KafkaSettings.from_env(env)
        tracing = TracingSettings.from_env(env)
        store = StoreUrl.parse(STORE_VARIABLE, env.get(STORE_VARIABLE) or STORE_DEFAULT)
        values: dict[str, Any] = MappingSource(cls, env)()
        try:
            return cls(kafka=kafka, tracing=tracing, store=store, **values)
        except ValidationError as error:
            raise config_error(error, env) from None

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable the client directory reads, the shared Kafka ones too."""
        return [*KafkaSettings.variables(), STORE_VARIABLE, *super().variables(), *TracingSettings.variables()]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
