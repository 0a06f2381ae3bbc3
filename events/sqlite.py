"""The SQLite side of a service's store: its recorder (with the inbox table), connections that
keep their statements prepared, one writer per file, and the leadership's file lock.

The other store is events/postgres.py; `events.dialect.dialect_for` picks one per store URL.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar, cast

from eventsourcing.persistence import InfrastructureFactory, InterfaceError, StoredEvent
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)

from events.config import StoreUrl
from events.internals import insert_tracking, max_tracking_id, replace_pool_class
from events.recorders import (
    COLUMNS,
    InboxEntry,
    chunks,
    inbox_filter,
    inbox_table_name,
    stored_ids,
    stored_text,
)

T = TypeVar("T")

# SQLite statements each connection keeps prepared (read model, queries, event store).
SQLITE_STATEMENT_CACHE = 512
# In WAL mode, NORMAL syncs the log at checkpoints instead of at every commit (SQLite's advice
# for WAL). A killed process loses nothing; a power cut may undo the last commits, and then
# their Kafka positions with them (the records are consumed again) and unsent mail stays due.
# The embedded store is for local runs and single hosts; production runs PostgreSQL.
SQLITE_SYNCHRONOUS = "NORMAL"

# One in-process writer at a time per SQLite file: SQLite's deferred BEGIN can fail at once
# with SQLITE_BUSY when two connections upgrade to writers, whatever the busy timeout.
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


class StatementCachingPool(SQLiteConnectionPool):
    """eventsourcing 9.5.6 opens SQLite connections with `cached_statements=True`, which
    sqlite3 reads as a cache of ONE statement: every execute was parsed and planned again.
    The same connection, with a real cache."""

    # Private hook: the pool offers no other way to pass sqlite3.connect's arguments.
    def _create_connection(self) -> SQLiteConnection:
        try:
            c = sqlite3.connect(database=self.db_name, uri=True, check_same_thread=False, isolation_level=None,
                                cached_statements=SQLITE_STATEMENT_CACHE,
                                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT)
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode:
            if not self.is_journal_mode_wal:
                cursor = c.cursor()
                cursor.execute("PRAGMA journal_mode;")
                if cursor.fetchone()[0].lower() != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL;")
                    self.journal_mode_was_changed_to_wal = True
                self.is_journal_mode_wal = True
            c.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        c.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=c, max_age=self.max_age)


class SQLiteInboxRecorder(SQLiteProcessRecorder):
    def __init__(self, datastore: SQLiteDatastore, *, events_table_name: str = "stored_events") -> None:
        self.inbox_table_name = inbox_table_name(events_table_name)  # the base __init__ reads it
        super().__init__(datastore, events_table_name=events_table_name)
        t = self.inbox_table_name
        self._insert_inbox = f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        self._select_inbox = f"SELECT {', '.join(COLUMNS)} FROM {t}"

    def construct_create_table_statements(self) -> list[str]:
        t = self.inbox_table_name
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {t} ({' TEXT NOT NULL, '.join(COLUMNS)} TEXT NOT NULL, "
            "PRIMARY KEY (event_id))",
            f"CREATE INDEX IF NOT EXISTS {t}_subject ON {t} (partner_id, subject, received_at)",
        ]

    # Private hook: the one place eventsourcing runs our statements inside its write transaction.
    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        entries: Sequence[InboxEntry] = kwargs.get("inbox", ())
        if entries:
            c.executemany(self._insert_inbox, [e.row() for e in entries])
        for tracking in kwargs.get("trackings", ()):  # a fetch's partitions, in the order given
            insert_tracking(self, c, tracking)
        return super()._insert_events(c, stored_events, **kwargs)

    def inbox_received(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids were received already, as stored (`stored_text`)."""
        found: set[str] = set()
        with self.datastore.transaction(commit=False) as c:
            for chunk in chunks(stored_ids(event_ids)):
                c.execute(f"SELECT event_id FROM {self.inbox_table_name} WHERE event_id IN "
                          f"({','.join('?' * len(chunk))})", list(chunk))
                found.update(row[0] for row in c.fetchall())
        return found

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int | None]:
        with self.datastore.transaction(commit=False) as c:
            return {name: max_tracking_id(self, c, name) for name in names}

    def inbox_entry(self, event_id: str) -> InboxEntry | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"{self._select_inbox} WHERE event_id = ?", [stored_text(event_id)])
            row = c.fetchone()
            return InboxEntry.from_row(row) if row is not None else None

    def inbox_entries(self, *, partner_id: str | None, subject: str | None, limit: int) -> list[InboxEntry]:
        where, params = inbox_filter(partner_id, subject, "?")
        with self.datastore.transaction(commit=False) as c:
            # A batch's entries share their time: rowid keeps the order they were applied in.
            c.execute(f"{self._select_inbox}{where} ORDER BY received_at DESC, rowid DESC LIMIT ?",
                      [*params, limit])
            return [InboxEntry.from_row(row) for row in reversed(c.fetchall())]

    def inbox_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM {self.inbox_table_name}")
            return int(c.fetchone()[0])

    def inbox_is_empty(self) -> bool:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT 1 FROM {self.inbox_table_name} LIMIT 1")
            return c.fetchone() is None


class FileLock:
    """Leadership on SQLite: an exclusive `flock` on a file beside the database (one host by
    construction); closing the file (or dying) releases it."""

    permanent = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> bool:
        handle = open(self.path, "ab")  # noqa: SIM115 - held open on purpose
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

    def lost(self) -> str | None:
        return None  # a held flock cannot be lost

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class AlwaysLeader:
    """SQLite in memory: one process by construction, so always the leader."""

    permanent = True

    def acquire(self) -> bool:
        return True

    def lost(self) -> str | None:
        return None

    def release(self) -> None:
        return


class SQLiteDialect:
    kind = "sqlite"
    # A rebuild reads its next batch while applying one only where the server works apart.
    reads_ahead = False
    mark = "?"  # sqlite3's parameter mark
    recorder_class: type = SQLiteInboxRecorder

    def write_lock(self, url: StoreUrl) -> threading.RLock | None:
        with _LOCKS_GUARD:
            return _WRITE_LOCKS.setdefault(url.path, threading.RLock())

    def prepare_factory(self, factory: InfrastructureFactory) -> None:
        if isinstance(factory, SQLiteFactory) and type(factory.datastore.pool) is SQLiteConnectionPool:
            # No connection is open yet: the recorders (and read models) open theirs from here.
            replace_pool_class(factory.datastore.pool, StatementCachingPool)

    def select_events_of(self, recorder: Any, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        """The stored events of these aggregates, in one query, by aggregate and version."""
        statement = (f"SELECT originator_id, originator_version, topic, state FROM {recorder.events_table_name} "
                     f"WHERE originator_id IN ({','.join('?' * len(ids))}) ORDER BY originator_id, originator_version")
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, [i.hex for i in ids])
            return [StoredEvent(originator_id=recorder.convert_originator_id(r[0]), originator_version=r[1],
                                topic=r[2], state=r[3]) for r in c.fetchall()]

    def tracking_recorder(self, factory: InfrastructureFactory) -> Any:
        return factory.tracking_recorder(SQLiteTrackingRecorder)

    def events_table(self, recorder: Any) -> str:
        return str(recorder.events_table_name)

    def tracking_table(self, recorder: Any) -> str:
        return "tracking"

    def lock_tracking(self, cursor: Any, recorder: Any, name: str) -> None:
        return  # one writer at a time already (`write_lock`)

    def cursor(self, cursor: Any) -> Any:
        # sqlite3's own cursor: eventsourcing's wrapper adds a Python layer per statement and
        # nothing else (errors are translated when the transaction ends).
        return cast(SQLiteCursor, cursor).sqlite_cursor

    def read(self, datastore: Any, fn: Callable[[Any], T]) -> T:
        # WAL: a read transaction keeps the snapshot of its first read to its end.
        with datastore.transaction(commit=False) as cursor:
            return fn(cursor.sqlite_cursor)

    def read_one(self, datastore: Any, statement: str, params: Sequence[Any], prepare: bool) -> list[dict[str, Any]]:
        # sqlite3 keeps every statement prepared already (StatementCachingPool).
        with datastore.transaction(commit=False) as cursor:
            c = cursor.sqlite_cursor
            c.execute(statement, params)
            return [dict(row) for row in c.fetchall()]

    def settle(self, datastore: Any, tables: Sequence[str]) -> None:
        return  # the read models' plans and hints are written for no statistics

    def eventsourcing_env(self, url: StoreUrl) -> dict[str, str]:
        """The eventsourcing library's environment for this store."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": url.path if url.path != ":memory:" else "file::memory:?cache=shared",
            "SQLITE_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": "y",
        }

    def probe(self, url: StoreUrl) -> str | None:
        """Why the database cannot be reached now (None: a file always can be opened or made)."""
        return None

    def leader_lock(self, url: StoreUrl, name: str) -> FileLock | AlwaysLeader:
        return AlwaysLeader() if url.path == ":memory:" else FileLock(f"{url.path}.{name}.lock")
