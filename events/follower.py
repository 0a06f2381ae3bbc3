"""Following an event store's notification log from a tracked position.

Projections and the outbox relay are followers: each reads the notifications after its
tracked position, does its work and records the new position (the projection in the same
transaction as its rows). The SQLite recorder has no subscribe(), so followers poll, and are
woken early when the same process writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence

from eventsourcing.persistence import IntegrityError, Notification

from events.metrics import PROJECTION_LAG
from events.store import EventStoreApplication

log = logging.getLogger("events.follower")

# The inbox's record of each inbound event and the outbox's messages: plumbing, as many
# notifications as the facts themselves, and no projection's business. (Pinned TOPICs of
# events.inbox.ReceivedEvent.Created and events.outbox.OutboundMessage.Created.)
PLUMBING_TOPICS = frozenset({"events.inbox:ReceivedEvent.Created", "events.outbox:OutboundMessage.Created"})


class LogFollower(ABC):
    """Base: `name` is the tracking name; subclasses implement `process`."""

    name: str
    batch_size = 500
    topics: Sequence[str] = ()
    # A follower of the whole log (no `topics`) moves its position over these without
    # decoding them: its position stays the log's head when it is caught up.
    skips: Collection[str] = PLUMBING_TOPICS

    def __init__(self, app: EventStoreApplication) -> None:
        self.app = app
        self._lock = threading.Lock()

    @abstractmethod
    def position(self) -> int:
        """The last notification id applied (0 before the first)."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The runtime's event loop, given before the first batch: followers run in a worker
        thread, and those that publish must hand their coroutines to that loop."""
        return  # most followers only read and write the store

    @abstractmethod
    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        """Apply the notifications and record last_id, atomically where the work allows."""

    def relevant(self, notifications: Sequence[Notification]) -> Sequence[Notification]:
        """The notifications `process` is given; the batch's last id is recorded all the same."""
        if self.topics or not self.skips:
            return notifications
        return [n for n in notifications if n.topic not in self.skips]

    def pending(self, limit: int | None = None) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=self.position(),
            limit=limit or self.batch_size,
            topics=self.topics,
            inclusive_of_start=False,
        )

    def catch_up(self, until: int | None = None) -> int:
        """Apply everything pending (up to `until`, if given). Returns how many were applied."""
        applied = 0
        with self._lock:  # one runner at a time in this process
            while True:
                start = self.position()
                if until is not None and start >= until:
                    break
                batch = self.app.recorder.select_notifications(
                    start=start, limit=self.batch_size, topics=self.topics, inclusive_of_start=False
                )
                if not batch:
                    break
                try:
                    self.process(self.relevant(batch), batch[-1].id)
                except IntegrityError:
                    # Another instance on the same store recorded this position first (every
                    # instance projects): go on from the position it reached.
                    if self.position() <= start:
                        raise  # not that: a real conflict
                    continue
                applied += len(batch)
        with contextlib.suppress(Exception):  # metrics must never break processing
            head = self.app.recorder.max_notification_id() or 0
            PROJECTION_LAG.labels(self.app.name, self.name).set(
                max(0, head - self.position()) if not self.topics else 0
            )
        return applied


class FollowerRunner:
    """Runs followers in a background thread: every `interval` or when woken."""

    def __init__(self, followers: Sequence[LogFollower], interval: float = 0.05) -> None:
        self.followers = list(followers)
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False
        self.errors = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self, on_error: Callable[[Exception], None] | None = None) -> None:
        delay = self.interval
        while not self._stopping:
            try:
                for follower in self.followers:
                    await asyncio.to_thread(follower.catch_up)
                delay = self.interval
            except Exception as error:
                self.errors += 1
                log.exception("follower failed; retrying in %.1fs", delay)
                if on_error:
                    on_error(error)
                delay = min(max(delay * 2, 0.5), 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
