"""Configuration read from the environment (DESIGN.md 2.3), validated at start.

A bad value raises ConfigError whose message is the one clear line the service prints
before it exits non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit


class ConfigError(Exception):
    """One line naming the variable and what is wrong with it."""


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


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    # Idempotence and acks=all are what production runs (Apache Kafka); the local broker
    # refuses aiokafka's InitProducerId, so local runs leave idempotence off.
    enable_idempotence: bool = False
    acks: Literal["all", "1", "0"] = "all"
    # How long the group waits for a silent member before handing its partitions to another.
    session_timeout_ms: int = 10_000
    # The most records a fetch holds; a fetch is applied as one store transaction.
    max_poll_records: int = 5_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> KafkaSettings:
        servers = env_str(env, "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"KAFKA_BOOTSTRAP_SERVERS={servers!r} is not a list of host:port"
                )
        protocol = env_choice(
            env, "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
            ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        )
        mechanism = None
        if protocol.startswith("SASL"):
            mechanism = env_choice(
                env, "KAFKA_SASL_MECHANISM", "PLAIN", ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
            )
            env_str(env, "KAFKA_SASL_USERNAME")
            env_str(env, "KAFKA_SASL_PASSWORD")
        cafile = env.get("KAFKA_SSL_CAFILE") or None
        if cafile and not Path(cafile).is_file():
            raise ConfigError(f"KAFKA_SSL_CAFILE={cafile!r} is not a readable file")
        return cls(
            bootstrap_servers=servers,
            security_protocol=protocol,  # type: ignore[arg-type]
            sasl_mechanism=mechanism,
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=cafile,
            enable_idempotence=env_bool(env, "KAFKA_ENABLE_IDEMPOTENCE", False),
            acks=env_choice(env, "KAFKA_ACKS", "all", ("all", "1", "0")),  # type: ignore[arg-type]
            session_timeout_ms=env_int(env, "KAFKA_SESSION_TIMEOUT_MS", 10_000, 1_000, 300_000),
            max_poll_records=env_int(env, "KAFKA_MAX_POLL_RECORDS", 5_000, 1, 100_000),
        )

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

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing library's environment for this store."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path if self.path != ":memory:" else "file::memory:?cache=shared",
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": "y",
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "5",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "CREATE_TABLE": "y",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def probe(self) -> str | None:
        """Why the database cannot be reached now, in the driver's words (None: it can)."""
        if self.kind == "sqlite":
            return None
        import psycopg

        try:
            with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                 dbname=self.dbname, connect_timeout=3):
                return None
        except psycopg.Error as error:
            return " ".join(str(error).split())

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"
