"""Starting the services in-process against the session's broker, stores and SMTP sink."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import jwt

from deploy.localbroker import free_port
from events.config import KafkaSettings, StoreUrl
from events.runtime import serve
from services.client_directory.bootstrap import ClientDirectoryService
from services.client_directory.bootstrap import bootstrap as build_directory
from services.client_directory.config import Settings as DirectorySettings
from services.notifier.adapters.smtp import SmtpSettings
from services.notifier.bootstrap import NotifierService
from services.notifier.bootstrap import bootstrap as build_notifier
from services.notifier.config import Settings as NotifierSettings
from tests.secret import SECRET

__all__ = ["SECRET", "auth", "client_directory", "eventually", "notifier", "token"]

T = TypeVar("T")


def token(user_id: str, partner_id: str, role: str, *, secret: str = SECRET, expires_in: int = 3600,
          **extra: Any) -> str:
    claims = {"sub": user_id, "partner_id": partner_id, "role": role,
              "exp": datetime.now(UTC) + timedelta(seconds=expires_in), **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


def auth(user_id: str, partner_id: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, partner_id, role)}"}


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0, every: float = 0.1) -> T:
    """Poll until `check` returns something truthy (the consumers are asynchronous)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except AssertionError as error:
            last = error
        else:
            if last:
                return last
        await asyncio.sleep(every)
    raise AssertionError(f"not true after {timeout}s: last result {last!r}")


async def _serve(api: Any, runtime: Any, port: int) -> AsyncIterator[httpx.AsyncClient]:
    task = asyncio.create_task(serve(api, runtime, "127.0.0.1", port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        async def ready() -> bool:
            if task.done():
                task.result()
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await eventually(ready, timeout=60)
            yield client
        finally:
            runtime.runner.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@contextlib.asynccontextmanager
async def client_directory(bootstrap: str, store_url: str, *, group_id: str | None = None, **overrides: Any
                           ) -> AsyncIterator[tuple[ClientDirectoryService, httpx.AsyncClient]]:
    """`overrides` are further Settings fields (e.g. dev_mode=True, dev_mail_dir=...)."""
    port = free_port()
    settings = DirectorySettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap), store=StoreUrl.parse("CLIENT_DIRECTORY_DB", store_url),
        http_host="127.0.0.1", http_port=port, jwt_secret=SECRET, portal_base_url="https://portal.test",
        group_id=group_id or f"client-directory-{uuid.uuid4().hex[:6]}", **overrides,
    )
    service = await asyncio.to_thread(build_directory, settings, session_timeout_ms=3000)
    async for client in _serve(service.api, service.runtime, port):
        yield service, client


@contextlib.asynccontextmanager
async def notifier(bootstrap: str, store_url: str, smtp_port: int, *, group_id: str | None = None
                   ) -> AsyncIterator[tuple[NotifierService, httpx.AsyncClient]]:
    port = free_port()
    settings = NotifierSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap), store=StoreUrl.parse("NOTIFIER_DB", store_url),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, timeout=5.0),
        mail_from="Partner portal <no-reply@portal.test>", portal_base_url="https://portal.test",
        public_base_url=f"http://127.0.0.1:{port}", http_host="127.0.0.1", http_port=port,
        group_id=group_id or f"notifier-{uuid.uuid4().hex[:6]}", unsubscribe_secret=SECRET,
    )
    def build() -> NotifierService:
        built = build_notifier(settings, session_timeout_ms=3000, retry_base_delay=0.05)
        assert built.api is not None and built.runtime is not None  # built here, off the event loop
        return built

    service = await asyncio.to_thread(build)
    async for client in _serve(service.api, service.runtime, port):
        yield service, client
