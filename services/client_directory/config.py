"""client_directory's configuration (DESIGN.md 2.3), read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from events.config import ConfigError, KafkaSettings, StoreUrl, env_int, env_str, env_url


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
        )
