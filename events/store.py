"""A service's store: its eventsourcing event store, read-model tables and tracked positions,
all in one database (SQLite file or PostgreSQL), so a position is always saved in the same
transaction as what it produced."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, ProcessRecorder, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from events.config import StoreUrl

T = TypeVar("T")

# One in-process writer at a time per SQLite file: SQLite's deferred BEGIN can fail at once
# with SQLITE_BUSY when two connections upgrade to writers, whatever the busy timeout.
_SQLITE_WRITE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def write_lock_for(url: StoreUrl) -> threading.RLock | None:
    if url.kind != "sqlite":
        return None
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(url.path, threading.RLock())


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
        super().__init__({**store_url.eventsourcing_env(), **(env or {})})

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    def record(self, *aggregates: Any, tracking: Tracking | None = None) -> int | None:
        """Save the aggregates' pending events and the tracking position in one transaction.

        Returns the last notification id written (None when there was nothing to write and no
        tracking). Raises IntegrityError if the tracking position was already recorded.
        """
        processing_event: ProcessingEvent[Any] = ProcessingEvent(tracking=tracking)
        processing_event.collect_events(*aggregates)
        if not processing_event.events and tracking is None:
            return None
        with self.writing():
            recordings = self._record(processing_event)
        self._notify(recordings)
        if recordings:
            for listener in self.listeners:
                listener()
        return recordings[-1].notification.id if recordings else None

    def tracked(self, name: str) -> int | None:
        return self.process_recorder.max_tracking_id(name)

    @contextmanager
    def writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
        else:
            with self._write_lock:
                yield


class ReadModel:
    """SQL tables beside the event store, written with a tracking position in one transaction.

    SQL is written once with `?` placeholders; PostgreSQL's `%s` is substituted here.
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
        """Run fn in one write transaction, recording `tracking` in the same transaction."""
        with self.app.writing(), self.datastore.transaction(commit=True) as cursor:
            result = fn(_Translating(cursor, self))
            if tracking is not None:
                self.recorder._insert_tracking(cursor, tracking)
            return result

    def read(self, fn: Callable[[Cursor], T]) -> T:
        with self.datastore.transaction(commit=False) as cursor:
            return fn(_Translating(cursor, self))

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
    """A cursor that takes `?` placeholders on both SQLite and PostgreSQL."""

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

    def fetchall(self) -> Any:
        return self._cursor.fetchall()

    def fetchone(self) -> Any:
        return self._cursor.fetchone()
