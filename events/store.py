"""A service's store: its eventsourcing event store, read-model tables and tracked positions,
all in one database (SQLite file or PostgreSQL), so a position is always saved in the same
transaction as what it produced."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    Environment,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteFactory,
    SQLiteTrackingRecorder,
)
from psycopg import sql

from events.config import StoreUrl
from events.recorders import InboxEntry, InboxRecorder, PostgresInboxRecorder, SQLiteInboxRecorder

T = TypeVar("T")

# The received-event aggregate that held the inbox before the inbox table (events/inbox.py).
LEGACY_INBOX_TOPIC = "events.inbox:ReceivedEvent.Created"

# One in-process writer at a time per SQLite file: SQLite's deferred BEGIN can fail at once
# with SQLITE_BUSY when two connections upgrade to writers, whatever the busy timeout.
_SQLITE_WRITE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def write_lock_for(url: StoreUrl) -> threading.RLock | None:
    if url.kind != "sqlite":
        return None
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(url.path, threading.RLock())


# SQLite statements each connection keeps prepared (read model, queries, event store).
SQLITE_STATEMENT_CACHE = 512
# In WAL mode, NORMAL syncs the log at checkpoints instead of at every commit (SQLite's advice
# for WAL). A killed process loses nothing; a power cut may undo the last commits, and then
# their Kafka positions with them (the records are consumed again) and unsent mail stays due.
# The embedded store is for local runs and single hosts; production runs PostgreSQL.
SQLITE_SYNCHRONOUS = "NORMAL"


class _StatementCachingPool(SQLiteConnectionPool):
    """eventsourcing 9.5.6 opens SQLite connections with `cached_statements=True`, which
    sqlite3 reads as a cache of ONE statement: every execute was parsed and planned again
    (more than half of a projection's time). The same connection, with a real cache."""

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


class Cursor(Protocol):
    def execute(self, statement: Any, params: Any = None) -> Any: ...
    def fetchall(self) -> Any: ...
    def fetchone(self) -> Any: ...


class EventStoreApplication(Application[Any]):
    """An eventsourcing Application whose recorder also records tracking positions.

    Subclasses pin `name` (table names and env prefixes must not follow class renames).
    """

    store_url: StoreUrl

    def __init__(self, store_url: StoreUrl, env: dict[str, str] | None = None) -> None:
        self.store_url = store_url
        self._write_lock = write_lock_for(store_url)
        # Called (from whichever thread wrote) after each write: followers wake on it.
        self.listeners: list[Callable[[], None]] = []
        recorder = SQLiteInboxRecorder if store_url.kind == "sqlite" else PostgresInboxRecorder
        super().__init__({**store_url.eventsourcing_env(),
                          "PROCESS_RECORDER_TOPIC": f"{recorder.__module__}:{recorder.__qualname__}",
                          **(env or {})})
        self._adopt_legacy_inbox()

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        factory = super().construct_factory(env)
        if isinstance(factory, SQLiteFactory) and type(factory.datastore.pool) is SQLiteConnectionPool:
            # No connection is open yet: the recorders (and read models) open theirs from here.
            factory.datastore.pool.__class__ = _StatementCachingPool
        return factory

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    @property
    def inbox(self) -> InboxRecorder:
        """The recorder's inbox table: which event ids were received, and what came of them."""
        assert isinstance(self.recorder, SQLiteInboxRecorder | PostgresInboxRecorder)
        return self.recorder

    def record(self, *aggregates: Any, tracking: Tracking | None = None,
               trackings: Sequence[Tracking] = ()) -> int | None:
        """Save the aggregates' pending events (and events given as such), inbox entries and the
        tracking positions (`tracking` and each of `trackings`) in one transaction.

        Returns the last notification id written (None when there was nothing to write and no
        tracking). Raises IntegrityError if a tracking position was already recorded.
        """
        processing_event: ProcessingEvent[Any] = ProcessingEvent(tracking=tracking)
        if trackings:
            # To the recorder's _insert_events, which inserts them in the order given (eventsourcing
            # would insert `tracking` after them: a fetch's positions all go this way).
            processing_event.saved_kwargs["trackings"] = list(trackings)
        inbox: list[InboxEntry] = []
        for aggregate in aggregates:
            if isinstance(aggregate, InboxEntry):
                inbox.append(aggregate)
            elif isinstance(aggregate, Aggregate):
                # What collect_events() does, without its two runtime Protocol checks per
                # object (slow on Python 3.11: a tenth of the time of an inbox batch).
                processing_event.events.extend(aggregate.collect_events())
                processing_event.aggregates[aggregate.id] = aggregate
            elif isinstance(aggregate, Aggregate.Event):
                processing_event.events.append(aggregate)
            else:
                processing_event.collect_events(aggregate)
        if not processing_event.events and tracking is None and not trackings and not inbox:
            return None
        if inbox:
            processing_event.saved_kwargs["inbox"] = inbox  # to the recorder's _insert_events
        with self.writing():
            recordings = self._record(processing_event)
        self._notify(recordings)
        if recordings:
            for listener in self.listeners:
                listener()
        return recordings[-1].notification.id if recordings else None

    def tracked(self, name: str) -> int | None:
        return self.process_recorder.max_tracking_id(name)

    def tracked_many(self, names: Sequence[str]) -> dict[str, int | None]:
        """Each name's position, read on one connection (a fetch's partitions at once)."""
        return self.inbox.max_tracking_ids(names)

    def _adopt_legacy_inbox(self) -> None:
        """Stores written before the inbox table kept an aggregate per received event: their
        entries are copied into the table once (while it is empty), so deduplication and
        `events show` go on seeing them."""
        if not self.inbox.inbox_is_empty():
            return
        start: int | None = None
        while page := self.recorder.select_notifications(start=start, limit=5000, topics=[LEGACY_INBOX_TOPIC],
                                                         inclusive_of_start=start is None):
            entries = []
            for notification in page:
                old: Any = self.mapper.to_domain_event(notification)
                entries.append(InboxEntry(old.event_id, old.event_type, old.partner_id, old.subject, old.source,
                                          old.kafka_position, old.outcome, old.reason, old.timestamp))
            self.record(*entries)
            start = page[-1].id

    def load(self, ids: Iterable[uuid.UUID], chunk: int = 500) -> dict[uuid.UUID, Any]:
        """The current state of each of these aggregates that exists, read in one query per
        `chunk` ids (where `repository.get` costs a transaction per aggregate)."""
        wanted = list(dict.fromkeys(ids))
        if self.snapshots is not None:  # snapshots would need their own query: one at a time
            return {i: self.repository.get(i) for i in wanted if i in self.repository}
        found: dict[uuid.UUID, Any] = {}
        for start in range(0, len(wanted), chunk):
            by_id: dict[uuid.UUID, list[StoredEvent]] = {}
            for stored in self._select_events_of(wanted[start:start + chunk]):
                by_id.setdefault(stored.originator_id, []).append(stored)  # type: ignore[arg-type]
            for aggregate_id, stored_events in by_id.items():
                # What project_aggregate does, without its runtime Protocol check per event
                # (slow on Python 3.11: half the cost of loading an aggregate).
                aggregate: Any = None
                for stored in stored_events:
                    aggregate = self.mapper.to_domain_event(stored).mutate(aggregate)  # type: ignore[attr-defined]
                if aggregate is not None:
                    found[aggregate_id] = aggregate
        return found

    def _select_events_of(self, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        recorder: Any = self.recorder
        if not ids:
            return []
        if self.store_url.kind == "sqlite":
            statement = (f"SELECT originator_id, originator_version, topic, state FROM {recorder.events_table_name} "
                         f"WHERE originator_id IN ({','.join('?' * len(ids))}) "
                         "ORDER BY originator_id, originator_version")
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(statement, [i.hex for i in ids])
                return [StoredEvent(originator_id=recorder.convert_originator_id(r[0]), originator_version=r[1],
                                    topic=r[2], state=r[3]) for r in c.fetchall()]
        query = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=sql.Identifier(recorder.datastore.schema), table=sql.Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (list(ids),), prepare=True)
            return [StoredEvent(originator_id=r["originator_id"], originator_version=r["originator_version"],
                                topic=r["topic"], state=bytes(r["state"])) for r in curs.fetchall()]

    @contextmanager
    def writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
        else:
            with self._write_lock:
                yield


class ReadModel:
    """SQL tables beside the event store, written with a tracking position in one transaction.

    SQL is written once with `?` parameter marks; PostgreSQL's `%s` is substituted here.
    """

    def __init__(self, app: EventStoreApplication) -> None:
        self.app = app
        self.kind = app.store_url.kind
        if self.kind == "sqlite":
            self.recorder: Any = app.factory.tracking_recorder(SQLiteTrackingRecorder)
        else:
            self.recorder = app.factory.tracking_recorder(PostgresTrackingRecorder)
        self.datastore = self.recorder.datastore

    def sql(self, statement: str) -> str:
        if self.kind == "sqlite":
            return statement
        return statement.replace("%", "%%").replace("?", "%s")

    def write(self, fn: Callable[[Cursor], T], tracking: Tracking | None = None) -> T:
        """Run fn in one write transaction, recording `tracking` in the same transaction (see
        `write_after`: with `tracking`, fn is not run if that position is recorded already)."""
        if tracking is not None:
            return self.write_after(lambda c, _position: fn(c), tracking)
        with self.app.writing(), self.datastore.transaction(commit=True) as cursor:
            return fn(self._cursor(cursor))

    def write_after(self, fn: Callable[[Cursor, int], T], tracking: Tracking) -> T:
        """Run fn(cursor, position) in one write transaction and record `tracking` in it.

        Instances on one database run the same followers, each from the position it read when
        its batch began: another may have gone past it since. `position` is the last one
        recorded under the tracking's name, read in this transaction once it is the only writer
        of that name (PostgreSQL: an advisory lock held to the end of the transaction; SQLite:
        one writer at a time). fn applies only the notifications after `position` and reads
        whatever else it depends on through the cursor; the rows it reads were written with
        that position. A batch the position covers already is not applied again: fn is not
        run, and IntegrityError is raised, as recording a position twice does.
        """
        name, last_id = tracking.application_name, tracking.notification_id
        with self.app.writing(), self.datastore.transaction(commit=True) as cursor:
            if self.kind != "sqlite":
                # Without it, two transactions applying overlapping batches interleave (double
                # counts, deadlocks). The first statement: the rest see the other's commit.
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(name),))
            position = self.recorder._max_tracking_id(name, cursor) or 0
            if position >= last_id:
                raise IntegrityError(f"{name}: position {last_id} is covered already (at {position})")
            result = fn(self._cursor(cursor), position)
            self.recorder._insert_tracking(cursor, tracking)
            return result

    def _lock_key(self, name: str) -> int:
        text = f"{self.datastore.schema}.{self.recorder.tracking_table_name}/{name}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)

    def _cursor(self, cursor: Any) -> Cursor:
        # SQLite takes `?` as written: its own cursor, without two Python layers per statement
        # (eventsourcing's wrapper adds nothing; errors are translated when the transaction ends).
        if self.kind == "sqlite":
            return cast(Cursor, cursor.sqlite_cursor)
        return _Translating(cursor, self)

    def read(self, fn: Callable[[Cursor], T]) -> T:
        """Run fn's statements on one snapshot of the store: a page's counts and rows agree even
        when a projection commits between them."""
        if self.kind != "sqlite":
            # PostgreSQL's default READ COMMITTED takes a snapshot per statement: a page read its
            # tab counts before a projection's commit and its rows after (a client listed in a
            # tab counted empty, so hidden). REPEATABLE READ, read only: one snapshot for the
            # transaction, and a read-only one is never refused for serialization.
            with self.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    result = fn(self._cursor(cursor))
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
                return result
        # SQLite (WAL): a read transaction keeps the snapshot of its first read to its end.
        with self.datastore.transaction(commit=False) as cursor:
            return fn(self._cursor(cursor))

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run(c: Cursor) -> list[dict[str, Any]]:
            c.execute(statement, params)
            return [dict(row) for row in c.fetchall()]

        return self.read(run)

    def tracked(self, name: str) -> int | None:
        value: int | None = self.recorder.max_tracking_id(name)
        return value

    def set_tracking(self, name: str, position: int) -> None:
        with contextlib.suppress(IntegrityError):  # already there or further on
            self.write(lambda c: None, Tracking(name, position))


class _Translating:
    """A cursor that takes `?` parameter marks on both SQLite and PostgreSQL."""

    def __init__(self, cursor: Any, model: ReadModel) -> None:
        self._cursor = cursor
        self._model = model

    def execute(self, statement: Any, params: Any = None) -> Any:
        if isinstance(statement, str):
            statement = self._model.sql(statement)
        if params is None:
            return self._cursor.execute(statement)
        return self._cursor.execute(statement, params)

    def executemany(self, statement: str, seq: Sequence[Any]) -> Any:
        statement = self._model.sql(statement)
        if self._model.kind == "sqlite":
            return self._cursor.executemany(statement, seq)
        return self._cursor.executemany(statement, seq)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """PostgreSQL's COPY ... FROM STDIN: rows inserted in one statement, none parsed as SQL."""
        with self._cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def fetchall(self) -> Any:
        return self._cursor.fetchall()

    def fetchone(self) -> Any:
        return self._cursor.fetchone()
