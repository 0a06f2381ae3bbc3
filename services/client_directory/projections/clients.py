"""The Clients page read model: one row per client relationship, one row per assignment,
the firm's members and their email settings, kept in step with the event store by a
tracked follower (rows and position in one transaction).

Every tab is one index range walked in sort order (see `ClientsSQL.schema`): a firm's tab
costs the same whether the firm has 50 or 50,000 clients, and no query touches another
firm's rows.

Where things are: the fold over a batch of events is fold.py (plain Python); the SQL common
to both databases is sql.py, and each database's own is sqlite.py and postgres.py; the API's
reads are queries.py, who sees which tab access.py, the page cursor cursor.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from contracts.api import TabId
from events.dialect import Cursor
from events.follower import LogFollower
from events.store import EventStoreApplication, ReadModel
from services.client_directory.projections.access import (
    ACCOUNTANT_TABS,
    ADMIN_TABS,
    HIDDEN_WHEN_EMPTY,
    TAB_ROWS,
    Caller,
    TabForbidden,
    assigned_only,
    tabs_for,
)
from services.client_directory.projections.cursor import BadCursor, InvalidCursor, decode_cursor, encode_cursor
from services.client_directory.projections.fold import TOPICS, ClientsFold, paused_gc
from services.client_directory.projections.queries import DEFAULT_NOTIFICATIONS, ClientQueries, clients_sql
from services.client_directory.projections.sql import QUERY_INDEXES, SCHEMA_VERSION, TABLES, index_name

__all__ = [
    "ACCOUNTANT_TABS", "ADMIN_TABS", "DEFAULT_NOTIFICATIONS", "HIDDEN_WHEN_EMPTY", "QUERY_INDEXES", "SCHEMA_VERSION",
    "TABLES", "TAB_ROWS", "BadCursor", "Caller", "ClientQueries", "ClientsProjection", "InvalidCursor",
    "TabForbidden", "accountants_query", "assigned_only", "count_query", "decode_cursor", "encode_cursor",
    "index_name", "recount_query", "tab_query", "tabs_for",
]


class ClientsProjection(LogFollower):
    """Applies relationship, figures, member and preference events to the tables, a batch at a
    time: read what the batch needs, fold it in memory (fold.py), write what changed."""

    name = "projection:clients"
    topics: Sequence[str] = ()

    def __init__(self, app: EventStoreApplication, read_model: ReadModel, prefix: str = "", *,
                 query_indexes: bool = True, bulk: bool = False) -> None:
        super().__init__(app)
        self.read_model = read_model
        self.prefix = prefix
        # `bulk`: the rebuild's fresh tables, written in bulk where the database can.
        self.sql = clients_sql(read_model.kind, prefix, bulk=bulk)
        if prefix:
            self.name = f"projection:clients:{prefix}"
        read_model.write(lambda c: self.sql.prepare(c, read_model.tracking_table, self.name,
                                                    query_indexes=query_indexes))

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        with paused_gc():  # the batch is freed (in _process) before the collector is back
            self._process(notifications, last_id)

    def _process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications if n.topic in TOPICS]
        events_table = self.read_model.events_table

        def run(c: Cursor, position: int) -> None:
            # Another instance may have applied the start of this batch since it was read: its
            # rows hold those events already (a client started there has a row, counted), so
            # only the events after the position recorded with them are folded over them.
            self.sql.run(c, events_table, ClientsFold([(i, e) for i, e in events if i > position]))

        try:
            self.read_model.write_after(run, Tracking(self.name, last_id))
        except IntegrityError:
            # Another instance on the same database recorded this position first; the rows
            # it wrote are the same. The caller re-reads the position and goes on from there.
            if self.position() < last_id:
                raise


# The page's statements by the names tests and benchmarks import: SQLite's unless `kind`
# names the store (a read model's own are ClientQueries(read_model).sql).
def count_query(caller: Caller, tab: TabId, kind: str = "sqlite") -> tuple[str, list[Any]]:
    return clients_sql(kind).count(caller, tab)


def recount_query(caller: Caller, tab: TabId, kind: str = "sqlite") -> tuple[str, list[Any]]:
    return clients_sql(kind).recount(caller, tab)


def tab_query(caller: Caller, tab: TabId, kind: str = "sqlite", **options: Any) -> tuple[str, list[Any]]:
    return clients_sql(kind).tab(caller, tab, **options)


def accountants_query(kind: str, partner_id: str, client_ids: Sequence[str]) -> tuple[str, list[Any]]:
    return clients_sql(kind).accountants(partner_id, client_ids)
