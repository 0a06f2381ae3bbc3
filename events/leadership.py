"""Leadership: among the instances of a service on one store, one at a time runs the jobs that
must not run once per instance (relaying the outbox, sending email, scheduling).

Several instances share one store (DESIGN.md 3: they scale the consumer with the partitions);
if each relayed the outbox or sent the deliveries, every event or email would go out once per
instance. The lock dies with its holder (a killed process closes its file and its connection),
so a restarted or surviving instance takes over within one poll of `Runtime`'s leading loop.

- PostgreSQL: a session-level advisory lock held on a dedicated connection (scoped to the
  database; the key also names the schema, so two services in one database stay apart).
- SQLite: an exclusive `flock` on a file beside the database (one host by construction).
- SQLite in memory: one process by construction, so always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import IO, Any

import psycopg
from eventsourcing.persistence import Notification

from events.config import StoreUrl
from events.follower import LogFollower

log = logging.getLogger("events.leadership")


class Leadership:
    """The leadership lock of `name` (the service) on a store; `held` says whether it is ours."""

    def __init__(self, store: StoreUrl, name: str) -> None:
        self.store = store
        self.name = name
        self._file: IO[bytes] | None = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.held = self._in_memory()

    def _in_memory(self) -> bool:
        return self.store.kind == "sqlite" and self.store.path == ":memory:"

    def key(self) -> int:
        digest = hashlib.sha256(f"{self.name}/{self.store.schema}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        with self._lock:
            if self.held:
                return self._check()
            if self.store.kind == "sqlite":
                self.held = self._flock()
            else:
                self.held = self._advisory()
            if self.held:
                log.info("this process now leads %s (%s)", self.name, self.store.describe())
            return self.held

    def release(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()  # closing releases the flock
                self._file = None
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()  # closing the session releases the advisory lock
                self._conn = None
            if not self._in_memory():
                self.held = False

    # --- SQLite ----------------------------------------------------------------------------------

    def _flock(self) -> bool:
        handle = open(f"{self.store.path}.{self.name}.lock", "ab")  # noqa: SIM115 - held open on purpose
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    # --- PostgreSQL ------------------------------------------------------------------------------

    def _advisory(self) -> bool:
        url = self.store
        try:
            conn = psycopg.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                                   dbname=url.dbname, autocommit=True, connect_timeout=5)
        except psycopg.Error as error:
            log.warning("cannot reach PostgreSQL for the leadership lock of %s: %s", self.name, error)
            return False
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key(),)).fetchone()
        except psycopg.Error:
            conn.close()
            return False
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def _check(self) -> bool:
        """Still ours? A broken session has lost its advisory lock."""
        if self._conn is None:
            return True
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error as error:
            log.warning("lost the leadership of %s (%s); another instance may take over", self.name, error)
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
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
