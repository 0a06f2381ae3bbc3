"""What a service's store needs of its database, and the one place that picks the database.

Each database is one module, with its own SQL: events/sqlite.py and events/postgres.py (as
eventsourcing splits `persistence`, `sqlite` and `postgres`). Code beside them asks the
dialect; it never tests which database it is on.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from eventsourcing.persistence import InfrastructureFactory, StoredEvent

from events.config import StoreUrl
from events.postgres import PostgresDialect
from events.sqlite import SQLiteDialect

T = TypeVar("T")


class Cursor(Protocol):
    """A read model's cursor: sqlite3's own, or psycopg's; each takes its database's SQL."""

    def execute(self, statement: Any, params: Any = ...) -> Any: ...
    def executemany(self, statement: Any, params_seq: Any) -> Any: ...
    def fetchall(self) -> Any: ...
    def fetchone(self) -> Any: ...


class LeaderLock(Protocol):
    """The leadership lock of one service on one store (events/leadership.py)."""

    permanent: bool  # held from the start, never released (one process by construction)

    def acquire(self) -> bool: ...
    def lost(self) -> str | None: ...
    def release(self) -> None: ...


class StoreDialect(Protocol):
    kind: str  # "sqlite" | "postgresql": the store URL's scheme, for messages and metrics
    reads_ahead: bool  # whether a rebuild reads its next batch while it applies one
    mark: str  # the driver's parameter mark, for SQL written beside the dialect modules (tests, tools)
    recorder_class: type

    def write_lock(self, url: StoreUrl) -> threading.RLock | None: ...
    def prepare_factory(self, factory: InfrastructureFactory) -> None: ...
    def select_events_of(self, recorder: Any, ids: Sequence[uuid.UUID]) -> list[StoredEvent]: ...
    def tracking_recorder(self, factory: InfrastructureFactory) -> Any: ...
    def events_table(self, recorder: Any) -> str: ...
    def tracking_table(self, recorder: Any) -> str: ...
    def lock_tracking(self, cursor: Any, recorder: Any, name: str) -> None: ...
    def cursor(self, cursor: Any) -> Cursor: ...
    def read(self, datastore: Any, fn: Callable[[Any], T]) -> T: ...
    def read_one(self, datastore: Any, statement: str, params: Sequence[Any],
                 prepare: bool) -> list[dict[str, Any]]: ...
    def settle(self, datastore: Any, tables: Sequence[str]) -> None: ...
    def leader_lock(self, url: StoreUrl, name: str) -> LeaderLock: ...
    def eventsourcing_env(self, url: StoreUrl) -> dict[str, str]: ...
    def probe(self, url: StoreUrl) -> str | None: ...


DIALECTS: dict[str, StoreDialect] = {"sqlite": SQLiteDialect(), "postgresql": PostgresDialect()}


def dialect_for(url: StoreUrl) -> StoreDialect:
    """The dialect of the store URL's scheme (StoreUrl.kind: postgres:// is postgresql)."""
    return DIALECTS[url.kind]
