"""`SmtpMailer`: the application's `Mailer` port over a small pool of reused SMTP sessions.

A send either delivers or raises `TransientDeliveryError` (4xx, refused or reset
connections, timeouts) or `PermanentDeliveryError` (5xx, a certificate that does not
verify, a missing extension, an unsendable message); retrying is the application's policy.
Sessions are reused because a handshake per email would dominate a fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from email.message import EmailMessage
from types import TracebackType

import aiosmtplib

from events import tracing
from services.notifier.adapters.smtp.connection import Connection
from services.notifier.adapters.smtp.errors import DELIVERY_EXCEPTIONS, classify, partly_refused
from services.notifier.adapters.smtp.settings import SmtpSettings
from services.notifier.adapters.smtp.transaction import BeforeDataFailed, transaction
from services.notifier.application.ports import BeforeData, Message

log = logging.getLogger("notifier.smtp")


class SmtpMailer:
    """Sends over up to `settings.pool_size` reused sessions; safe for concurrent `send`
    calls from one event loop. `async with SmtpMailer(settings) as mailer`, or `close()`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        # LIFO: under light load the warm connection is reused and the others stay shut.
        self._free: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for _ in range(settings.pool_size):
            self._free.put_nowait(Connection())
        self._local_hostname = settings.local_hostname

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """QUIT every open connection; later sends reopen them."""
        connections = [await self._free.get() for _ in range(self.settings.pool_size)]
        try:
            await asyncio.gather(*(c.quit(self.settings.timeout) for c in connections))
        finally:
            for connection in connections:
                self._free.put_nowait(connection)

    async def send(self, message: Message, *, sender: str | None = None,
                   recipients: Sequence[str] | None = None, before_data: BeforeData | None = None) -> None:
        """Deliver `message` (envelope from its headers, or the serialized message's own,
        unless given) or raise a delivery error. A message accepted for some recipients
        and refused for others is a `PermanentDeliveryError` with `refused` set.

        `before_data` is awaited after MAIL and RCPT were accepted, before DATA (for an
        `EmailMessage`, before the transaction); what it raises propagates as is and the
        connection is dropped, so the open envelope is abandoned and nothing is delivered.
        """
        tracer = tracing.tracer("notifier")
        if tracer is None:
            await self._send(message, sender, recipients, before_data)
            return
        with tracer.start_as_current_span("smtp send", kind=tracing.SpanKind.CLIENT, attributes={
                "server.address": self.settings.host, "server.port": self.settings.port}):
            await self._send(message, sender, recipients, before_data)

    async def _send(self, message: Message, sender: str | None, recipients: Sequence[str] | None,
                    before_data: BeforeData | None) -> None:
        if before_data is not None and isinstance(message, EmailMessage):
            await before_data()
            before_data = None
        connection = await self._free.get()
        try:
            await self._send_on(connection, message, sender, recipients, before_data)
        finally:
            self._free.put_nowait(connection)

    async def _send_on(self, connection: Connection, message: Message, sender: str | None,
                       recipients: Sequence[str] | None, before_data: BeforeData | None) -> None:
        try:
            client = await connection.ready(self.settings, await self._ehlo_name())
            if isinstance(message, EmailMessage):
                refused, _ = await client.send_message(message, sender=sender, recipients=recipients)
            else:
                refused = await transaction(client, message, sender, recipients, before_data)
        except BeforeDataFailed as failed:
            connection.drop()  # an envelope nobody will finish
            assert failed.__cause__ is not None
            raise failed.__cause__ from None
        except DELIVERY_EXCEPTIONS as exc:
            error = classify(exc)
            # After a clean refusal aiosmtplib has RSET the session and it stays usable;
            # after anything else its state is unknown, so start afresh next time.
            clean = isinstance(exc, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused)
            if not (clean and connection.connected):
                connection.drop()
            log.debug("SMTP delivery failed: %r", error)
            raise error from exc
        except BaseException:
            connection.drop()  # cancelled mid-transaction: the session is unusable
            raise
        connection.used()
        if refused:
            raise partly_refused(refused)

    async def _ehlo_name(self) -> str:
        # aiosmtplib would look the FQDN up on every connect; once is enough.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname
