"""The Clients read model on PostgreSQL: keys passed as arrays (`unnest`), key columns in
COLLATE "C" (bytewise, whatever the server's locale), the search index (pg_trgm's GIN over
search_key) and the rebuild's bulk writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from eventsourcing.domain import Aggregate

from events.dialect import Cursor
from services.client_directory.projections.rows import ClientRow, Row, RowChanges
from services.client_directory.projections.sql import CHUNK, KEY_COLUMNS, ClientsSQL

log = logging.getLogger(__name__)

# The array type of each column written in bulk; the others are text.
ARRAYS = {"notification_id": "bigint[]", "missing_receipts": "integer[]", "ready_to_export": "integer[]",
          "n": "integer[]", "active": "integer[]", "email_enabled": "integer[]"}


def columns_of(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows' values column by column: a list per column (psycopg sends a list as an array)."""
    return [list(column) for column in zip(*rows, strict=True)]


def copy_rows(c: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY ... FROM STDIN: rows inserted in one statement, none parsed as SQL."""
    with c.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class PostgresClientsSQL(ClientsSQL):
    mark = "%s"
    collate = ' COLLATE "C"'
    notification_id_type = "BIGINT"
    trigram = True  # whether pg_trgm is there (`enable_search`)

    def people(self, accountants: str, partner_id: str) -> str:
        # `= ANY(ARRAY(...))`: one primary-key probe per id (a join hashed the firm's members).
        return (f"(SELECT json_agg(json_build_array(m.user_id, m.name)) FROM cd_members m "
                f"WHERE m.partner_id = {partner_id} AND m.active = 1 "
                f"AND m.user_id = ANY(ARRAY(SELECT json_array_elements_text({accountants}::json))))")

    def enable_search(self, c: Cursor) -> None:
        """pg_trgm, if this role may create it (a trusted extension: a database owner may);
        otherwise one line in the log, and searches filter each tab's rows."""
        c.execute("SAVEPOINT cd_trigram")
        try:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except psycopg.Error as error:
            c.execute("ROLLBACK TO SAVEPOINT cd_trigram")
            c.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
            self.trigram = c.fetchone() is not None  # another process may have made it meanwhile
            if not self.trigram:
                log.warning("no pg_trgm (%s): Clients searches filter each tab's rows", str(error).strip())
        c.execute("RELEASE SAVEPOINT cd_trigram")

    def search_index(self) -> list[str]:
        if not self.trigram:
            return []
        return [f"CREATE INDEX IF NOT EXISTS {self.prefix}cd_clients_search ON {self.prefix}cd_clients "
                "USING gin (search_key gin_trgm_ops)"]

    def select_keys(self, c: Cursor, events_table: str, originator_ids: list[Any]) -> Iterator[Any]:
        statement = ("SELECT e.originator_id AS originator_id, k.partner_id, k.natural_id, k.second_id "
                     f"FROM unnest(%s::uuid[]) AS j(id) JOIN {events_table} AS e "
                     f"ON e.originator_id = j.id AND e.originator_version = {Aggregate.INITIAL_VERSION} "
                     f"JOIN {self.t('cd_keys')} AS k ON k.notification_id = e.notification_id")
        encoded = sorted(originator_ids)
        for start in range(0, len(encoded), CHUNK):
            c.execute(statement, [encoded[start:start + CHUNK]])
            yield from c.fetchall()

    def select_in(self, c: Cursor, table: str, columns: Sequence[str], key_columns: tuple[str, str],
                  keys: Sequence[tuple[str, str]], index: str = "") -> Iterator[Any]:
        t, (first, second) = self.t(table), key_columns
        selected = ", ".join(f"{t}.{column}" for column in columns)
        statement = (f"SELECT {selected} FROM unnest(%s::text[], %s::text[]) AS k(k0, k1) JOIN {t} "
                     f"ON {t}.{first} = k.k0 AND {t}.{second} = k.k1")
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            c.execute(statement, [[key[0] for key in chunk], [key[1] for key in chunk]])
            yield from c.fetchall()


class BulkPostgresClientsSQL(PostgresClientsSQL):
    """The rebuild's fresh tables: each kind of statement is sent once, its rows as one array
    per column (`unnest`), and rows only ever inserted by COPY. An executemany is a statement
    per row, even pipelined: its rows' Python in psycopg and their execution in the server were
    most of a rebuild's time (docs/BENCHMARKS.md)."""

    def write(self, c: Cursor, changes: RowChanges) -> None:
        if changes.new_keys:
            # Keys of aggregates first seen after the position, by their first event's
            # notification id: no row can hold it (COPY fails, not skips, if one did).
            copy_rows(c, self.t("cd_keys"), KEY_COLUMNS, changes.new_keys)
        self.write_clients(c, *self._copy_new_clients(c, changes))
        self.write_assignments(c, changes)
        self.write_rest(c, changes)

    def _copy_new_clients(self, c: Cursor, changes: RowChanges) -> tuple[list[Row], list[Row]]:
        """COPY the rows of clients that have none yet, and return the others (rows, partial
        rows) to upsert. A client the batch read has a row if one was found; one whose
        relationship starts in the batch (`fresh`, not read) is looked up here, all in one
        query: it has a row only if figures of an earlier batch made it."""
        rows, partial_rows = changes.clients, changes.partial_clients
        unread = [key for partner_id, client_id, *_ in (*rows, *partial_rows)
                  if (key := (partner_id, client_id)) in changes.fresh]
        present: set[tuple[str, str]] = set()
        if unread:
            c.execute(f"SELECT t.partner_id, t.client_id FROM json_array_elements(%s::json) AS k "
                      f"JOIN {self.t('cd_clients')} AS t ON t.partner_id = k ->> 0 AND t.client_id = k ->> 1",
                      [json.dumps(unread)])
            present = {(row["partner_id"], row["client_id"]) for row in c.fetchall()}
        new: list[Row] = []
        kept: tuple[list[Row], list[Row]] = ([], [])
        for upserts, written in zip(kept, (rows, partial_rows), strict=True):
            for row in written:
                key = (row[0], row[1])
                (new if key in changes.unstored and key not in present else upserts).append(row)
        if new:  # a new row holds every column (partial: figures as inserted, none)
            copy_rows(c, self.t("cd_clients"), ("partner_id", "client_id", *ClientRow.COLUMNS), new)
        return kept

    def write_assignments(self, c: Cursor, changes: RowChanges) -> None:
        """The same statements as one by one, each once over the rows as arrays."""
        assignments, clients = self.t("cd_assignments"), self.t("cd_clients")
        if changes.removed:
            c.execute(f"DELETE FROM {assignments} AS a USING unnest(%s::text[], %s::text[], %s::text[]) "
                      "AS k(partner_id, user_id, client_id) WHERE a.partner_id = k.partner_id "
                      "AND a.user_id = k.user_id AND a.client_id = k.client_id", columns_of(changes.removed))
        if changes.copied:  # one row per client
            c.execute(f"UPDATE {assignments} AS a SET tab = k.tab, sort_key = k.sort_key, "
                      "missing_receipts = k.missing_receipts, ready_to_export = k.ready_to_export "
                      "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::integer[], %s::text[], %s::text[]) "
                      "AS k(tab, sort_key, missing_receipts, ready_to_export, partner_id, client_id) "
                      "WHERE a.partner_id = k.partner_id AND a.client_id = k.client_id", columns_of(changes.copied))
        if changes.added:
            c.execute(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, "
                      "missing_receipts, ready_to_export) SELECT c.partner_id, k.user_id, c.client_id, c.tab, "
                      "c.sort_key, c.missing_receipts, c.ready_to_export "
                      "FROM unnest(%s::text[], %s::text[], %s::text[]) "
                      f"AS k(user_id, partner_id, client_id) JOIN {clients} AS c "
                      "ON c.partner_id = k.partner_id AND c.client_id = k.client_id", columns_of(changes.added))

    def insert(self, c: Cursor, table: str, columns: Sequence[str], rows: list[Row], conflict: str) -> None:
        """One statement over an array per column: its rows' keys are distinct (a batch writes
        a key once), which ON CONFLICT DO UPDATE requires of one statement."""
        arrays = ", ".join(f"%s::{ARRAYS.get(column, 'text[]')}" for column in columns)
        c.execute(f"INSERT INTO {self.t(table)} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {conflict}",
                  columns_of(rows))
