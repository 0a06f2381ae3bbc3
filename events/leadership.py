"""Leadership: among the instances of a service on one store, one at a time runs the jobs that
must not run once per instance (relaying the outbox, sending email, scheduling).

Several instances share one store (they scale the consumer with the partitions); if each
relayed the outbox or sent the deliveries, every event or email would go out once per
instance. The lock dies with its holder (a killed process closes its file and its connection),
so a restarted or surviving instance takes over within one poll of `Runtime`'s leading loop.
Each store's lock is its dialect's: a PostgreSQL advisory lock (events/postgres.py), a file
lock beside a SQLite database (events/sqlite.py), or none for SQLite in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from eventsourcing.persistence import Notification

from events.config import StoreUrl
from events.dialect import dialect_for
from events.follower import LogFollower

log = logging.getLogger("events.leadership")


class Leadership:
    """The leadership lock of `name` (the service) on a store; `held` says whether it is ours."""

    def __init__(self, store: StoreUrl, name: str) -> None:
        self.store = store
        self.name = name
        self._leader_lock = dialect_for(store).leader_lock(store, name)
        self._lock = threading.Lock()
        self.held = self._leader_lock.permanent

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        with self._lock:
            if self.held:
                return self._check()
            self.held = self._leader_lock.acquire()
            if self.held:
                log.info("this process now leads %s (%s)", self.name, self.store.describe())
            return self.held

    def release(self) -> None:
        with self._lock:
            self._leader_lock.release()
            if not self._leader_lock.permanent:
                self.held = False

    def _check(self) -> bool:
        """Still ours? A broken session has lost its lock."""
        reason = self._leader_lock.lost()
        if reason is None:
            return True
        log.warning("lost the leadership of %s (%s); another instance may take over", self.name, reason)
        self.held = False
        return False


class LeaderOnly(LogFollower):
    """A follower that runs only in the instance holding the leadership; elsewhere it does
    nothing (its position is shared through the store, so the next leader goes on from it)."""

    def __init__(self, inner: LogFollower, leadership: Leadership) -> None:
        super().__init__(inner.app)
        self.inner = inner
        self.leadership = leadership
        self.name = inner.name

    def position(self) -> int:
        return self.inner.position()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.inner.bind(loop)

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        self.inner.process(notifications, last_id)

    def catch_up(self, until: int | None = None) -> int:
        return self.inner.catch_up(until) if self.leadership.held else 0
