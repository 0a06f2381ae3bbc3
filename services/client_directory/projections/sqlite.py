"""The Clients read model on SQLite: keys passed as one JSON array (`json_each`), so a
statement's text is the same whatever the number of keys and stays prepared, and index hints
where SQLite's planner, without statistics (nothing runs ANALYZE), chose worse."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.domain import Aggregate

from events.dialect import Cursor
from services.client_directory.projections.sql import CHUNK, ClientsSQL


class SQLiteClientsSQL(ClientsSQL):
    mark = "?"
    collate = ""  # SQLite's default BINARY
    notification_id_type = "INTEGER"
    # Without it SQLite walked the firm's whole range of cd_assignments_tab for a page's ids.
    accountants_hint = " INDEXED BY cd_assignments_client"

    def select_keys(self, c: Cursor, events_table: str, originator_ids: list[Any]) -> Iterator[Any]:
        # The SQLite recorder stores ids as hex, and events by rowid (the notification id).
        statement = ("SELECT e.originator_id AS originator_id, k.partner_id, k.natural_id, k.second_id "
                     f"FROM json_each(?) AS j JOIN {events_table} AS e "
                     f"ON e.originator_id = j.value AND e.originator_version = {Aggregate.INITIAL_VERSION} "
                     f"JOIN {self.t('cd_keys')} AS k ON k.notification_id = e.rowid")
        encoded = sorted(oid.hex for oid in originator_ids)
        for start in range(0, len(encoded), CHUNK):
            c.execute(statement, [json.dumps(encoded[start:start + CHUNK])])
            yield from c.fetchall()

    def select_in(self, c: Cursor, table: str, columns: Sequence[str], key_columns: tuple[str, str],
                  keys: Sequence[tuple[str, str]], index: str = "") -> Iterator[Any]:
        # `index` is named: the planner preferred a covering index on the first column only
        # (a whole firm's rows read for each key).
        t, (first, second) = self.t(table), key_columns
        selected = ", ".join(f"{t}.{column}" for column in columns)
        hint = f" INDEXED BY {self.t(index)}" if index else ""
        statement = (f"SELECT {selected} FROM json_each(?) AS k JOIN {t}{hint} "
                     f"ON {t}.{first} = k.value ->> 0 AND {t}.{second} = k.value ->> 1")
        for start in range(0, len(keys), CHUNK):
            c.execute(statement, [json.dumps(keys[start:start + CHUNK])])
            yield from c.fetchall()
