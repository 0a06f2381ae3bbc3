"""client_directory's configuration (DESIGN.md 2.3), read once at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from events.config import ConfigError, KafkaSettings, StoreUrl, env_bool, env_int, env_str, env_url


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings
    store: StoreUrl
    http_host: str
    http_port: int
    jwt_secret: str
    portal_base_url: str
    group_id: str = "client-directory"
    dev_mode: bool = False
    dev_mail_dir: str = "var/mail"

    def __post_init__(self) -> None:
        # Dev mode mints tokens for anyone: only on a laptop's stack (SQLite, loopback), never
        # where a shared database or a reachable address suggests real users.
        if self.dev_mode and (self.store.kind != "sqlite" or not _loopback(self.http_host)):
            raise ConfigError(
                "PORTAL_DEV_MODE=true needs a sqlite:// CLIENT_DIRECTORY_DB and a loopback "
                f"CLIENT_DIRECTORY_HTTP_HOST (got {self.store.kind} on {self.http_host})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        secret = env_str(env, "PORTAL_JWT_SECRET", "dev-secret-change-me-in-production-32b")
        if len(secret.encode()) < 32:
            raise ConfigError("PORTAL_JWT_SECRET is shorter than 32 bytes (HS256 needs at least 256 bits)")
        return cls(
            kafka=KafkaSettings.from_env(env),
            store=StoreUrl.parse("CLIENT_DIRECTORY_DB",
                                 env_str(env, "CLIENT_DIRECTORY_DB", "sqlite:///var/client_directory.db")),
            http_host=env_str(env, "CLIENT_DIRECTORY_HTTP_HOST", "127.0.0.1"),
            http_port=env_int(env, "CLIENT_DIRECTORY_HTTP_PORT", 8000, 1, 65535),
            jwt_secret=secret,
            portal_base_url=env_url(env, "PORTAL_BASE_URL", "http://127.0.0.1:8000"),
            group_id=env_str(env, "CLIENT_DIRECTORY_GROUP_ID", "client-directory"),
            dev_mode=env_bool(env, "PORTAL_DEV_MODE", False),
            dev_mail_dir=env_str(env, "PORTAL_DEV_MAIL_DIR", "var/mail"),
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
