"""A service's store: its eventsourcing event store, read-model tables and tracked positions,
all in one database (SQLite file or PostgreSQL), so a position is always saved in the same
transaction as what it produced.

What differs between the two databases is in events/sqlite.py and events/postgres.py,
picked once per store by `events.dialect.dialect_for`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    Environment,
    InfrastructureFactory,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)

from events.config import StoreUrl
from events.dialect import Cursor, StoreDialect, dialect_for
from events.internals import insert_tracking, max_tracking_id
from events.recorders import InboxEntry, InboxRecorder

__all__ = ["Cursor", "EventStoreApplication", "ReadModel"]

T = TypeVar("T")

# The received-event aggregate that held the inbox before the inbox table (events/inbox.py).
LEGACY_INBOX_TOPIC = "events.inbox:ReceivedEvent.Created"


class EventStoreApplication(Application[Any]):
    """An eventsourcing Application whose recorder also records tracking positions.

    Subclasses pin `name` (table names and env prefixes must not follow class renames).
    """

    store_url: StoreUrl

    def __init__(self, store_url: StoreUrl, env: dict[str, str] | None = None) -> None:
        self.store_url = store_url
        self.dialect: StoreDialect = dialect_for(store_url)
        self._write_lock = self.dialect.write_lock(store_url)
        # Called (from whichever thread wrote) after each write: followers wake on it.
        self.listeners: list[Callable[[], None]] = []
        recorder = self.dialect.recorder_class
        super().__init__({**self.dialect.eventsourcing_env(store_url),
                          "PROCESS_RECORDER_TOPIC": f"{recorder.__module__}:{recorder.__qualname__}",
                          **(env or {})})
        self._adopt_legacy_inbox()

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        factory = super().construct_factory(env)
        self.dialect.prepare_factory(factory)
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
        return cast(InboxRecorder, self.recorder)

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
                # object (slow on Python 3.11; see docs/BENCHMARKS.md).
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
            recordings = self.events.put(processing_event.events, tracking=processing_event.tracking,
                                         **processing_event.saved_kwargs)
        self._cache(processing_event)
        if recordings:
            for listener in self.listeners:
                listener()
        return recordings[-1].notification.id if recordings else None

    def _cache(self, processing_event: ProcessingEvent[Any]) -> None:
        """What Application's own recording does after a write: cached aggregates are replaced."""
        cache = self.repository.cache
        if cache and not self.repository.fastforward:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                cache.put(aggregate_id, aggregate)

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
                # (slow on Python 3.11; see docs/BENCHMARKS.md).
                aggregate: Any = None
                for stored in stored_events:
                    aggregate = self.mapper.to_domain_event(stored).mutate(aggregate)  # type: ignore[attr-defined]
                if aggregate is not None:
                    found[aggregate_id] = aggregate
        return found

    def _select_events_of(self, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        return self.dialect.select_events_of(self.recorder, ids) if ids else []

    @contextmanager
    def writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
        else:
            with self._write_lock:
                yield


class ReadModel:
    """SQL tables beside the event store, written with a tracking position in one transaction.

    The cursors given to `write`, `read` and `query` are the database's own (sqlite3's or
    psycopg's): the SQL run on them is written for that database.
    """

    def __init__(self, app: EventStoreApplication) -> None:
        self.app = app
        self.dialect = app.dialect
        self.kind = self.dialect.kind
        self.recorder: Any = self.dialect.tracking_recorder(app.factory)
        self.datastore = self.recorder.datastore

    @property
    def mark(self) -> str:
        """The parameter mark of the database's driver: `?` (SQLite) or `%s` (PostgreSQL)."""
        return self.dialect.mark

    @property
    def tracking_table(self) -> str:
        """The tracking table, as the read model's SQL names it."""
        return self.dialect.tracking_table(self.recorder)

    @property
    def events_table(self) -> str:
        """The event store's table, as the read model's SQL names it."""
        return self.dialect.events_table(self.app.recorder)

    def write(self, fn: Callable[[Cursor], T], tracking: Tracking | None = None) -> T:
        """Run fn in one write transaction, recording `tracking` in the same transaction (see
        `write_after`: with `tracking`, fn is not run if that position is recorded already)."""
        if tracking is not None:
            return self.write_after(lambda c, _position: fn(c), tracking)
        with self.app.writing(), self.datastore.transaction(commit=True) as cursor:
            return fn(self.dialect.cursor(cursor))

    def write_after(self, fn: Callable[[Cursor, int], T], tracking: Tracking) -> T:
        """Run fn(cursor, position) in one write transaction and record `tracking` in it.

        Instances on one database run the same followers, each from the position it read when
        its batch began: another may have gone past it since. `position` is the last one
        recorded under the tracking's name, read in this transaction once it is the only writer
        of that name (`lock_tracking`). fn applies only the notifications after `position` and
        reads whatever else it depends on through the cursor; the rows it reads were written
        with that position. A batch the position covers already is not applied again: fn is
        not run, and IntegrityError is raised, as recording a position twice does.
        """
        name, last_id = tracking.application_name, tracking.notification_id
        with self.app.writing(), self.datastore.transaction(commit=True) as cursor:
            self.dialect.lock_tracking(cursor, self.recorder, name)
            position = max_tracking_id(self.recorder, cursor, name) or 0
            if position >= last_id:
                raise IntegrityError(f"{name}: position {last_id} is covered already (at {position})")
            result = fn(self.dialect.cursor(cursor), position)
            insert_tracking(self.recorder, cursor, tracking)
            return result

    def read(self, fn: Callable[[Cursor], T]) -> T:
        """Run fn's statements on one snapshot of the store: a page's counts and rows agree even
        when a projection commits between them."""
        return self.dialect.read(self.datastore, fn)

    def read_one(self, statement: str, params: Sequence[Any] = (), *, prepare: bool = False) -> list[dict[str, Any]]:
        """The rows of one statement, which sees one snapshot by itself: on PostgreSQL without
        a transaction around it (one round trip, not three), prepared on its connection when
        `prepare` (planned once per connection; not for statements whose best plan depends on
        their parameters)."""
        return self.dialect.read_one(self.datastore, statement, params, prepare)

    def settle(self, tables: Sequence[str]) -> None:
        """After tables were rebuilt in bulk: on PostgreSQL, VACUUM (ANALYZE) them, so the planner
        knows their sizes and index-only scans need not visit the table (autovacuum would, a
        minute or more later). SQLite's plans are written for no statistics: nothing."""
        self.dialect.settle(self.datastore, tables)

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
