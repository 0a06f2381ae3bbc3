"""The retry policy of one email: quick retries of transient failures, with full jitter.

What happens after the quick retries (an outage pauses the sender, another 4xx defers the
email) is the sender's decision (application/sender.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from services.notifier.application.ports import (
    BeforeData,
    Mailer,
    Message,
    PermanentDeliveryError,
    TransientDeliveryError,
    message_id_of,
)

log = logging.getLogger("notifier.retry")


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


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float, rng: Callable[[], float]) -> float:
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
            log.info("transient SMTP failure for %s (attempt %d/%d): %s", message_id_of(message), attempt,
                     attempts, exc)
            if attempt < attempts:
                await sleep(backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay, rng=rng))
        else:
            return DeliveryOutcome(DeliveryStatus.SENT, attempt)
    assert last is not None
    return DeliveryOutcome(DeliveryStatus.GAVE_UP, attempts, last.code, last.message)
