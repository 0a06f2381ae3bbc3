"""The few places that reach into eventsourcing's private API, each named here with why.

eventsourcing 9.5.6 offers no public way to read or record a tracking position inside a
transaction of our own, which is what keeps a read model's rows and its position atomic. The
recorders' `_insert_events` overrides (events/sqlite.py, events/postgres.py) and SQLite's
connection factory (`StatementCachingPool`, events/sqlite.py) are the other two uses.
Check these when upgrading eventsourcing.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Tracking


def max_tracking_id(recorder: Any, cursor: Any, name: str) -> int | None:
    """`name`'s position read in the caller's transaction (the public method opens its own)."""
    value: int | None = recorder._max_tracking_id(name, cursor)
    return value


def insert_tracking(recorder: Any, cursor: Any, tracking: Tracking) -> None:
    """Record `tracking` in the caller's transaction, with the rows it produced."""
    recorder._insert_tracking(cursor, tracking)


def replace_pool_class(pool: Any, cls: type) -> None:
    """Swap a pool's class before it opens a connection (the factory builds the pool itself)."""
    pool.__class__ = cls
