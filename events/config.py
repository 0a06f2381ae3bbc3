"""Configuration read from the environment (docs/CONTRACT.md, Configuration), validated at start.

The pieces each service's one configuration reader is built from: `EnvSettings`, a
pydantic-settings base whose `from_env(env)` reads a given mapping (never a .env file) and
whose `variables()` names every variable it reads; `KafkaSettings`, the connection every
service shares; `StoreUrl`, a store's URL. A bad value raises ConfigError: one line per bad
value, naming the variable, which the service prints before it exits non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

#: How long a consumer group waits for a silent member before handing its partitions to
#: another. The one default: callers take `KafkaSettings.session_timeout_ms`.
DEFAULT_SESSION_TIMEOUT_MS = 10_000


class ConfigError(Exception):
    """One line per bad value, each naming the variable and what is wrong with it."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class MappingSource(EnvSettingsSource):
    """Variables from the mapping given (os.environ or a test's dict), empty values unset."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = dict(env)
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._mapping, case_sensitive=True, ignore_empty=True)


class EnvSettings(BaseSettings):
    """Base of a configuration reader: each field's `validation_alias` is its variable.

    Constructing one directly (tests) reads no environment at all; `from_env` is the reader.
    """

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, validate_by_name=True,
                                      validate_by_alias=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Self:
        try:
            return cls(_build_sources=((MappingSource(cls, env),), {}))  # type: ignore[call-arg]
        except ValidationError as error:
            raise config_error(error, env) from None

    @classmethod
    def variables(cls) -> list[str]:
        """The name of every variable this reader reads, in field order."""
        return [str(field.validation_alias) for field in cls.model_fields.values()
                if isinstance(field.validation_alias, str)]


def config_error(error: ValidationError, env: Mapping[str, str]) -> ConfigError:
    """A pydantic error as one line per bad value, naming the variable and its raw value."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        name = str(item["loc"][0]) if item["loc"] else ""
        if not name:
            lines.append(message)  # a rule over several variables names them itself
        elif item["type"] == "missing":
            lines.append(f"{name} is not set")
        else:
            lines.append(f"{name}={env.get(name, item['input'])!r}: {message[:1].lower()}{message[1:]}")
    return ConfigError(*lines)


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{name} is not set")
        return default
    return value


def env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range ({lo}-{hi})")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL")
    return value.rstrip("/")


Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(EnvSettings):
    """The Kafka connection and client settings both services read."""

    bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    security_protocol: Protocol = Field("PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    sasl_mechanism: Mechanism | None = Field(None, validation_alias="KAFKA_SASL_MECHANISM",
                                             validate_default=True)
    sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    sasl_password: str | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD", repr=False)
    ssl_cafile: str | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")
    # Idempotence and acks=all are what production runs (Apache Kafka); the local broker
    # refuses aiokafka's InitProducerId, so local runs leave idempotence off.
    enable_idempotence: bool = Field(False, validation_alias="KAFKA_ENABLE_IDEMPOTENCE")
    acks: Literal["all", "1", "0"] = Field("all", validation_alias="KAFKA_ACKS")
    session_timeout_ms: int = Field(DEFAULT_SESSION_TIMEOUT_MS, ge=1_000, le=300_000,
                                    validation_alias="KAFKA_SESSION_TIMEOUT_MS")
    # The most records a fetch holds; a fetch is applied as one store transaction.
    max_poll_records: int = Field(5_000, ge=1, le=100_000, validation_alias="KAFKA_MAX_POLL_RECORDS")

    def __init__(self, bootstrap_servers: str | None = None, /, **values: Any) -> None:
        """`KafkaSettings("host:port")` in tests; every other field by name."""
        if bootstrap_servers is not None:
            values["bootstrap_servers"] = bootstrap_servers
        super().__init__(**values)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("is not a list of host:port")
        return value

    @field_validator("sasl_mechanism")
    @classmethod
    def _mechanism(cls, value: Mechanism | None, info: ValidationInfo) -> Mechanism | None:
        if not str(info.data.get("security_protocol", "")).startswith("SASL"):
            return None
        return value or "PLAIN"

    @field_validator("ssl_cafile")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value and not Path(value).is_file():
            raise ValueError("is not a readable file")
        return value or None

    @model_validator(mode="after")
    def _sasl_credentials(self) -> Self:
        if self.security_protocol.startswith("SASL"):
            for name, value in (("KAFKA_SASL_USERNAME", self.sasl_username),
                                ("KAFKA_SASL_PASSWORD", self.sasl_password)):
                if not value:
                    raise ValueError(f"{name} is not set (KAFKA_SECURITY_PROTOCOL={self.security_protocol})")
        return self

    def kafka_python_kwargs(self) -> dict[str, object]:
        """Connection settings in kafka-python's names (admin, replay tools)."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.ssl_cafile:
            kwargs["ssl_cafile"] = self.ssl_cafile
        return kwargs


@dataclass(frozen=True)
class StoreUrl:
    """`sqlite:///path` or `postgresql://user:pass@host:port/db`."""

    kind: Literal["sqlite", "postgresql"]
    path: str = ""  # sqlite file path (":memory:" allowed for unit tests)
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = ""

    @classmethod
    def parse(cls, name: str, url: str) -> StoreUrl:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            path = unquote(parts.path)
            if parts.netloc or not path:
                raise ConfigError(f"{name}={url!r}: use sqlite:///relative/path or sqlite:////abs/path")
            path = path[1:] if path.startswith("/") else path
            if path != ":memory:":
                parent = Path(path).resolve().parent
                try:
                    parent.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    raise ConfigError(f"{name}={url!r}: cannot create {parent}: {error}") from None
            return cls(kind="sqlite", path=path)
        if parts.scheme in ("postgresql", "postgres"):
            dbname = parts.path.lstrip("/")
            if not parts.hostname or not dbname:
                raise ConfigError(f"{name}={url!r}: expected postgresql://user:pass@host:port/db")
            try:
                port = parts.port or 5432
            except ValueError:
                raise ConfigError(f"{name}={url!r}: the port is not a number") from None
            query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
            return cls(
                kind="postgresql",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or ""),
                dbname=dbname,
                schema=query.get("schema", ""),
            )
        raise ConfigError(f"{name}={url!r}: the scheme must be sqlite:// or postgresql://")

    @property
    def embedded(self) -> bool:
        """A file beside the process (SQLite), not a database server."""
        return self.kind == "sqlite"

    def describe(self) -> str:
        """The store for log lines and messages: no password."""
        if self.embedded:
            return f"sqlite:///{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"
