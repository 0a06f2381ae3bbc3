"""Async SMTP delivery on aiosmtplib: a small connection pool and a retry helper.

`SmtpMailer.send` either delivers or raises one of two errors, so callers can record
the right outcome (design §3): `TransientDeliveryError` for what may work later (4xx
replies, refused/reset connections, timeouts, disconnects) and `PermanentDeliveryError`
for what will not (5xx replies, a certificate that does not verify, a server lacking a
required extension, an unsendable message). `send_with_retry` turns that into a
`DeliveryOutcome` with exponential backoff and full jitter for transient errors.

Connections are reused across sends (a handshake per email would dominate fan-out
time) and up to `pool_size` of them run in parallel.

A message is an `EmailMessage` (serialized by aiosmtplib at each attempt) or a
`SerializedMessage`: bytes and envelope made once by the caller (the notifier's renderer
writes its emails that way), sent with MAIL, RCPT and DATA as aiosmtplib's `sendmail` does.
`before_data` lets a caller hold DATA back until something is done (the sender waits there
for the previous email's outcome to be recorded) while the envelope is already on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from types import TracebackType
from typing import Protocol, TypeAlias

import aiosmtplib

__all__ = [
    "BeforeData",
    "DeliveryError",
    "DeliveryOutcome",
    "DeliveryStatus",
    "Mailer",
    "Message",
    "PermanentDeliveryError",
    "SerializedMessage",
    "SmtpMailer",
    "SmtpSettings",
    "TlsMode",
    "TransientDeliveryError",
    "message_id_of",
    "send_with_retry",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- settings


class TlsMode(StrEnum):
    NONE = "none"  # plain text; never upgrades, even if the server offers STARTTLS
    STARTTLS = "starttls"  # plain connect, then STARTTLS (required, not opportunistic)
    TLS = "tls"  # implicit TLS from the first byte (usually port 465)


_DEFAULT_PORTS = {TlsMode.NONE: 25, TlsMode.STARTTLS: 587, TlsMode.TLS: 465}


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
        return self.port if self.port is not None else _DEFAULT_PORTS[self.tls]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """Read SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_TLS (and the
        optional SMTP_TIMEOUT, SMTP_POOL_SIZE). Raises ValueError with one clear line."""

        def number(name: str, kind: type[int] | type[float]) -> int | float | None:
            raw = env.get(name, "").strip()
            if not raw:
                return None
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None

        tls_raw = env.get("SMTP_TLS", "none").strip().lower() or "none"
        try:
            tls = TlsMode(tls_raw)
        except ValueError:
            choices = "/".join(mode.value for mode in TlsMode)
            raise ValueError(f"SMTP_TLS must be one of {choices}, got {tls_raw!r}") from None
        port = number("SMTP_PORT", int)
        timeout = number("SMTP_TIMEOUT", float)
        pool_size = number("SMTP_POOL_SIZE", int)
        try:
            return cls(
                host=env.get("SMTP_HOST", "").strip() or "127.0.0.1",
                port=int(port) if port is not None else None,
                username=env.get("SMTP_USERNAME") or None,
                password=env.get("SMTP_PASSWORD") or None,
                tls=tls,
                timeout=float(timeout) if timeout is not None else 30.0,
                pool_size=int(pool_size) if pool_size is not None else 4,
            )
        except ValueError as exc:
            raise ValueError(f"invalid SMTP configuration: {exc}") from None


# ----------------------------------------------------------------------------- errors


class DeliveryError(Exception):
    """A message was not delivered. `code` is the SMTP reply code when there was one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        refused: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(f"{code} {message}" if code is not None else message)
        self.code = code
        self.message = message
        # Per-recipient refusals (address -> (code, reply)), when the server named them.
        self.refused: dict[str, tuple[int, str]] = dict(refused or {})


class TransientDeliveryError(DeliveryError):
    """May succeed later: retry with backoff."""


class PermanentDeliveryError(DeliveryError):
    """Will not succeed as is: record the failure, do not retry."""


def _by_code(code: int, message: str) -> DeliveryError:
    # Anything that is not a 5xx (4xx, or a nonsensical code) is worth another try.
    kind = PermanentDeliveryError if 500 <= code < 600 else TransientDeliveryError
    return kind(message, code=code)


def _classify(exc: Exception) -> DeliveryError:
    """Map whatever aiosmtplib/asyncio raised onto transient or permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = {err.recipient: (err.code, err.message) for err in exc.recipients}
        codes = [code for code, _ in refused.values()]
        first_code, first_message = next(iter(refused.values()), (0, str(exc)))
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentDeliveryError(first_message, code=first_code, refused=refused)
        return TransientDeliveryError(first_message, code=first_code or None, refused=refused)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Covers 4xx/5xx replies at greeting, EHLO, AUTH, MAIL, RCPT and DATA.
        return _by_code(exc.code, exc.message)
    if _caused_by_bad_certificate(exc):
        return PermanentDeliveryError(f"TLS certificate verification failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientDeliveryError(f"timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return TransientDeliveryError(str(exc) or type(exc).__name__)
    if isinstance(exc, OSError):
        # Refused, reset, unreachable, TLS handshake torn down...
        return TransientDeliveryError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # SMTPNotSupported and the plain SMTPException aiosmtplib raises when a required
        # extension (STARTTLS, AUTH, SMTPUTF8) is missing: configuration, not luck.
        return PermanentDeliveryError(str(exc))
    if isinstance(exc, ValueError):
        # aiosmtplib's verdict on the message itself (no recipients, bad address).
        return PermanentDeliveryError(f"message cannot be sent: {exc}")
    raise TypeError(f"unexpected delivery exception {exc!r}") from exc


def _caused_by_bad_certificate(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_DELIVERY_EXCEPTIONS = (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError)


# ------------------------------------------------------------------------------ mailer


class SerializedMessage(Protocol):
    """A message serialized once by its maker (RFC 5322 bytes, CRLF line ends) with its
    envelope; `smtputf8` when an address is not ASCII (the server must offer SMTPUTF8)."""

    @property
    def message_id(self) -> str: ...
    @property
    def envelope_from(self) -> str: ...
    @property
    def envelope_to(self) -> Sequence[str]: ...
    @property
    def data(self) -> bytes: ...
    @property
    def smtputf8(self) -> bool: ...


Message: TypeAlias = EmailMessage | SerializedMessage
# Awaited before DATA: the server cannot accept the message until it returns.
BeforeData: TypeAlias = Callable[[], Awaitable[object]]


def message_id_of(message: Message) -> str | None:
    if isinstance(message, EmailMessage):
        return message.get("Message-ID")
    return message.message_id


class Mailer(Protocol):
    """What sends: `SmtpMailer`, or a fake. `before_data` is only ever passed when given."""

    async def send(self, message: Message, *, before_data: BeforeData | None = None) -> None: ...


class _BeforeDataFailed(Exception):
    """What the caller's `before_data` raised, carried past the delivery error handling: it
    says nothing about the message or the server."""


class _Connection:
    """One pooled SMTP session, (re)opened on demand."""

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

    async def quit(self, timeout: float) -> None:
        client, self.client, self.sent = self.client, None, 0
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit(timeout=timeout)
        except _DELIVERY_EXCEPTIONS:
            pass  # saying goodbye is a courtesy
        finally:
            client.close()


class SmtpMailer:
    """Sends messages over up to `settings.pool_size` reused SMTP connections.

    Use as `async with SmtpMailer(settings) as mailer: await mailer.send(msg)`, or call
    `close()` at shutdown. Safe for concurrent `send` calls from one event loop.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._free: asyncio.LifoQueue[_Connection] = asyncio.LifoQueue()
        # LIFO: under light load the warm connection is reused and the others stay shut.
        for _ in range(settings.pool_size):
            self._free.put_nowait(_Connection())
        self._local_hostname = settings.local_hostname

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """QUIT every open connection; later sends reopen them."""
        connections = []
        for _ in range(self.settings.pool_size):
            connections.append(await self._free.get())
        try:
            await asyncio.gather(*(c.quit(self.settings.timeout) for c in connections))
        finally:
            for connection in connections:
                self._free.put_nowait(connection)

    async def send(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        before_data: BeforeData | None = None,
    ) -> None:
        """Deliver `message` (envelope from its headers, or the serialized message's own,
        unless given) or raise a `TransientDeliveryError` / `PermanentDeliveryError`.

        A message accepted for some recipients but refused for others raises
        `PermanentDeliveryError` with `refused` set: resending would duplicate it for
        the recipients that got it. (The notifier sends one recipient per message.)

        `before_data` is awaited after the envelope (MAIL, RCPT) was accepted and before DATA
        (for an `EmailMessage`, before the transaction); what it raises propagates as is and
        the connection is dropped, so the open envelope is abandoned and nothing is delivered.
        """
        if before_data is not None and isinstance(message, EmailMessage):
            await before_data()
            before_data = None
        connection = await self._free.get()
        try:
            await self._send_on(connection, message, sender, recipients, before_data)
        finally:
            self._free.put_nowait(connection)

    async def _send_on(
        self,
        connection: _Connection,
        message: Message,
        sender: str | None,
        recipients: Sequence[str] | None,
        before_data: BeforeData | None,
    ) -> None:
        try:
            client = await self._ready(connection)
            if isinstance(message, EmailMessage):
                refused, _ = await client.send_message(message, sender=sender, recipients=recipients)
            else:
                refused = await _transaction(client, message, sender, recipients, before_data)
        except _BeforeDataFailed as failed:
            connection.drop()  # an envelope nobody will finish
            assert failed.__cause__ is not None
            raise failed.__cause__ from None
        except _DELIVERY_EXCEPTIONS as exc:
            error = _classify(exc)
            # After a clean refusal aiosmtplib has RSET the session and it stays usable;
            # after anything else its state is unknown, so start afresh next time.
            clean_refusal = isinstance(
                exc, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
            )
            if not (clean_refusal and connection.connected):
                connection.drop()
            log.debug("SMTP delivery failed: %r", error)
            raise error from exc
        except BaseException:
            connection.drop()  # cancelled mid-transaction: the session is unusable
            raise
        connection.sent += 1
        connection.last_used = time.monotonic()
        if refused:
            details = {addr: (resp.code, resp.message) for addr, resp in refused.items()}
            first_code, first_message = next(iter(details.values()))
            raise PermanentDeliveryError(
                f"refused for {', '.join(sorted(details))}: {first_message}",
                code=first_code,
                refused=details,
            )

    async def _ready(self, connection: _Connection) -> aiosmtplib.SMTP:
        settings = self.settings
        limit = settings.max_messages_per_connection
        if connection.connected and limit is not None and connection.sent >= limit:
            await connection.quit(settings.timeout)
        if connection.connected and (
            time.monotonic() - connection.last_used >= settings.idle_check_after
        ):
            try:
                assert connection.client is not None
                await connection.client.noop()
            except _DELIVERY_EXCEPTIONS:
                connection.drop()
        if connection.connected:
            assert connection.client is not None
            return connection.client
        connection.drop()
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.effective_port,
            username=settings.username,
            password=settings.password,
            local_hostname=await self._ehlo_name(),
            timeout=settings.timeout,
            use_tls=settings.tls is TlsMode.TLS,
            # False, not None: None would upgrade opportunistically in mode "none".
            start_tls=settings.tls is TlsMode.STARTTLS,
            validate_certs=settings.validate_certs,
            tls_context=settings.ssl_context,
        )
        await client.connect()  # also logs in when credentials are set
        connection.client = client
        connection.sent = 0
        connection.last_used = time.monotonic()
        return client

    async def _ehlo_name(self) -> str:
        # aiosmtplib would look the FQDN up on every connect; once is enough.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname


async def _transaction(
    client: aiosmtplib.SMTP,
    message: SerializedMessage,
    sender: str | None,
    recipients: Sequence[str] | None,
    before_data: BeforeData | None,
) -> dict[str, aiosmtplib.SMTPResponse]:
    """MAIL, RCPT, `before_data`, DATA: aiosmtplib's `sendmail`, with the pause before DATA.
    Returns the recipients refused while others were accepted, as `sendmail` does."""
    sender = sender if sender is not None else message.envelope_from
    recipients = list(recipients if recipients is not None else message.envelope_to)
    if not recipients:
        raise ValueError("no recipients")
    if client.is_ehlo_or_helo_needed:
        # The server's extensions (SIZE, SMTPUTF8) are known after EHLO, which aiosmtplib would
        # otherwise send with MAIL; HELO if EHLO is refused, as aiosmtplib does.
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    options: list[str] = []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(message.data)}")
    encoding = "ascii"
    if message.smtputf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "an address contains non-ASCII characters and the server does not offer SMTPUTF8"
            )
        options.append("SMTPUTF8")
        if client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # UTF-8 headers are 8-bit
        encoding = "utf-8"
    try:
        await client.mail(sender, options=options, encoding=encoding)
        refused: list[aiosmtplib.SMTPRecipientRefused] = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        if before_data is not None:
            try:
                await before_data()
            except BaseException as exc:
                raise _BeforeDataFailed() from exc
        await client.data(message.data)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # As sendmail does: reset the envelope so the session stays usable (if disconnected
        # or answered badly, the caller drops the connection).
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise
    return {exc.recipient: aiosmtplib.SMTPResponse(exc.code, exc.message) for exc in refused}


# ------------------------------------------------------------------------------ retry


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # permanent failure: do not retry
    GAVE_UP = "gave_up"  # transient failures on every attempt


@dataclass(frozen=True)
class DeliveryOutcome:
    status: DeliveryStatus
    attempts: int
    code: int | None = None
    reason: str | None = None

    @property
    def sent(self) -> bool:
        return self.status is DeliveryStatus.SENT


def backoff_delay(
    attempt: int, *, base_delay: float, max_delay: float, rng: Callable[[], float]
) -> float:
    """Full jitter (uniform in [0, min(max, base * 2**(attempt-1))]) after `attempt`
    failed: spreads retries of a fan-out so they do not hit a recovering server at once."""
    ceiling = min(max_delay, base_delay * 2.0 ** min(attempt - 1, 60))
    return rng() * ceiling


async def send_with_retry(
    mailer: Mailer,
    message: Message,
    *,
    before_data: BeforeData | None = None,
    attempts: int = 5,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> DeliveryOutcome:
    """Send, retrying transient errors up to `attempts` times in all; never raises a
    delivery error (anything else, e.g. cancellation, a bug or what `before_data` raised,
    propagates). `before_data` is awaited at each attempt (mailer.send)."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    last: TransientDeliveryError | None = None
    for attempt in range(1, attempts + 1):
        try:
            if before_data is None:
                await mailer.send(message)
            else:
                await mailer.send(message, before_data=before_data)
        except PermanentDeliveryError as exc:
            log.warning("permanent SMTP failure for %s: %s", message_id_of(message), exc)
            return DeliveryOutcome(DeliveryStatus.FAILED, attempt, exc.code, exc.message)
        except TransientDeliveryError as exc:
            last = exc
            log.info(
                "transient SMTP failure for %s (attempt %d/%d): %s",
                message_id_of(message),
                attempt,
                attempts,
                exc,
            )
            if attempt < attempts:
                await sleep(
                    backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay, rng=rng)
                )
        else:
            return DeliveryOutcome(DeliveryStatus.SENT, attempt)
    assert last is not None
    return DeliveryOutcome(DeliveryStatus.GAVE_UP, attempts, last.code, last.message)
