"""How to reach the SMTP server (read from the environment by services/notifier/config.py)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from enum import StrEnum


class TlsMode(StrEnum):
    NONE = "none"  # plain text; never upgrades, even if the server offers STARTTLS
    STARTTLS = "starttls"  # plain connect, then STARTTLS (required, not opportunistic)
    TLS = "tls"  # implicit TLS from the first byte (usually port 465)


DEFAULT_PORTS = {TlsMode.NONE: 25, TlsMode.STARTTLS: 587, TlsMode.TLS: 465}


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int | None = None  # None: 25 / 587 / 465 by TLS mode
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsMode = TlsMode.NONE
    timeout: float = 30.0  # per SMTP command, and for connecting
    validate_certs: bool = True
    # A context trusting a private CA (tests, internal relays); overrides validate_certs.
    ssl_context: ssl.SSLContext | None = None
    pool_size: int = 4
    # Recycle a connection after this many messages: some servers cap messages per
    # session, and a fresh session now and then bounds the damage of a wedged one.
    max_messages_per_connection: int | None = 1000
    # Before reusing a connection idle this long, check it with NOOP: servers drop idle
    # sessions, and a silently dead one would otherwise fail the next email.
    idle_check_after: float = 15.0
    local_hostname: str | None = None  # EHLO name; None: this host's FQDN

    def __post_init__(self) -> None:
        object.__setattr__(self, "tls", TlsMode(self.tls))
        if not self.host:
            raise ValueError("SMTP host must not be empty")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"SMTP port out of range: {self.port}")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password must be given together")
        if self.timeout <= 0:
            raise ValueError("SMTP timeout must be > 0")
        if self.pool_size < 1:
            raise ValueError("SMTP pool size must be >= 1")
        if self.max_messages_per_connection is not None and self.max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be >= 1 or None")

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.tls]
