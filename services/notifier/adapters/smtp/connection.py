"""One pooled SMTP session: opened on demand, checked before reuse, recycled."""

from __future__ import annotations

import time

import aiosmtplib

from services.notifier.adapters.smtp.errors import DELIVERY_EXCEPTIONS
from services.notifier.adapters.smtp.settings import SmtpSettings, TlsMode


class Connection:
    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None
        self.sent = 0
        self.last_used = 0.0

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def drop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.sent = 0

    def used(self) -> None:
        self.sent += 1
        self.last_used = time.monotonic()

    async def quit(self, timeout: float) -> None:
        client, self.client, self.sent = self.client, None, 0
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit(timeout=timeout)
        except DELIVERY_EXCEPTIONS:
            pass  # saying goodbye is a courtesy
        finally:
            client.close()

    async def ready(self, settings: SmtpSettings, ehlo_name: str) -> aiosmtplib.SMTP:
        """The session, reused when it is still good, else a new one (logged in)."""
        limit = settings.max_messages_per_connection
        if self.connected and limit is not None and self.sent >= limit:
            await self.quit(settings.timeout)
        if self.client is not None and self.connected and (
            time.monotonic() - self.last_used >= settings.idle_check_after
        ):
            try:
                await self.client.noop()
            except DELIVERY_EXCEPTIONS:
                self.drop()
        if self.client is not None and self.connected:
            return self.client
        self.drop()
        client = connect_to(settings, ehlo_name)
        await client.connect()  # also logs in when credentials are set
        self.client, self.sent, self.last_used = client, 0, time.monotonic()
        return client


def connect_to(settings: SmtpSettings, ehlo_name: str) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.effective_port,
        username=settings.username,
        password=settings.password,
        local_hostname=ehlo_name,
        timeout=settings.timeout,
        use_tls=settings.tls is TlsMode.TLS,
        # False, not None: None would upgrade opportunistically in mode "none".
        start_tls=settings.tls is TlsMode.STARTTLS,
        validate_certs=settings.validate_certs,
        tls_context=settings.ssl_context,
    )
