"""Leadership: one notifier process at a time schedules, dispatches and sends.

Several replicas share one store (DESIGN.md 3: they scale the consumer with the partitions);
if each followed the deliveries and sent them, every email would go out once per replica.
The lock dies with its holder (a killed process closes its file and its connection), so a
restarted or surviving replica takes over within one `poll` interval.

- PostgreSQL: a session-level advisory lock held on a dedicated connection (scoped to the
  database; the key also names the schema, so two notifiers in one database stay apart).
- SQLite: an exclusive `flock` on a file beside the database (one host by construction).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from typing import IO, Any

import psycopg

from events.config import StoreUrl

log = logging.getLogger("notifier.leader")


class Leadership:
    def __init__(self, store: StoreUrl, name: str = "notifier") -> None:
        self.store = store
        self.name = name
        self._file: IO[bytes] | None = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.held = store.kind == "sqlite" and store.path == ":memory:"

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
                log.info("this process is now the notifier's sender (%s)", self.store.describe())
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
            if not (self.store.kind == "sqlite" and self.store.path == ":memory:"):
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
            log.warning("cannot reach PostgreSQL for the sender lock: %s", error)
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
            log.warning("lost the sender lock (%s); another replica may take over", error)
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
            self.held = False
            return False
