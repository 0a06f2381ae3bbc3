"""SMTP adapter against real aiosmtpd servers started in-process on free ports.

Each test starts its own server (port 0, 127.0.0.1), so tests are independent and can
run in parallel. Retry tests inject `sleep` so backoff costs no wall time.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from services.notifier.adapters.smtp import SmtpMailer, SmtpSettings, TlsMode
from services.notifier.application.ports import BeforeData, Message, PermanentDeliveryError, TransientDeliveryError
from services.notifier.application.retry import DeliveryOutcome, DeliveryStatus, backoff_delay, send_with_retry

# ------------------------------------------------------------------------- fixtures


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any
    tls: bool

    @property
    def message(self) -> EmailMessage:
        # Normalise the wire's CRLF so bodies compare with what was written.
        content = self.content.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    """aiosmtpd handler that keeps what arrives and can answer from a script."""

    data_replies: deque[str] = field(default_factory=deque)  # used before accepting
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply
    data_delay: float = 0.0
    drop_connection_times: int = 0  # close the connection in DATA this many times
    messages: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    noops: int = 0

    async def handle_NOOP(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope, arg: str
    ) -> str:
        self.noops += 1
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        self.data_attempts += 1
        if self.drop_connection_times > 0:
            self.drop_connection_times -= 1
            assert server.transport is not None
            server.transport.close()
            return "250 never seen"
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.popleft()
        assert envelope.mail_from is not None
        assert isinstance(envelope.content, bytes)
        assert server.transport is not None
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.content,
                peer=session.peer,
                tls=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 2.0.0 Message accepted"


@dataclass
class Server:
    port: int
    handler: Handler
    protocols: list[SMTPServerProtocol]

    @property
    def connections(self) -> int:
        return len(self.protocols)

    def drop_all_connections(self) -> None:
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()


@asynccontextmanager
async def smtp_server(
    handler: Handler | None = None, *, implicit_tls: ssl.SSLContext | None = None, **kwargs: Any
) -> AsyncIterator[Server]:
    loop = asyncio.get_running_loop()
    handler = handler or Handler()
    protocols: list[SMTPServerProtocol] = []

    def factory() -> SMTPServerProtocol:
        # hostname given: aiosmtpd would otherwise resolve this host's FQDN per session.
        protocol = SMTPServerProtocol(handler, hostname="localhost", loop=loop, **kwargs)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Server(port=port, handler=handler, protocols=protocols)
    finally:
        server.close()
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()


@asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
) -> AsyncIterator[int]:
    """A TCP server that does whatever `on_connect` does (e.g. never greets)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await on_connect(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def settings_for(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "timeout": 2.0,
        "pool_size": 1,
        "local_hostname": "notifier.test",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def make_message(n: int = 0, to: str = "anne@firm.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Partner Portal <notifications@portal.example.com>"
    message["To"] = to
    message["Subject"] = f"Reminder n°{n}: société"
    message["Message-ID"] = f"<test-{n}@portal.example.com>"
    message.set_content(f"Hello n°{n}\nReçus manquants : 3\n")
    message.add_alternative(f"<p>Hello n°{n}</p><p>Reçus manquants&nbsp;: 3</p>", subtype="html")
    return message


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1/localhost, made with openssl (the
    `cryptography` package is not among the project's dependencies)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


# ------------------------------------------------------------------------- delivery


async def test_delivers_a_multipart_message_intact() -> None:
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        await mailer.send(make_message(1))
    [received] = server.handler.messages
    assert received.mail_from == "notifications@portal.example.com"
    assert received.rcpt_tos == ["anne@firm.example"]
    assert not received.tls
    message = received.message
    assert message["Message-ID"] == "<test-1@portal.example.com>"
    assert message["Subject"] == "Reminder n°1: société"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == "Hello n°1\nReçus manquants : 3\n"
    assert "Reçus manquants&nbsp;: 3" in html.get_content()


async def test_explicit_envelope_overrides_headers() -> None:
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        await mailer.send(
            make_message(), sender="bounces@portal.example.com", recipients=["x@firm.example"]
        )
    [received] = server.handler.messages
    assert received.mail_from == "bounces@portal.example.com"
    assert received.rcpt_tos == ["x@firm.example"]


async def test_reuses_one_connection_across_sends() -> None:
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        for n in range(10):
            await mailer.send(make_message(n))
    assert len(server.handler.messages) == 10
    assert server.connections == 1
    assert len({m.peer for m in server.handler.messages}) == 1


async def test_reconnects_after_the_server_dropped_the_connection() -> None:
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        await mailer.send(make_message(1))
        server.drop_all_connections()
        await asyncio.sleep(0.05)  # let the client see the EOF
        await mailer.send(make_message(2))
    assert [m.message["Message-ID"] for m in server.handler.messages] == [
        "<test-1@portal.example.com>",
        "<test-2@portal.example.com>",
    ]
    assert server.connections == 2


async def test_idle_connection_is_checked_before_reuse() -> None:
    async with smtp_server() as server:
        settings = settings_for(server.port, idle_check_after=0.0)
        async with SmtpMailer(settings) as mailer:
            for n in range(3):
                await mailer.send(make_message(n))
    assert len(server.handler.messages) == 3
    assert server.handler.noops == 2  # before each reuse, not before the first send
    assert server.connections == 1


async def test_recycles_connections_after_max_messages() -> None:
    async with smtp_server() as server:
        settings = settings_for(server.port, max_messages_per_connection=2)
        async with SmtpMailer(settings) as mailer:
            for n in range(5):
                await mailer.send(make_message(n))
    assert len(server.handler.messages) == 5
    assert server.connections == 3


async def test_pool_sends_in_parallel_over_several_connections() -> None:
    handler = Handler(data_delay=0.1)
    async with (
        smtp_server(handler) as server,
        SmtpMailer(settings_for(server.port, pool_size=4)) as mailer,
    ):
        started = time.monotonic()
        await asyncio.gather(*(mailer.send(make_message(n)) for n in range(12)))
        elapsed = time.monotonic() - started
    assert sorted(m.message["Message-ID"] for m in handler.messages) == sorted(
        f"<test-{n}@portal.example.com>" for n in range(12)
    )
    assert server.connections == 4
    # 12 sends of >= 0.1 s each over 4 connections: ~0.3 s, far from 1.2 s serially.
    assert elapsed < 0.9


async def test_close_quits_and_a_later_send_reconnects() -> None:
    async with smtp_server() as server:
        mailer = SmtpMailer(settings_for(server.port))
        await mailer.send(make_message(1))
        await mailer.close()
        await mailer.send(make_message(2))
        await mailer.close()
    assert len(server.handler.messages) == 2
    assert server.connections == 2


# ------------------------------------------------------- messages serialized once


@dataclass(frozen=True)
class Serialized:
    """A message serialized by its maker, with its envelope (as the notifier's renderer makes them)."""

    message_id: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    data: bytes
    smtputf8: bool = False


def serialized(n: int = 0, to: str = "anne@firm.example", *, smtputf8: bool = False) -> Serialized:
    message = make_message(n, to)
    return Serialized(message["Message-ID"], "notifications@portal.example.com", (to,),
                      message.as_bytes(policy=email.policy.SMTP), smtputf8)


@dataclass
class Journal(Handler):
    """Notes what the server saw, in order, beside the caller's own notes."""

    seen: list[str] = field(default_factory=list)
    mail_options: list[list[str]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        self.seen.append(f"RCPT {address}")
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.seen.append("DATA")
        self.mail_options.append(list(envelope.mail_options))
        return await super().handle_DATA(server, session, envelope)


async def test_a_serialized_message_goes_out_as_its_bytes_with_its_envelope() -> None:
    messages = [serialized(n) for n in range(3)]
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        for message in messages:
            await mailer.send(message)
    first = server.handler.messages[0]
    assert first.content.rstrip(b"\r\n") == messages[0].data.rstrip(b"\r\n")
    assert (first.mail_from, first.rcpt_tos) == ("notifications@portal.example.com", ["anne@firm.example"])
    assert first.message["Subject"] == "Reminder n°0: société"
    assert server.connections == 1


async def test_before_data_is_awaited_after_the_envelope_and_before_data() -> None:
    handler = Journal()

    async def before_data() -> None:
        handler.seen.append("before_data")

    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        await mailer.send(serialized(1), before_data=before_data)
    assert handler.seen == ["RCPT anne@firm.example", "before_data", "DATA"]


async def test_a_failing_before_data_delivers_nothing_and_its_error_propagates_as_is() -> None:
    async def store_down() -> None:
        raise RuntimeError("the store is down")

    sleep = RecordingSleep()
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(RuntimeError, match="store is down"):
            await mailer.send(serialized(1), before_data=store_down)
        with pytest.raises(RuntimeError, match="store is down"):  # not a delivery error: no retry
            await send_with_retry(mailer, serialized(1), before_data=store_down, sleep=sleep)
        await mailer.send(serialized(2))  # on a new connection: the open envelope was abandoned
    assert [m.message["Message-ID"] for m in server.handler.messages] == ["<test-2@portal.example.com>"]
    assert sleep.delays == []
    assert server.connections == 3


async def test_a_serialized_message_refused_at_rcpt_fails_for_good_and_the_session_survives() -> None:
    handler = Handler(rcpt_replies={"gone@firm.example": "550 5.1.1 No such user"})
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(PermanentDeliveryError) as raised:
            await mailer.send(serialized(1, "gone@firm.example"))
        assert raised.value.code == 550
        assert raised.value.refused == {"gone@firm.example": (550, "5.1.1 No such user")}
        outcome = await send_with_retry(mailer, serialized(2, "gone@firm.example"), sleep=RecordingSleep())
        await mailer.send(serialized(3))
    assert outcome == DeliveryOutcome(DeliveryStatus.FAILED, 1, 550, "5.1.1 No such user")
    assert [m.rcpt_tos for m in handler.messages] == [["anne@firm.example"]]
    assert server.connections == 1


async def test_a_serialized_message_gets_4xx_retried() -> None:
    handler = Handler(data_replies=deque(["451 4.3.0 Try again later"]))
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        outcome = await send_with_retry(mailer, serialized(5), sleep=RecordingSleep())
    assert outcome == DeliveryOutcome(DeliveryStatus.SENT, 2)
    assert len(handler.messages) == 1


async def test_an_address_that_needs_smtputf8_goes_only_to_a_server_that_offers_it() -> None:
    message = serialized(1, "zoé@firm.example", smtputf8=True)
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(PermanentDeliveryError, match="SMTPUTF8"):
            await mailer.send(message)
    handler = Journal()
    async with smtp_server(handler, enable_SMTPUTF8=True) as server, SmtpMailer(settings_for(server.port)) as mailer:
        await mailer.send(message)
    assert handler.messages[0].rcpt_tos == ["zoé@firm.example"]
    assert "SMTPUTF8" in handler.mail_options[0]


# ------------------------------------------------------------------ error mapping


async def test_550_on_rcpt_is_permanent_and_not_retried() -> None:
    handler = Handler(rcpt_replies={"anne@firm.example": "550 5.1.1 No such user"})
    sleep = RecordingSleep()
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(PermanentDeliveryError) as raised:
            await mailer.send(make_message())
        assert raised.value.code == 550
        assert "No such user" in raised.value.message
        assert raised.value.refused == {"anne@firm.example": (550, "5.1.1 No such user")}

        outcome = await send_with_retry(mailer, make_message(), attempts=5, sleep=sleep)
        # The connection survived the refusal (aiosmtplib reset the envelope).
        await mailer.send(make_message(to="claude@firm.example"))
    assert outcome == DeliveryOutcome(DeliveryStatus.FAILED, 1, 550, "5.1.1 No such user")
    assert sleep.delays == []
    assert [m.rcpt_tos for m in handler.messages] == [["claude@firm.example"]]
    assert server.connections == 1


async def test_550_on_data_is_permanent() -> None:
    handler = Handler(data_replies=deque(["554 5.7.1 Message rejected as spam"]))
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        outcome = await send_with_retry(mailer, make_message(), attempts=3, sleep=RecordingSleep())
    assert outcome.status is DeliveryStatus.FAILED
    assert (outcome.code, outcome.attempts) == (554, 1)
    assert "spam" in (outcome.reason or "")
    assert handler.data_attempts == 1


async def test_partial_refusal_is_permanent_with_the_refused_recipients() -> None:
    handler = Handler(rcpt_replies={"gone@firm.example": "550 5.1.1 Gone"})
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(PermanentDeliveryError) as raised:
            await mailer.send(make_message(to="anne@firm.example, gone@firm.example"))
    assert raised.value.refused == {"gone@firm.example": (550, "5.1.1 Gone")}
    assert [m.rcpt_tos for m in handler.messages] == [["anne@firm.example"]]


async def test_4xx_replies_are_retried_until_delivered_once() -> None:
    handler = Handler(
        data_replies=deque(["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"])
    )
    sleep = RecordingSleep()
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        outcome = await send_with_retry(
            mailer,
            make_message(7),
            attempts=5,
            base_delay=1.0,
            max_delay=30.0,
            sleep=sleep,
            rng=lambda: 0.5,
        )
    assert outcome == DeliveryOutcome(DeliveryStatus.SENT, 3)
    assert [m.message["Message-ID"] for m in handler.messages] == ["<test-7@portal.example.com>"]
    assert handler.data_attempts == 3
    assert sleep.delays == [0.5, 1.0]  # full jitter: rng() * base * 2**(attempt-1)


async def test_4xx_on_every_attempt_gives_up_with_the_last_reply() -> None:
    handler = Handler(data_replies=deque(["451 4.3.0 Busy"] * 10))
    sleep = RecordingSleep()
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        outcome = await send_with_retry(mailer, make_message(), attempts=4, sleep=sleep)
    assert outcome == DeliveryOutcome(DeliveryStatus.GAVE_UP, 4, 451, "4.3.0 Busy")
    assert len(sleep.delays) == 3
    assert handler.messages == []


async def test_mail_from_4xx_is_transient() -> None:
    class Greylisting(Handler):
        async def handle_MAIL(
            self,
            server: SMTPServerProtocol,
            session: Session,
            envelope: Envelope,
            address: str,
            mail_options: list[str],
        ) -> str:
            return "450 4.2.0 Greylisted, come back later"

    async with smtp_server(Greylisting()) as server, SmtpMailer(settings_for(server.port)) as m:
        with pytest.raises(TransientDeliveryError) as raised:
            await m.send(make_message())
    assert raised.value.code == 450


async def test_server_disconnect_mid_transaction_is_transient_then_recovers() -> None:
    handler = Handler(drop_connection_times=1)
    sleep = RecordingSleep()
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        outcome = await send_with_retry(mailer, make_message(), attempts=3, sleep=sleep)
    assert outcome.status is DeliveryStatus.SENT
    assert outcome.attempts == 2
    assert len(handler.messages) == 1
    assert server.connections == 2


async def test_connection_refused_is_transient() -> None:
    port = free_port()  # nothing listens there any more
    async with SmtpMailer(settings_for(port)) as mailer:
        with pytest.raises(TransientDeliveryError) as raised:
            await mailer.send(make_message())
        assert raised.value.code is None
        outcome = await send_with_retry(mailer, make_message(), attempts=3, sleep=RecordingSleep())
    assert outcome.status is DeliveryStatus.GAVE_UP
    assert outcome.attempts == 3


async def test_greeting_421_is_transient() -> None:
    async def busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"421 4.3.2 Too busy, try later\r\n")
        await writer.drain()

    async with raw_server(busy) as port, SmtpMailer(settings_for(port)) as mailer:
        with pytest.raises(TransientDeliveryError) as raised:
            await mailer.send(make_message())
    assert raised.value.code == 421


async def test_greeting_554_is_permanent() -> None:
    async def closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.3.2 No SMTP service here\r\n")
        await writer.drain()

    async with raw_server(closed) as port, SmtpMailer(settings_for(port)) as mailer:
        with pytest.raises(PermanentDeliveryError) as raised:
            await mailer.send(make_message())
    assert raised.value.code == 554


async def test_server_that_never_greets_times_out_and_gives_up_in_bounded_time() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, then say nothing until the client leaves

    sleep = RecordingSleep()
    async with (
        raw_server(silent) as port,
        SmtpMailer(settings_for(port, timeout=0.2)) as mailer,
    ):
        started = time.monotonic()
        outcome = await send_with_retry(mailer, make_message(), attempts=3, sleep=sleep)
        elapsed = time.monotonic() - started
    assert outcome.status is DeliveryStatus.GAVE_UP
    assert outcome.attempts == 3
    assert outcome.code is None
    assert "timed out" in (outcome.reason or "").lower()
    assert len(sleep.delays) == 2
    assert 0.5 <= elapsed < 2.0


async def test_server_stalling_in_data_times_out_as_transient() -> None:
    handler = Handler(data_delay=5.0)
    sleep = RecordingSleep()
    async with (
        smtp_server(handler) as server,
        SmtpMailer(settings_for(server.port, timeout=0.2)) as mailer,
    ):
        started = time.monotonic()
        with pytest.raises(TransientDeliveryError):
            await mailer.send(make_message())
        outcome = await send_with_retry(mailer, make_message(), attempts=2, sleep=sleep)
        elapsed = time.monotonic() - started
    assert outcome.status is DeliveryStatus.GAVE_UP
    assert outcome.attempts == 2
    assert handler.messages == []
    assert elapsed < 2.0
    # Every timed-out session was abandoned, not reused in an unknown state.
    assert server.connections == 3


async def test_message_without_recipients_is_permanent() -> None:
    message = make_message()
    del message["To"]
    async with smtp_server() as server, SmtpMailer(settings_for(server.port)) as mailer:
        with pytest.raises(PermanentDeliveryError, match="recipient"):
            await mailer.send(message)


async def test_cancellation_propagates_and_the_session_is_discarded() -> None:
    handler = Handler(data_delay=5.0)
    async with smtp_server(handler) as server, SmtpMailer(settings_for(server.port)) as mailer:
        task = asyncio.create_task(mailer.send(make_message(1)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        handler.data_delay = 0.0
        await mailer.send(make_message(2))
    assert [m.message["Message-ID"] for m in handler.messages] == ["<test-2@portal.example.com>"]
    assert server.connections == 2


# ---------------------------------------------------------------------- TLS and AUTH


async def test_starttls_delivers_over_tls(certificate: Certificate) -> None:
    async with smtp_server(
        tls_context=certificate.server_context(), require_starttls=True
    ) as server:
        settings = settings_for(
            server.port, tls=TlsMode.STARTTLS, ssl_context=certificate.client_context()
        )
        async with SmtpMailer(settings) as mailer:
            await mailer.send(make_message(1))
            await mailer.send(make_message(2))
    assert [m.tls for m in server.handler.messages] == [True, True]
    assert server.connections == 1


async def test_implicit_tls_delivers(certificate: Certificate) -> None:
    async with smtp_server(implicit_tls=certificate.server_context()) as server:
        settings = settings_for(
            server.port, tls=TlsMode.TLS, ssl_context=certificate.client_context()
        )
        async with SmtpMailer(settings) as mailer:
            await mailer.send(make_message())
    assert [m.tls for m in server.handler.messages] == [True]


async def test_mode_none_never_upgrades_even_when_offered(certificate: Certificate) -> None:
    async with (
        smtp_server(tls_context=certificate.server_context()) as server,
        SmtpMailer(settings_for(server.port, tls=TlsMode.NONE)) as mailer,
    ):
        await mailer.send(make_message())
    assert [m.tls for m in server.handler.messages] == [False]


async def test_mode_none_against_a_server_requiring_starttls_is_permanent(
    certificate: Certificate,
) -> None:
    async with (
        smtp_server(tls_context=certificate.server_context(), require_starttls=True) as server,
        SmtpMailer(settings_for(server.port)) as mailer,
    ):
        with pytest.raises(PermanentDeliveryError) as raised:
            await mailer.send(make_message())
    assert raised.value.code == 530


async def test_starttls_required_but_not_offered_is_permanent() -> None:
    async with (
        smtp_server() as server,
        SmtpMailer(settings_for(server.port, tls=TlsMode.STARTTLS)) as mailer,
    ):
        with pytest.raises(PermanentDeliveryError, match=r"(?i)starttls"):
            await mailer.send(make_message())


@pytest.mark.parametrize("mode", [TlsMode.STARTTLS, TlsMode.TLS])
async def test_untrusted_certificate_is_refused_as_permanent(
    certificate: Certificate, mode: TlsMode
) -> None:
    server_kwargs: dict[str, Any] = (
        {"tls_context": certificate.server_context(), "require_starttls": True}
        if mode is TlsMode.STARTTLS
        else {"implicit_tls": certificate.server_context()}
    )
    async with (
        smtp_server(**server_kwargs) as server,
        SmtpMailer(settings_for(server.port, tls=mode)) as mailer,
    ):
        with pytest.raises(PermanentDeliveryError, match="certificate"):
            await mailer.send(make_message())
        # The test toggle: no validation, delivery goes through.
        async with SmtpMailer(settings_for(server.port, tls=mode, validate_certs=False)) as m:
            await m.send(make_message())
    assert len(server.handler.messages) == 1


class Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.expected = LoginPassword(username.encode(), password.encode())
        self.mechanisms: list[str] = []

    def __call__(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        # handled=False: let aiosmtpd answer 535 itself on failure.
        return AuthResult(success=auth_data == self.expected, handled=False)


def auth_server_kwargs(
    certificate: Certificate, authenticator: Authenticator, exclude: Iterable[str]
) -> dict[str, Any]:
    return {
        "tls_context": certificate.server_context(),
        "require_starttls": True,
        "auth_required": True,
        "authenticator": authenticator,
        "auth_exclude_mechanism": list(exclude),
    }


@pytest.mark.parametrize(("mechanism", "exclude"), [("LOGIN", ["PLAIN"]), ("PLAIN", ["LOGIN"])])
async def test_auth_over_starttls(
    certificate: Certificate, mechanism: str, exclude: list[str]
) -> None:
    authenticator = Authenticator("notifier", "s3cret")
    async with smtp_server(**auth_server_kwargs(certificate, authenticator, exclude)) as server:
        settings = settings_for(
            server.port,
            tls=TlsMode.STARTTLS,
            ssl_context=certificate.client_context(),
            username="notifier",
            password="s3cret",
        )
        async with SmtpMailer(settings) as mailer:
            await mailer.send(make_message(1))
            await mailer.send(make_message(2))
    assert authenticator.mechanisms == [mechanism]  # once: the session is reused
    assert len(server.handler.messages) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_auth_over_implicit_tls(certificate: Certificate) -> None:
    authenticator = Authenticator("notifier", "s3cret")
    async with smtp_server(
        implicit_tls=certificate.server_context(),
        auth_required=True,
        authenticator=authenticator,
        # aiosmtpd only counts STARTTLS as TLS; here the whole connection is TLS.
        auth_require_tls=False,
    ) as server:
        settings = settings_for(
            server.port,
            tls=TlsMode.TLS,
            ssl_context=certificate.client_context(),
            username="notifier",
            password="s3cret",
        )
        async with SmtpMailer(settings) as mailer:
            await mailer.send(make_message())
    assert len(authenticator.mechanisms) == 1
    assert [m.tls for m in server.handler.messages] == [True]


async def test_wrong_password_is_permanent(certificate: Certificate) -> None:
    authenticator = Authenticator("notifier", "s3cret")
    async with smtp_server(**auth_server_kwargs(certificate, authenticator, [])) as server:
        settings = settings_for(
            server.port,
            tls=TlsMode.STARTTLS,
            ssl_context=certificate.client_context(),
            username="notifier",
            password="wrong",
        )
        sleep = RecordingSleep()
        async with SmtpMailer(settings) as mailer:
            outcome = await send_with_retry(mailer, make_message(), attempts=3, sleep=sleep)
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.code == 535
    assert sleep.delays == []
    assert server.handler.messages == []


async def test_unauthenticated_send_to_auth_required_server_is_permanent(
    certificate: Certificate,
) -> None:
    authenticator = Authenticator("notifier", "s3cret")
    async with smtp_server(**auth_server_kwargs(certificate, authenticator, [])) as server:
        settings = settings_for(
            server.port, tls=TlsMode.STARTTLS, ssl_context=certificate.client_context()
        )
        async with SmtpMailer(settings) as mailer:
            with pytest.raises(PermanentDeliveryError) as raised:
                await mailer.send(make_message())
    assert raised.value.code == 530


# ----------------------------------------------------------------- retry, in isolation


class ScriptedMailer:
    def __init__(self, script: Iterable[Exception | None]) -> None:
        self.script = deque(script)
        self.calls = 0

    async def send(self, message: Message, *, before_data: BeforeData | None = None) -> None:
        self.calls += 1
        if before_data is not None:
            await before_data()
        step = self.script.popleft()
        if step is not None:
            raise step


async def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    mailer = ScriptedMailer([TransientDeliveryError("busy", code=451)] * 6)
    sleep = RecordingSleep()
    outcome = await send_with_retry(
        mailer, make_message(), attempts=6, base_delay=1.0, max_delay=8.0, sleep=sleep,
        rng=lambda: 1.0,
    )  # fmt: skip
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert outcome == DeliveryOutcome(DeliveryStatus.GAVE_UP, 6, 451, "busy")
    assert mailer.calls == 6
    assert backoff_delay(3, base_delay=1.0, max_delay=60.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(10_000, base_delay=1.0, max_delay=60.0, rng=lambda: 0.25) == 15.0


async def test_retry_stops_at_the_first_permanent_error() -> None:
    mailer = ScriptedMailer(
        [TransientDeliveryError("reset"), PermanentDeliveryError("no such user", code=550)]
    )
    outcome = await send_with_retry(mailer, make_message(), attempts=5, sleep=RecordingSleep())
    assert outcome == DeliveryOutcome(DeliveryStatus.FAILED, 2, 550, "no such user")
    assert not outcome.sent


async def test_retry_lets_unexpected_errors_through() -> None:
    mailer = ScriptedMailer([RuntimeError("bug")])
    with pytest.raises(RuntimeError, match="bug"):
        await send_with_retry(mailer, make_message(), sleep=RecordingSleep())


async def test_retry_with_one_attempt_does_not_sleep() -> None:
    sleep = RecordingSleep()
    outcome = await send_with_retry(
        ScriptedMailer([TransientDeliveryError("x")]), make_message(), attempts=1, sleep=sleep
    )
    assert outcome.status is DeliveryStatus.GAVE_UP
    assert sleep.delays == []
    with pytest.raises(ValueError):
        await send_with_retry(ScriptedMailer([]), make_message(), attempts=0)
