"""What one HTTP request may cost: a huge or slow request is refused before any route reads
it, and other callers are answered meanwhile (events.http_limits, served by events.runtime)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from events.http_limits import Limits
from events.runtime import Swappable, http_server
from tests.harness import eventually

LIMITS = Limits(max_body=1024, max_head=4096, head_timeout=1.0, body_timeout=1.0,
                larger_bodies=(("/v1/bulk", 8192),))
GOOD = "Bearer good"


def checked(authorization: str | None) -> str:
    if authorization != GOOD:
        raise HTTPException(401, "invalid token")
    return "caller"


def application() -> tuple[FastAPI, list[int]]:
    api = FastAPI()
    api.state.authenticate = checked
    parsed: list[int] = []

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/v1/things")
    async def things(request: Request) -> dict[str, Any]:
        body = await request.body()
        parsed.append(len(body))
        return {"bytes": len(body)}

    @api.post("/v1/bulk")
    async def bulk(request: Request) -> dict[str, Any]:
        return {"bytes": len(await request.body())}

    return api, parsed


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[int, list[int]]]:
    api, parsed = application()
    server = http_server(Swappable(api), "127.0.0.1", 0, LIMITS)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(_started(server), timeout=10)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield port, parsed
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _started(server: Any) -> Any:
    async def check() -> bool:
        return bool(server.started)
    return check


async def raw(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(65536), read_timeout)
    finally:
        writer.close()


async def test_a_body_over_the_limit_is_refused_from_its_content_length_before_it_is_sent() -> None:
    async with served() as (port, parsed):
        head = (b"POST /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer good\r\n"
                b"content-type: application/json\r\ncontent-length: 209715200\r\n\r\n")
        answer = await raw(port, head)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        assert b"over 1024 bytes" in answer
        assert parsed == []


async def test_a_streamed_body_is_cut_off_once_it_passes_the_limit() -> None:
    async with served() as (port, parsed):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer good\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        with contextlib.suppress(ConnectionError):
            for _ in range(3):  # 3 KiB of the 10 MB this caller would send
                writer.write(chunk)
                await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        assert parsed == []


async def test_a_write_without_a_valid_caller_is_refused_before_its_body_is_read() -> None:
    async with served() as (port, parsed):
        # The head promises a body that never comes: a 401 at once shows nothing waited for it.
        head = b"POST /v1/things HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n"
        answer = await raw(port, head, read_timeout=0.9)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        assert b"www-authenticate: bearer" in answer.lower()
        head = b"POST /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer forged\r\ncontent-length: 2\r\n\r\n{}"
        assert (await raw(port, head)).startswith(b"HTTP/1.1 401")
        assert parsed == []


async def test_a_route_named_for_larger_bodies_takes_them_and_others_do_not() -> None:
    async with served() as (port, _), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        body = b"x" * 4000
        assert (await client.post("/v1/bulk", content=body, headers={"Authorization": GOOD})).json() == {"bytes": 4000}
        assert (await client.post("/v1/things", content=body, headers={"Authorization": GOOD})).status_code == 413
        small = await client.post("/v1/things", content=b"x" * 1000, headers={"Authorization": GOOD})
        assert small.json() == {"bytes": 1000}


async def test_a_request_head_over_the_limit_is_a_431_and_the_connection_closes() -> None:
    async with served() as (port, _):
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 10_000_000 + b"\r\n\r\n"
        answer = await raw(port, head)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]


async def test_a_head_or_body_that_trickles_in_is_cut_off_and_others_are_answered_meanwhile() -> None:
    async with served() as (port, _), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # never finished
        await writer.drain()
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server after 1 s
        writer.close()

        slow = b"POST /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer good\r\ncontent-length: 10\r\n\r\n{"
        answer = await raw(port, slow)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


@pytest.mark.parametrize("length", [b"-1", b"ten", b"1e9"])
async def test_a_content_length_that_is_not_a_number_is_a_400(length: bytes) -> None:
    async with served() as (port, parsed):
        head = b"POST /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer good\r\ncontent-length: " + length
        answer = await raw(port, head + b"\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        assert parsed == []


async def test_a_streamed_response_outlives_the_body_deadline() -> None:
    """After the request body is in, waiting for the client to go is not a body that stalls:
    a response streamed longer than `body_timeout` is not cut off."""
    api, _ = application()

    @api.get("/v1/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def ticks() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0.6)  # 1.8 s in all, over the 1 s body deadline
                yield f"tick {n}\n".encode()
        return StreamingResponse(ticks(), media_type="text/plain")

    server = http_server(Swappable(api), "127.0.0.1", 0, LIMITS)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(_started(server), timeout=10)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/v1/slow-stream")
        assert response.text == "tick 0\ntick 1\ntick 2\n"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
