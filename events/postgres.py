"""The PostgreSQL side of a service's store: its recorder (with the inbox table), a read's
single snapshot, the tracking lock of concurrent writers, and the leadership's advisory lock.

The other store is events/sqlite.py; `events.dialect.dialect_for` picks one per store URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder, PostgresTrackingRecorder
from psycopg import sql

from events.config import StoreUrl
from events.internals import insert_tracking, max_tracking_id
from events.recorders import COLUMNS, InboxEntry, chunks, inbox_filter, inbox_table_name, stored_ids, stored_text

T = TypeVar("T")
log = logging.getLogger("events.leadership")


def lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for `text`."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PostgresInboxRecorder(PostgresProcessRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events",
                 tracking_table_name: str = "notification_tracking") -> None:
        super().__init__(datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name)
        self.inbox_table_name = inbox_table_name(events_table_name)
        self.check_identifier_length(self.inbox_table_name + "_subject")
        table = sql.SQL("{}.{}").format(sql.Identifier(datastore.schema), sql.Identifier(self.inbox_table_name))
        self._inbox_table = table
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        # COLLATE "C": ids compare bytewise, as in SQLite and Python, whatever the server's locale.
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ({} text COLLATE \"C\" PRIMARY KEY, {}, seq bigserial)"
        ).format(table, sql.Identifier(COLUMNS[0]),
                 sql.SQL(", ").join(sql.SQL("{} text NOT NULL").format(sql.Identifier(c)) for c in COLUMNS[1:])))
        # Only when missing: CREATE INDEX takes a share lock on the table even when the index
        # exists, and a process opening the store (another instance, an on-call command) then
        # deadlocked with a running one that held inbox rows and waited for the events table.
        index = sql.SQL("{}.{}").format(sql.Identifier(datastore.schema),
                                        sql.Identifier(self.inbox_table_name + "_subject"))
        self.sql_create_statements.append(sql.SQL(
            "DO $$ BEGIN IF to_regclass({}) IS NULL THEN "
            "CREATE INDEX IF NOT EXISTS {} ON {} (partner_id, subject, received_at); END IF; END $$"
        ).format(sql.Literal(index.as_string(None)), sql.Identifier(self.inbox_table_name + "_subject"), table))
        self._insert_inbox = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table, columns, sql.SQL(", ").join(sql.Placeholder() for _ in COLUMNS))
        self._select_inbox = sql.SQL("SELECT {} FROM {}").format(columns, table)

    # Private hook: the one place eventsourcing runs our statements inside its write transaction.
    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        entries: Sequence[InboxEntry] = kwargs.get("inbox", ())
        if entries:
            curs.executemany(self._insert_inbox, [e.row() for e in entries])
        for tracking in kwargs.get("trackings", ()):  # a fetch's partitions, in the order given
            insert_tracking(self, curs, tracking)
        super()._insert_events(curs, stored_events, **kwargs)

    def inbox_received(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids were received already, as stored (`stored_text`)."""
        found: set[str] = set()
        statement = sql.SQL("SELECT event_id FROM {} WHERE event_id = ANY(%s)").format(self._inbox_table)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for chunk in chunks(stored_ids(event_ids)):
                curs.execute(statement, (list(chunk),), prepare=True)
                found.update(row["event_id"] for row in curs.fetchall())
        return found

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int | None]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return {name: max_tracking_id(self, curs, name) for name in names}

    def inbox_entry(self, event_id: str) -> InboxEntry | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql.SQL("{} WHERE event_id = %s").format(self._select_inbox), [stored_text(event_id)])
            row = curs.fetchone()
            return InboxEntry.from_row(row) if row is not None else None

    def inbox_entries(self, *, partner_id: str | None, subject: str | None, limit: int) -> list[InboxEntry]:
        where, params = inbox_filter(partner_id, subject, "%s")
        # A batch's entries share their time: seq keeps the order they were applied in.
        statement = sql.SQL("{}{} ORDER BY received_at DESC, seq DESC LIMIT %s").format(
            self._select_inbox, sql.SQL(where))  # `where` holds only column names and marks
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, [*params, limit])
            return [InboxEntry.from_row(row) for row in reversed(curs.fetchall())]

    def inbox_count(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql.SQL("SELECT COUNT(*) AS n FROM {}").format(self._inbox_table))
            row = curs.fetchone()
            return int(row["n"]) if row else 0

    def inbox_is_empty(self) -> bool:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql.SQL("SELECT 1 AS yes FROM {} LIMIT 1").format(self._inbox_table))
            return curs.fetchone() is None


class AdvisoryLock:
    """Leadership on PostgreSQL: a session-level advisory lock held on a dedicated connection
    (scoped to the database; the key also names the schema, so two services in one database
    stay apart). Closing the session, or its breaking, releases it."""

    permanent = False

    def __init__(self, url: StoreUrl, name: str) -> None:
        self.url, self.name = url, name
        self.key = lock_key(f"{name}/{url.schema}")
        self._conn: Any = None

    def acquire(self) -> bool:
        url = self.url
        try:
            conn = psycopg.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                                   dbname=url.dbname, autocommit=True, connect_timeout=5)
        except psycopg.Error as error:
            log.warning("cannot reach PostgreSQL for the leadership lock of %s: %s", self.name, error)
            return False
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            conn.close()
            return False
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def lost(self) -> str | None:
        """Why the lock is no longer ours (a broken session has lost it), or None."""
        if self._conn is None:
            return None
        try:
            self._conn.execute("SELECT 1")
            return None
        except psycopg.Error as error:
            self.release()
            return str(error)

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class PostgresDialect:
    kind = "postgresql"
    reads_ahead = True  # the server reads one batch while this process folds another
    mark = "%s"  # psycopg's parameter mark
    recorder_class: type = PostgresInboxRecorder

    def eventsourcing_env(self, url: StoreUrl) -> dict[str, str]:
        """The eventsourcing library's environment for this store."""
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.dbname,
            "POSTGRES_HOST": url.host,
            "POSTGRES_PORT": str(url.port),
            "POSTGRES_USER": url.user,
            "POSTGRES_PASSWORD": url.password,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "5",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "CREATE_TABLE": "y",
        }
        if url.schema:
            env["POSTGRES_SCHEMA"] = url.schema
        return env

    def probe(self, url: StoreUrl) -> str | None:
        """Why the database cannot be reached now, in the driver's words (None: it can)."""
        try:
            with psycopg.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                                 dbname=url.dbname, connect_timeout=3):
                return None
        except psycopg.Error as error:
            return " ".join(str(error).split())

    def write_lock(self, url: StoreUrl) -> threading.RLock | None:
        return None  # the server serializes writers

    def prepare_factory(self, factory: InfrastructureFactory) -> None:
        return

    def select_events_of(self, recorder: Any, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        """The stored events of these aggregates, in one query, by aggregate and version."""
        query = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=sql.Identifier(recorder.datastore.schema), table=sql.Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (list(ids),), prepare=True)
            return [StoredEvent(originator_id=r["originator_id"], originator_version=r["originator_version"],
                                topic=r["topic"], state=bytes(r["state"])) for r in curs.fetchall()]

    def tracking_recorder(self, factory: InfrastructureFactory) -> Any:
        return factory.tracking_recorder(PostgresTrackingRecorder)

    def events_table(self, recorder: Any) -> str:
        return f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'

    def tracking_table(self, recorder: Any) -> str:
        return str(recorder.tracking_table_name)

    def lock_tracking(self, cursor: Any, recorder: Any, name: str) -> None:
        """Make this transaction the only writer of `name` to its end. Without it, two
        transactions applying overlapping batches interleave (double counts, deadlocks).
        The first statement: the rest see the other's commit."""
        key = lock_key(f"{recorder.datastore.schema}.{recorder.tracking_table_name}/{name}")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def cursor(self, cursor: Any) -> Any:
        return cursor

    def read(self, datastore: Any, fn: Callable[[Any], T]) -> T:
        # READ COMMITTED takes a snapshot per statement: a page read its tab counts before a
        # projection's commit and its rows after. REPEATABLE READ, read only: one snapshot for
        # the transaction, and a read-only one is never refused for serialization.
        with datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                result = fn(cursor)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return result

    def read_one(self, datastore: Any, statement: str, params: Sequence[Any], prepare: bool) -> list[dict[str, Any]]:
        # The connection is in autocommit: the statement is its own transaction and snapshot.
        with datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params, prepare=prepare)
            return list(cursor.fetchall())

    def settle(self, datastore: Any, tables: Sequence[str]) -> None:
        # VACUUM cannot run in a transaction: the pool's connections are in autocommit.
        with datastore.get_connection() as conn:
            for table in tables:
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))

    def leader_lock(self, url: StoreUrl, name: str) -> AdvisoryLock:
        return AdvisoryLock(url, name)
