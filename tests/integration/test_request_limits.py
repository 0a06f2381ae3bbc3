"""The client directory as served (uvicorn, the real broker and store): a huge or slow request
is refused before the API reads it, and other callers are answered meanwhile (issue: a 200 MB
body without a token took 13 s and 1 GB, and /healthz stalled)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import psutil
import pytest

from tests.harness import auth, client_directory

pytestmark = pytest.mark.integration


async def send_head(port: int, head: bytes, body: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_a_200_mb_command_without_a_token_is_refused_before_it_is_read(broker, stores) -> None:
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (service, _api):
        port = service.settings.http_port
        rss_before = psutil.Process(os.getpid()).memory_info().rss
        started = time.monotonic()
        head = (b"POST /v1/clients/c-1/reminders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 209715200\r\n\r\n")
        answer = await send_head(port, head, b"{" + b" " * 65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:120]
        with_token = head.replace(b"host: x\r\n", b"host: x\r\nauthorization: "
                                  + auth("u", "f", "admin")["Authorization"].encode() + b"\r\n")
        assert (await send_head(port, with_token)).startswith(b"HTTP/1.1 413")
        assert time.monotonic() - started < 5
        assert psutil.Process(os.getpid()).memory_info().rss - rss_before < 50 * 2**20


async def test_a_command_with_a_forged_token_is_refused_before_its_body_arrives(broker, stores) -> None:
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (service, _api):
        head = (b"PUT /v1/clients/c-1/notifications HTTP/1.1\r\nhost: x\r\nauthorization: Bearer forged\r\n"
                b"content-type: application/json\r\ncontent-length: 40\r\n\r\n")
        answer = await send_head(service.settings.http_port, head)  # the body never comes
        assert answer.startswith(b"HTTP/1.1 401"), answer[:120]


async def test_huge_headers_are_a_431_and_health_answers_meanwhile(broker, stores) -> None:
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (service, api):
        port = service.settings.http_port
        huge = asyncio.create_task(send_head(
            port, b"GET /v1/clients HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 10_000_000 + b"\r\n\r\n"))
        assert (await api.get("/healthz")).status_code == 200
        assert (await huge).startswith(b"HTTP/1.1 431")
