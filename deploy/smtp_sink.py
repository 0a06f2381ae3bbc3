"""An SMTP sink on aiosmtpd: keeps every message in memory and, for `make run`, as a file
under a folder (var/mail/). Local development and tests only."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope


class SinkHandler:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._changed = threading.Condition()
        if folder:
            folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if self.folder:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            name = f"{stamp}-{len(self.messages):06d}.eml"
            (self.folder / name).write_bytes(raw)
        with self._changed:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, predicate: Callable[[list[EmailMessage]], bool], timeout: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching mail after {timeout}s; {len(self.messages)} messages in the sink")
                self._changed.wait(remaining)
            return list(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        with self._changed:
            return [m for m in self.messages if address in str(m["To"])]


def start_sink(port: int, folder: Path | None = None, host: str = "127.0.0.1") -> tuple[Controller, SinkHandler]:
    handler = SinkHandler(folder)
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    return controller, handler
