"""The Clients read model's SQL, common to both databases: the tables, a batch's reads and
writes, the page's queries and the rebuild's switch-over. Each database's module
(projections/sqlite.py, projections/postgres.py) subclasses `ClientsSQL` with its parameter
mark, its types and what it does its own way (reading keys in bulk, index hints, COPY).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from events.dialect import Cursor
from services.client_directory.projections.fold import ClientsFold
from services.client_directory.projections.page import FIGURES, PageSQL
from services.client_directory.projections.rows import ClientRow, MemberRow, Row, RowChanges

# 5: cd_clients keeps its accountants; a trigram index over search_key; the tab indexes hold
# search_key (a search filters the range without reading the table).
# 6: cd_assignments copies ready_to_export too; each tab index has a twin per figure (the
# figure first) for the sorts by missing receipts and by ready to export.
SCHEMA_VERSION = "6"
TABLES = ("cd_clients", "cd_assignments", "cd_counts", "cd_members", "cd_preferences", "cd_keys")
# Indexes only the queries read (the projection reads rows by primary key and
# cd_assignments_client): a rebuild's fresh tables go without them until the switch-over builds
# them, each in one pass, rather than keeping them in order row by row.
TAB_INDEXES = ("cd_clients_tab", "cd_clients_tab_missing", "cd_assignments_tab", "cd_assignments_tab_missing")
QUERY_INDEXES = frozenset({*TAB_INDEXES, *(f"{name}_{short}" for name in TAB_INDEXES for short in FIGURES.values()),
                           "cd_clients_search"})
# Keys per query: well under SQLite's and PostgreSQL's parameter limits, and few queries.
CHUNK = 1000
KEY_COLUMNS = ("notification_id", "partner_id", "natural_id", "second_id")


def index_name(statement: str) -> str | None:
    match = re.match(r"\s*CREATE INDEX IF NOT EXISTS (\w+)", statement)
    return match.group(1) if match else None


class ClientsSQL(PageSQL):
    """The read model's statements on one database; `prefix` names a rebuild's fresh tables."""

    mark = "?"  # the parameter mark
    collate = ""  # what makes a key column compare bytewise
    notification_id_type = "INTEGER"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    # --- tables ---------------------------------------------------------------------------------

    def schema(self, *, query_indexes: bool = True) -> list[str]:
        """DDL for the read model. Keys compared by the keyset cursor are bytewise on both stores.
        The partial `_missing` indexes serve the missing-receipts filter in sort order."""
        p, c = self.prefix, self.collate
        statements = [
            f"""CREATE TABLE IF NOT EXISTS {p}cd_clients (
            partner_id TEXT NOT NULL, client_id TEXT{c} NOT NULL,
            name TEXT NOT NULL DEFAULT '', sort_key TEXT{c} NOT NULL DEFAULT '',
            search_key TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT '',
            tab TEXT NOT NULL DEFAULT '', accountants TEXT NOT NULL DEFAULT '[]',
            missing_receipts INTEGER NOT NULL DEFAULT 0, ready_to_export INTEGER NOT NULL DEFAULT 0,
            wallet_amount TEXT, wallet_currency TEXT,
            PRIMARY KEY (partner_id, client_id))""",
            *self.tab_indexes("cd_clients", "partner_id, tab", ", search_key"),
            # One row per (user, client): a copy of the client's tab, sort key and figures so
            # `mine` (and an accountant's onboarding) is one index range in sort order too.
            f"""CREATE TABLE IF NOT EXISTS {p}cd_assignments (
            partner_id TEXT NOT NULL, user_id TEXT NOT NULL, client_id TEXT{c} NOT NULL,
            tab TEXT NOT NULL DEFAULT '', sort_key TEXT{c} NOT NULL DEFAULT '',
            missing_receipts INTEGER NOT NULL DEFAULT 0, ready_to_export INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (partner_id, user_id, client_id))""",
            *self.tab_indexes("cd_assignments", "partner_id, user_id, tab", ""),
            f"""CREATE INDEX IF NOT EXISTS {p}cd_assignments_client
            ON {p}cd_assignments (partner_id, client_id)""",
            # How many clients each tab holds, firm-wide (scope '') and per assigned user (scope =
            # user_id), kept by the projection: a tab's count is one primary-key read, at any size.
            f"""CREATE TABLE IF NOT EXISTS {p}cd_counts (
            partner_id TEXT NOT NULL, scope TEXT NOT NULL, tab TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (partner_id, scope, tab))""",
            f"""CREATE TABLE IF NOT EXISTS {p}cd_members (
            partner_id TEXT NOT NULL, user_id TEXT NOT NULL, name TEXT NOT NULL,
            email TEXT NOT NULL, role TEXT NOT NULL, locale TEXT NOT NULL, active INTEGER NOT NULL,
            PRIMARY KEY (partner_id, user_id))""",
            f"""CREATE TABLE IF NOT EXISTS {p}cd_preferences (
            partner_id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
            email_enabled INTEGER NOT NULL, frequency TEXT NOT NULL,
            PRIMARY KEY (partner_id, client_id, user_id))""",
            # Later events of an aggregate carry only its originator id: map it to natural keys.
            # A row is keyed by the notification id of the aggregate's first event (which the
            # event store's primary key finds from the originator id): rows are appended in log
            # order, where random UUID keys had each batch rewrite pages all over the table.
            f"""CREATE TABLE IF NOT EXISTS {p}cd_keys (
            notification_id {self.notification_id_type} PRIMARY KEY,
            partner_id TEXT NOT NULL, natural_id TEXT NOT NULL, second_id TEXT NOT NULL DEFAULT '')""",
        ]
        if query_indexes:
            return statements + self.search_index()
        return [s for s in statements if index_name(s) not in {f"{p}{name}" for name in QUERY_INDEXES}]

    def tab_indexes(self, table: str, scope: str, tail: str) -> list[str]:
        """A tab's indexes on `table`: in name order, and per figure in that figure's order
        (then name); each whole and partial (`_missing`: only rows with missing receipts)."""
        p, statements = self.prefix, []
        for suffix, lead in (("", ""), *((f"_{short}", f"{figure}, ") for figure, short in FIGURES.items())):
            columns = f"({scope}, {lead}sort_key, client_id{tail})"
            statements += [f"CREATE INDEX IF NOT EXISTS {p}{table}_tab{suffix} ON {p}{table} {columns}",
                           f"CREATE INDEX IF NOT EXISTS {p}{table}_tab_missing{suffix} ON {p}{table} {columns} "
                           "WHERE missing_receipts > 0"]
        return statements

    def search_index(self) -> list[str]:
        """The trigram index over search_key (each database its own; none if it has none)."""
        return []

    def drop_search_index(self, c: Cursor) -> None:
        """Drop what `search_index` made beside cd_clients' own indexes."""

    def enable_search(self, c: Cursor) -> None:
        """Make the trigram index possible (PostgreSQL: its extension), before `schema`."""

    def fill_search_index(self, c: Cursor) -> None:
        """Index the rows already in cd_clients (after a switch-over)."""

    def prepare(self, c: Cursor, tracking_table: str, tracking_name: str, *, query_indexes: bool) -> None:
        """Create the tables; tables of another schema version are dropped and rebuilt from
        the event store (the read model is derived data; its position goes back to 0)."""
        m = self.mark
        c.execute("CREATE TABLE IF NOT EXISTS cd_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        key = f"{self.prefix}schema"
        c.execute(f"SELECT value FROM cd_meta WHERE name = {m}", (key,))
        row = c.fetchone()
        if row is None or row["value"] != SCHEMA_VERSION:
            self.drop_search_index(c)
            for table in TABLES:
                c.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            c.execute(f"DELETE FROM {tracking_table} WHERE application_name = {m}", (tracking_name,))
            c.execute(f"DELETE FROM cd_meta WHERE name = {m}", (key,))
            c.execute(f"INSERT INTO cd_meta (name, value) VALUES ({m}, {m})", (key, SCHEMA_VERSION))
        if query_indexes:
            self.enable_search(c)
        for statement in self.schema(query_indexes=query_indexes):
            c.execute(statement)

    def switch_over(self, c: Cursor, fresh: ClientsSQL, tracking_table: str, names: tuple[str, str],
                    position: int) -> None:
        """Drop the live tables, rename the fresh ones (of `fresh`), move the position from the
        fresh tables' tracking name to the live one (`names`), all with the caller's cursor."""
        m = self.mark
        self.drop_search_index(c)
        for table in TABLES:
            c.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            c.execute(f"ALTER TABLE {fresh.t(table)} RENAME TO {self.t(table)}")
        # Indexes keep their names when their table is renamed: drop the fresh tables' (those
        # the projection used), and build every index of the live tables afresh.
        for statement in fresh.schema():
            if name := index_name(statement):
                c.execute(f"DROP INDEX IF EXISTS {name}")
        self.enable_search(c)
        for statement in self.schema():
            c.execute(statement)
        self.fill_search_index(c)
        fresh_name, live_name = names
        c.execute(f"DELETE FROM {tracking_table} WHERE application_name = {m}", (fresh_name,))
        c.execute(f"DELETE FROM {tracking_table} WHERE application_name = {m}", (live_name,))
        c.execute(f"INSERT INTO {tracking_table} (application_name, notification_id) VALUES ({m}, {m})",
                  (live_name, position))
        # The live tables are of this schema version now: without saying so, the service's
        # next start would take them for an older version's (or none) and drop them.
        c.execute(f"DELETE FROM cd_meta WHERE name IN ({m}, {m})", ("schema", f"{fresh.prefix}schema"))
        c.execute(f"INSERT INTO cd_meta (name, value) VALUES ({m}, {m})", ("schema", SCHEMA_VERSION))

    # --- a batch ----------------------------------------------------------------------------------

    def run(self, c: Cursor, events_table: str, batch: ClientsFold) -> None:
        """Read what the batch needs, fold it, write what changed (in the caller's transaction)."""
        batch.keys_found(self.select_keys(c, events_table, batch.plan()))
        read = ("partner_id", "client_id", *ClientRow.READ_COLUMNS)
        found = batch.clients_found(self.select_in(c, "cd_clients", read, ("partner_id", "client_id"),
                                                   list(batch.client_keys)))
        # Only a client with a row can have assignment rows (assigning copies the client's).
        batch.assignments_found(self.select_in(c, "cd_assignments", ("partner_id", "client_id", "user_id"),
                                               ("partner_id", "client_id"), found, index="cd_assignments_client"))
        batch.members_found(self.select_in(c, "cd_members", ("partner_id", "user_id", *MemberRow.COLUMNS),
                                           ("partner_id", "user_id"), list(batch.member_keys)))
        batch.apply()
        self.write(c, batch.changes())

    @abstractmethod
    def select_keys(self, c: Cursor, events_table: str, originator_ids: list[Any]) -> Iterator[Any]:
        """The natural keys of aggregates created in earlier batches: the event store's primary
        key finds each one's first event, whose notification id keys its cd_keys row."""

    @abstractmethod
    def select_in(self, c: Cursor, table: str, columns: Sequence[str], key_columns: tuple[str, str],
                  keys: Sequence[tuple[str, str]], index: str = "") -> Iterator[Any]:
        """Rows of `table` whose two key columns equal one of `keys` (distinct), CHUNK keys a
        query, looked up by a join from the keys (an index lookup per key)."""

    def write(self, c: Cursor, changes: RowChanges) -> None:
        """Write the rows that changed, one executemany per kind of statement."""
        if changes.new_keys:
            self.insert(c, "cd_keys", KEY_COLUMNS, changes.new_keys, "ON CONFLICT DO NOTHING")
        self.write_clients(c, changes.clients, changes.partial_clients)
        self.write_assignments(c, changes)
        self.write_rest(c, changes)

    def write_rest(self, c: Cursor, changes: RowChanges) -> None:
        """The counts, members and preferences."""
        if changes.counts:
            self.insert(c, "cd_counts", ("partner_id", "scope", "tab", "n"), changes.counts,
                        f"ON CONFLICT (partner_id, scope, tab) DO UPDATE SET n = {self.t('cd_counts')}.n + excluded.n")
        if changes.members:
            self.upsert(c, "cd_members", ("partner_id", "user_id"), MemberRow.COLUMNS, changes.members)
        if changes.preferences:
            self.upsert(c, "cd_preferences", ("partner_id", "client_id", "user_id"), ("email_enabled", "frequency"),
                        changes.preferences)

    def write_clients(self, c: Cursor, rows: list[Row], partial_rows: list[Row]) -> None:
        if rows:
            self.upsert(c, "cd_clients", ("partner_id", "client_id"), ClientRow.COLUMNS, rows)
        if partial_rows:  # figures as inserted (none) or as stored (their own row)
            self.upsert(c, "cd_clients", ("partner_id", "client_id"), ClientRow.COLUMNS, partial_rows,
                        update=ClientRow.RELATIONSHIP_COLUMNS)

    def write_assignments(self, c: Cursor, changes: RowChanges) -> None:
        """Assignment rows removed, updated (copies of their client's tab, sort key and missing
        receipts) and added (copies of the client rows just written)."""
        m, assignments, clients = self.mark, self.t("cd_assignments"), self.t("cd_clients")
        if changes.removed:
            c.executemany(f"DELETE FROM {assignments} WHERE partner_id = {m} AND user_id = {m} AND client_id = {m}",
                          changes.removed)
        if changes.copied:
            c.executemany(f"UPDATE {assignments} SET tab = {m}, sort_key = {m}, missing_receipts = {m}, "
                          f"ready_to_export = {m} WHERE partner_id = {m} AND client_id = {m}", changes.copied)
        if changes.added:
            c.executemany(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, "
                          f"missing_receipts, ready_to_export) SELECT partner_id, CAST({m} AS TEXT), client_id, "
                          f"tab, sort_key, missing_receipts, ready_to_export FROM {clients} "
                          f"WHERE partner_id = {m} AND client_id = {m}",
                          changes.added)

    def upsert(self, c: Cursor, table: str, key: Sequence[str], columns: Sequence[str],
               rows: list[Row], update: Sequence[str] | None = None) -> None:
        """Insert the rows (key columns first), or set their columns (or those of `update`)
        where the key exists."""
        self.insert(c, table, (*key, *columns), rows, f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                    + ", ".join(f"{column} = excluded.{column}" for column in (update or columns)))

    def insert(self, c: Cursor, table: str, columns: Sequence[str], rows: list[Row], conflict: str) -> None:
        """INSERT the rows (in the order of `columns`) with `conflict`, an ON CONFLICT clause."""
        c.executemany(f"INSERT INTO {self.t(table)} ({', '.join(columns)}) VALUES ({self.marks(len(columns))}) "
                      f"{conflict}", rows)
