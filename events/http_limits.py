"""Bounds on what one HTTP request may cost, before any route runs.

FastAPI reads and parses a JSON body before the dependencies that check the caller, with no
size limit of its own, and uvicorn's httptools parser takes headers of any size. So the
limits live below the application: the request head is counted as it is parsed (431), the
body is refused from its Content-Length or while it streams in (413), a request that writes
to the API must name a valid caller before its body is read (401), and a request whose head
or body trickles in is cut off (408).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

# uvicorn's protocol for its httptools parser: the only place its module path is named.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# Raises for a caller who may not write (the API's 401); given the Authorization header.
Authenticate = Callable[[str | None], object]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Limits:
    """A command's body is small: a reminder's comment of 4,000 characters, JSON-escaped,
    stays under 32 KiB."""

    max_body: int = 32 * 1024
    max_head: int = 32 * 1024
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    # Paths (prefixes) that take larger bodies, with their own limit.
    larger_bodies: tuple[tuple[str, int], ...] = ()

    def body_limit(self, path: str) -> int:
        for prefix, limit in self.larger_bodies:
            if path.startswith(prefix):
                return limit
        return self.max_body


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


TITLES = {400: "Bad Request", 401: "Unauthorized", 408: "Request Timeout", 413: "Content Too Large"}


async def _answer(send: Send, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """An RFC 9457 problem, as the API answers its own errors."""
    body = json.dumps({"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
                       "detail": reason}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: a request body over its route's limit is a 413 before the route runs,
    told by Content-Length or counted as it arrives; writes to `/v1/` are authenticated
    before their body is read; a body that trickles in slower than `body_timeout` is a 408."""

    def __init__(self, app: ASGIApp, limits: Limits, authenticate: Authenticate | None = None) -> None:
        self.app, self.limits, self.authenticate = app, limits, authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            limit = self._admit(scope)
        except _Refused as refused:
            await _answer(send, refused.status, refused.reason, _challenge(refused.status))
            return
        started, refusal = False, _Refusal()

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refusal.error is not None and not started:
                return  # the app's own answer to the refusal (a 500 from its error handler)
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _bounded(receive, limit, self.limits.body_timeout, refusal), tracked_send)
        except Exception:
            if refusal.error is None or started:
                raise
        if refusal.error is not None and not started:
            await _answer(send, refusal.error.status, refusal.error.reason)

    def _admit(self, scope: Scope) -> int:
        """The body limit of this request, or why it is refused before reading anything."""
        headers = dict(scope["headers"])
        limit = self.limits.body_limit(scope["path"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise _Refused(400, "Content-Length is not a number")
            if int(length) > limit:
                raise _Refused(413, f"request body over {limit} bytes")
        if self.authenticate is not None and scope["method"] in BODY_METHODS and scope["path"].startswith("/v1/"):
            authorization = headers.get(b"authorization")
            try:
                self.authenticate(authorization.decode("latin-1") if authorization is not None else None)
            except Exception as error:
                raise _Refused(401, str(getattr(error, "detail", None) or "missing bearer token")) from None
        return limit


def _challenge(status: int) -> list[tuple[bytes, bytes]]:
    return [(b"www-authenticate", b'Bearer realm="partner-portal"')] if status == 401 else []


class _Refusal:
    """Why a request's body was refused, once it was: the app unwinds, then it is answered."""

    error: _Refused | None = None


def _bounded(receive: Receive, limit: int, timeout: float, refusal: _Refusal) -> Receive:
    """`receive`, refusing a body once it passes `limit` bytes or stalls for `timeout` s. Once
    the body is in, `receive` only waits for the client to go (a streamed response listens for
    that as long as it streams): no deadline then."""
    seen, complete = 0, False

    async def bounded_receive() -> Message:
        nonlocal seen, complete
        if complete:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            refusal.error = _Refused(408, f"request body not received within {timeout:g} s")
            raise refusal.error from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                refusal.error = _Refused(413, f"request body over {limit} bytes")
                raise refusal.error
            complete = not message.get("more_body", False)
        return message

    return bounded_receive


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request head (request line and
    headers: 431 past `max_head` bytes) and on the time the head may take to arrive (the
    connection is closed after `head_timeout` s), so a slow or huge head ties up nothing."""

    max_head = Limits.max_head
    head_timeout = Limits.head_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm_head_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        if self.transport.is_closing():  # refused while its head was parsed
            return
        super().on_headers_complete()

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head and not self.transport.is_closing():
            self._disarm_head_deadline()
            body = b"request head (request line and headers) too large"
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                                 b"connection: close\r\ncontent-length: " + str(len(body)).encode()
                                 + b"\r\n\r\n" + body)
            self.transport.close()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        loop = asyncio.get_running_loop()
        self._head_deadline = loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        # Between requests an idle keep-alive connection is uvicorn's to close; only a head
        # that started (or a connection that never sent one) is cut here.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def protocol_with(limits: Limits) -> type[BoundedHttpProtocol]:
    """The protocol class uvicorn builds per connection, carrying these limits."""
    return type("LimitedHttpProtocol", (BoundedHttpProtocol,),
                {"max_head": limits.max_head, "head_timeout": limits.head_timeout})
