"""The event store's recorders, with the inbox table beside the stored events.

Every inbound CloudEvent id is recorded once, as a row of the inbox table, in the same
transaction as the events it caused and the Kafka position (eventsourcing passes the rows
through `insert_events(..., inbox=...)` to `_insert_events`, which runs inside that
transaction on both stores). The primary key on the event id is what makes a second arrival
of the same event, at any offset or from another instance, change nothing.

A row rather than an aggregate per event: an aggregate cost a stored event (mapping,
encoding, an index entry in the notification log) for each inbound event, more than the
effects of most events themselves, and on-call's "what came in about this client" was a scan
of the whole log; the table answers it from an index.

The recorders also take `trackings=[...]`: more partitions' positions in the same transaction
(a fetch from several partitions is applied as one unit of work).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteProcessRecorder
from psycopg import sql

COLUMNS = ("event_id", "event_type", "partner_id", "subject", "source", "kafka_position", "outcome", "reason",
           "received_at")
CHUNK = 500  # ids per IN (...) / = ANY(...) lookup


@dataclass(frozen=True)
class InboxEntry:
    """One inbound event as received: where it came from and what came of it."""

    event_id: str
    event_type: str
    partner_id: str
    subject: str
    source: str
    kafka_position: str  # topic:partition:offset, or where else it came from ("api", ...)
    outcome: str  # applied | rejected
    reason: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> tuple[str, ...]:
        return (stored_text(self.event_id), stored_text(self.event_type), stored_text(self.partner_id),
                stored_text(self.subject), stored_text(self.source), self.kafka_position, self.outcome,
                stored_text(self.reason), self.received_at.isoformat(timespec="microseconds"))

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.received_at.isoformat(timespec="seconds"), "id": self.event_id, "type": self.event_type,
                "partner": self.partner_id, "subject": self.subject, "position": self.kafka_position,
                "outcome": self.outcome, "reason": self.reason}

    @classmethod
    def from_row(cls, row: Any) -> InboxEntry:
        values = {name: row[name] for name in COLUMNS}
        values["received_at"] = datetime.fromisoformat(values["received_at"])
        return cls(**values)


def stored_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL, and an event carrying one (rejected for it) must still
    be recorded, or its batch would fail for good: NUL is kept as U+FFFD, on both stores alike."""
    return text.replace("\x00", "\ufffd")


def inbox_table_name(events_table_name: str) -> str:
    """`stored_events` → `stored_inbox`; PostgreSQL's `clientdirectory_events` → `clientdirectory_inbox`."""
    return events_table_name.removesuffix("_events") + "_inbox"


def _stored_ids(event_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(stored_text(event_id) for event_id in event_ids))


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


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

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        entries: Sequence[InboxEntry] = kwargs.get("inbox", ())
        if entries:
            c.executemany(self._insert_inbox, [e.row() for e in entries])
        for tracking in kwargs.get("trackings", ()):  # a fetch's partitions, in the order given
            self._insert_tracking(c, tracking)
        return super()._insert_events(c, stored_events, **kwargs)

    def inbox_received(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids were received already, as stored (`stored_text`)."""
        found: set[str] = set()
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(_stored_ids(event_ids)):
                c.execute(f"SELECT event_id FROM {self.inbox_table_name} WHERE event_id IN "
                          f"({','.join('?' * len(chunk))})", list(chunk))
                found.update(row[0] for row in c.fetchall())
        return found

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int | None]:
        with self.datastore.transaction(commit=False) as c:
            return {name: self._max_tracking_id(name, c) for name in names}

    def inbox_entry(self, event_id: str) -> InboxEntry | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"{self._select_inbox} WHERE event_id = ?", [stored_text(event_id)])
            row = c.fetchone()
            return InboxEntry.from_row(row) if row is not None else None

    def inbox_entries(self, *, partner_id: str | None, subject: str | None, limit: int) -> list[InboxEntry]:
        where, params = _filter(partner_id, subject, "?")
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


def _filter(partner_id: str | None, subject: str | None, mark: str) -> tuple[str, list[str]]:
    terms, params = [], []
    if partner_id is not None:
        terms.append(f"partner_id = {mark}")
        params.append(stored_text(partner_id))
    if subject is not None:
        terms.append(f"subject = {mark}")
        params.append(stored_text(subject))
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


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

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        entries: Sequence[InboxEntry] = kwargs.get("inbox", ())
        if entries:
            curs.executemany(self._insert_inbox, [e.row() for e in entries])
        for tracking in kwargs.get("trackings", ()):  # a fetch's partitions, in the order given
            self._insert_tracking(curs, tracking)
        super()._insert_events(curs, stored_events, **kwargs)

    def inbox_received(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        statement = sql.SQL("SELECT event_id FROM {} WHERE event_id = ANY(%s)").format(self._inbox_table)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for chunk in _chunks(_stored_ids(event_ids)):
                curs.execute(statement, (list(chunk),), prepare=True)
                found.update(row["event_id"] for row in curs.fetchall())
        return found

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int | None]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return {name: self._max_tracking_id(name, curs) for name in names}

    def inbox_entry(self, event_id: str) -> InboxEntry | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql.SQL("{} WHERE event_id = %s").format(self._select_inbox), [stored_text(event_id)])
            row = curs.fetchone()
            return InboxEntry.from_row(row) if row is not None else None

    def inbox_entries(self, *, partner_id: str | None, subject: str | None, limit: int) -> list[InboxEntry]:
        where, params = _filter(partner_id, subject, "%s")
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


InboxRecorder = SQLiteInboxRecorder | PostgresInboxRecorder
