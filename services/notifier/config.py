"""The notifier's configuration (DESIGN.md 2.3), read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr

from events.config import ConfigError, KafkaSettings, StoreUrl, env_int, env_str, env_url
from services.notifier.adapters.smtp import SmtpSettings

# The same development default as the client directory's PORTAL_JWT_SECRET: `make run` works
# without secrets; deployments set PORTAL_JWT_SECRET (and may set a secret of the notifier's own).
DEV_SECRET = "dev-secret-change-me-in-production-32b"


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
    unsubscribe_secret: str = DEV_SECRET  # signs the unsubscribe links (HMAC-SHA256)
    retry_hours: int = 24  # how long an email refused with a 4xx is retried before it fails

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        try:
            smtp = SmtpSettings.from_env({"SMTP_PORT": "1025", **env})
        except ValueError as error:
            raise ConfigError(str(error)) from None
        mail_from = env_str(env, "MAIL_FROM", "Partner portal <no-reply@portal.localhost>")
        if "@" not in parseaddr(mail_from)[1]:
            raise ConfigError(f"MAIL_FROM={mail_from!r} has no email address")
        port = env_int(env, "NOTIFIER_HTTP_PORT", 8001, 1, 65535)
        secret_name = "NOTIFIER_UNSUBSCRIBE_SECRET" if env.get("NOTIFIER_UNSUBSCRIBE_SECRET") else "PORTAL_JWT_SECRET"
        secret = env_str(env, secret_name, DEV_SECRET)
        if len(secret.encode()) < 32:
            raise ConfigError(f"{secret_name} is shorter than 32 bytes (it signs the unsubscribe links)")
        return cls(
            kafka=KafkaSettings.from_env(env),
            store=StoreUrl.parse("NOTIFIER_DB", env_str(env, "NOTIFIER_DB", "sqlite:///var/notifier.db")),
            smtp=smtp,
            mail_from=mail_from,
            portal_base_url=env_url(env, "PORTAL_BASE_URL", "http://127.0.0.1:8000"),
            public_base_url=env_url(env, "NOTIFIER_PUBLIC_URL", f"http://127.0.0.1:{port}"),
            http_host=env_str(env, "NOTIFIER_HTTP_HOST", "127.0.0.1"),
            http_port=port,
            group_id=env_str(env, "NOTIFIER_GROUP_ID", "notifier"),
            unsubscribe_secret=secret,
            retry_hours=env_int(env, "NOTIFIER_RETRY_HOURS", 24, 1, 24 * 7),
        )
