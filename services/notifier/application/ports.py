"""What the notifier's application needs from the outside, as interfaces.

Adapters implement these (`adapters/smtp` the mailer, `adapters/kafka_offsets` the fact
watermark); `bootstrap.py` chooses which, and tests give fakes. The application imports
nothing from `adapters/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol, TypeAlias

# The time now, timezone-aware (tests move it by hand).
Clock: TypeAlias = Callable[[], datetime]

# Tracking name of each fact partition -> its last offset, which must be applied before a
# reminder's recipients are chosen; None when the broker cannot be asked.
FactWatermark: TypeAlias = Callable[[], Awaitable[dict[str, int] | None]]

# Awaited after the envelope was accepted and before DATA: the server cannot accept the
# message until it returns.
BeforeData: TypeAlias = Callable[[], Awaitable[object]]


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


def message_id_of(message: Message) -> str | None:
    if isinstance(message, EmailMessage):
        return message.get("Message-ID")
    return message.message_id


class DeliveryError(Exception):
    """A message was not delivered. `code` is the SMTP reply code when there was one."""

    def __init__(self, message: str, *, code: int | None = None,
                 refused: Mapping[str, tuple[int, str]] | None = None) -> None:
        super().__init__(f"{code} {message}" if code is not None else message)
        self.code = code
        self.message = message
        # Per-recipient refusals (address -> (code, reply)), when the server named them.
        self.refused: dict[str, tuple[int, str]] = dict(refused or {})


class TransientDeliveryError(DeliveryError):
    """May succeed later (4xx, no answer): the application retries with backoff."""


class PermanentDeliveryError(DeliveryError):
    """Will not succeed as is (5xx, bad certificate, missing extension): record the failure."""


class Mailer(Protocol):
    """Delivers a message or raises `TransientDeliveryError` / `PermanentDeliveryError`.
    `before_data` is only ever passed when given."""

    async def send(self, message: Message, *, before_data: BeforeData | None = None) -> None: ...
