"""The Clients read model's SQL, common to both databases: the tables, a batch's reads and
writes, the page's queries and the rebuild's switch-over. Each database's module
(projections/sqlite.py, projections/postgres.py) subclasses `ClientsSQL` with its parameter
mark, its types and what it does its own way (reading keys in bulk, index hints, COPY).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from contracts.api import TabId
from events.dialect import Cursor
from services.client_directory.projections.access import TAB_ROWS, Caller, assigned_only
from services.client_directory.projections.fold import ClientsFold
from services.client_directory.projections.rows import ClientRow, MemberRow, Row, RowChanges
from services.client_directory.projections.text import fold, like_pattern

SCHEMA_VERSION = "4"
TABLES = ("cd_clients", "cd_assignments", "cd_counts", "cd_members", "cd_preferences", "cd_keys")
# Indexes only the queries read (the projection reads rows by primary key and
# cd_assignments_client): a rebuild's fresh tables go without them until the switch-over builds
# them, each in one pass, rather than keeping them in order row by row.
QUERY_INDEXES = frozenset({"cd_clients_tab", "cd_clients_tab_missing", "cd_assignments_tab",
                           "cd_assignments_tab_missing"})
# Keys per query: well under SQLite's and PostgreSQL's parameter limits, and few queries.
CHUNK = 1000
ITEM_COLUMNS = ("c.client_id, c.name, c.status, c.missing_receipts, c.ready_to_export, "
                "c.wallet_amount, c.wallet_currency")
KEY_COLUMNS = ("notification_id", "partner_id", "natural_id", "second_id")


def index_name(statement: str) -> str | None:
    match = re.match(r"\s*CREATE INDEX IF NOT EXISTS (\w+)", statement)
    return match.group(1) if match else None


class ClientsSQL:
    """The read model's statements on one database; `prefix` names a rebuild's fresh tables."""

    mark = "?"  # the parameter mark
    collate = ""  # what makes a key column compare bytewise
    notification_id_type = "INTEGER"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

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
            tab TEXT NOT NULL DEFAULT '',
            missing_receipts INTEGER NOT NULL DEFAULT 0, ready_to_export INTEGER NOT NULL DEFAULT 0,
            wallet_amount TEXT, wallet_currency TEXT,
            PRIMARY KEY (partner_id, client_id))""",
            f"""CREATE INDEX IF NOT EXISTS {p}cd_clients_tab
            ON {p}cd_clients (partner_id, tab, sort_key, client_id)""",
            f"""CREATE INDEX IF NOT EXISTS {p}cd_clients_tab_missing
            ON {p}cd_clients (partner_id, tab, sort_key, client_id) WHERE missing_receipts > 0""",
            # One row per (user, client): a copy of the client's tab, sort key and missing receipts
            # so `mine` (and an accountant's onboarding) is one index range in sort order too.
            f"""CREATE TABLE IF NOT EXISTS {p}cd_assignments (
            partner_id TEXT NOT NULL, user_id TEXT NOT NULL, client_id TEXT{c} NOT NULL,
            tab TEXT NOT NULL DEFAULT '', sort_key TEXT{c} NOT NULL DEFAULT '',
            missing_receipts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (partner_id, user_id, client_id))""",
            f"""CREATE INDEX IF NOT EXISTS {p}cd_assignments_tab
            ON {p}cd_assignments (partner_id, user_id, tab, sort_key, client_id)""",
            f"""CREATE INDEX IF NOT EXISTS {p}cd_assignments_tab_missing
            ON {p}cd_assignments (partner_id, user_id, tab, sort_key, client_id)
            WHERE missing_receipts > 0""",
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
            return statements
        return [s for s in statements if index_name(s) not in {f"{p}{name}" for name in QUERY_INDEXES}]

    def prepare(self, c: Cursor, tracking_table: str, tracking_name: str, *, query_indexes: bool) -> None:
        """Create the tables; tables of another schema version are dropped and rebuilt from
        the event store (the read model is derived data; its position goes back to 0)."""
        m = self.mark
        c.execute("CREATE TABLE IF NOT EXISTS cd_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        key = f"{self.prefix}schema"
        c.execute(f"SELECT value FROM cd_meta WHERE name = {m}", (key,))
        row = c.fetchone()
        if row is None or row["value"] != SCHEMA_VERSION:
            for table in TABLES:
                c.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            c.execute(f"DELETE FROM {tracking_table} WHERE application_name = {m}", (tracking_name,))
            c.execute(f"DELETE FROM cd_meta WHERE name = {m}", (key,))
            c.execute(f"INSERT INTO cd_meta (name, value) VALUES ({m}, {m})", (key, SCHEMA_VERSION))
        for statement in self.schema(query_indexes=query_indexes):
            c.execute(statement)

    def switch_over(self, c: Cursor, fresh: ClientsSQL, tracking_table: str, names: tuple[str, str],
                    position: int) -> None:
        """Drop the live tables, rename the fresh ones (of `fresh`), move the position from the
        fresh tables' tracking name to the live one (`names`), all with the caller's cursor."""
        m = self.mark
        for table in TABLES:
            c.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            c.execute(f"ALTER TABLE {fresh.t(table)} RENAME TO {self.t(table)}")
        # Indexes keep their names when their table is renamed: drop the fresh tables' (those
        # the projection used), and build every index of the live tables afresh.
        for statement in fresh.schema():
            if name := index_name(statement):
                c.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in self.schema():
            c.execute(statement)
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
        found = batch.clients_found(self.select_in(c, "cd_clients", ("partner_id", "client_id", *ClientRow.COLUMNS),
                                                   ("partner_id", "client_id"), list(batch.client_keys)))
        # Only a client with a row can have assignment rows (assigning copies the client's).
        batch.assignments_found(self.select_in(c, "cd_assignments", ("partner_id", "client_id", "user_id"),
                                               ("partner_id", "client_id"), found, index="cd_assignments_client"))
        batch.members_found(self.select_in(c, "cd_members", ("partner_id", "user_id", *MemberRow.COLUMNS),
                                           ("partner_id", "user_id"), list(batch.member_keys)))
        batch.apply()
        self.write(c, batch.changes())

    def select_keys(self, c: Cursor, events_table: str, originator_ids: list[Any]) -> Iterator[Any]:
        """The natural keys of aggregates created in earlier batches: the event store's primary
        key finds each one's first event, whose notification id keys its cd_keys row."""
        raise NotImplementedError

    def select_in(self, c: Cursor, table: str, columns: Sequence[str], key_columns: tuple[str, str],
                  keys: Sequence[tuple[str, str]], index: str = "") -> Iterator[Any]:
        """Rows of `table` whose two key columns equal one of `keys` (distinct), CHUNK keys a
        query, looked up by a join from the keys (an index lookup per key)."""
        raise NotImplementedError

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
            c.executemany(f"UPDATE {assignments} SET tab = {m}, sort_key = {m}, missing_receipts = {m} "
                          f"WHERE partner_id = {m} AND client_id = {m}", changes.copied)
        if changes.added:
            c.executemany(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, "
                          f"missing_receipts) SELECT partner_id, CAST({m} AS TEXT), client_id, tab, sort_key, "
                          f"missing_receipts FROM {clients} WHERE partner_id = {m} AND client_id = {m}",
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

    # --- the page's queries -------------------------------------------------------------------------

    def active(self, caller: Caller) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT active FROM cd_members WHERE partner_id = {m} AND user_id = {m}",
                [caller.partner_id, caller.user_id])

    def member(self, partner_id: str, user_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT user_id, name, email, role, locale, active FROM cd_members "
                f"WHERE partner_id = {m} AND user_id = {m}", [partner_id, user_id])

    def client(self, partner_id: str, client_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT {ITEM_COLUMNS}, c.tab FROM cd_clients c "
                f"WHERE c.partner_id = {m} AND c.client_id = {m} AND c.tab <> ''", [partner_id, client_id])

    def assignment(self, caller: Caller, client_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT 1 AS yes FROM cd_assignments WHERE partner_id = {m} AND user_id = {m} AND client_id = {m}",
                [caller.partner_id, caller.user_id, client_id])

    def preference(self, caller: Caller, client_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT email_enabled, frequency FROM cd_preferences WHERE partner_id = {m} "
                f"AND client_id = {m} AND user_id = {m}", [caller.partner_id, client_id, caller.user_id])

    def accountants(self, partner_id: str, client_ids: Sequence[str]) -> tuple[str, list[Any]]:
        """The assignments of a page's clients, with their members' names: one lookup per
        client in cd_assignments_client."""
        return (f"SELECT a.client_id, a.user_id, m.name FROM cd_assignments a{self.accountants_hint} "
                "JOIN cd_members m ON m.partner_id = a.partner_id AND m.user_id = a.user_id AND m.active = 1 "
                f"WHERE a.partner_id = {self.mark} AND a.client_id IN ({self.marks(len(client_ids))})",
                [partner_id, *client_ids])

    accountants_hint = ""

    def count(self, caller: Caller, tab: TabId) -> tuple[str, list[Any]]:
        """How many clients a tab holds for the caller: one row of cd_counts."""
        m = self.mark
        scope = caller.user_id if assigned_only(caller, tab) else ""
        return (f"SELECT COALESCE(SUM(n), 0) AS n FROM cd_counts WHERE partner_id = {m} AND scope = {m} "
                f"AND tab = {m}", [caller.partner_id, scope, TAB_ROWS[tab]])

    def recount(self, caller: Caller, tab: TabId) -> tuple[str, list[Any]]:
        """What cd_counts must say, counted from the rows (for tests and on-call checks)."""
        m = self.mark
        if assigned_only(caller, tab):
            return (f"SELECT COUNT(*) AS n FROM cd_assignments WHERE partner_id = {m} AND user_id = {m} "
                    f"AND tab = {m}", [caller.partner_id, caller.user_id, TAB_ROWS[tab]])
        return (f"SELECT COUNT(*) AS n FROM cd_clients WHERE partner_id = {m} AND tab = {m}",
                [caller.partner_id, TAB_ROWS[tab]])

    def tab(self, caller: Caller, tab: TabId, *, q: str | None = None, missing_receipts: bool = False,
            descending: bool = False, limit: int = 50,
            after: dict[str, Any] | None = None) -> tuple[str, list[Any]]:
        """One page of a tab: the firm's (or the caller's) index range for the tab, in sort
        order, from the cursor on. A search filters within that range (substring matching
        cannot use an index: it reads at most the firm's rows of that tab)."""
        m = self.mark
        if assigned_only(caller, tab):
            base = (f"SELECT {ITEM_COLUMNS}, a.sort_key FROM cd_assignments a JOIN cd_clients c "
                    "ON c.partner_id = a.partner_id AND c.client_id = a.client_id "
                    f"WHERE a.partner_id = {m} AND a.user_id = {m} AND a.tab = {m}")
            params: list[Any] = [caller.partner_id, caller.user_id, TAB_ROWS[tab]]
            k = "a"
        else:
            base = f"SELECT {ITEM_COLUMNS}, c.sort_key FROM cd_clients c WHERE c.partner_id = {m} AND c.tab = {m}"
            params = [caller.partner_id, TAB_ROWS[tab]]
            k = "c"
        where = [base]
        if missing_receipts:
            where.append(f"{k}.missing_receipts > 0")  # the very term of the partial index
        if q and fold(q):
            where.append(f"c.search_key LIKE {m} ESCAPE '\\'")
            params.append(like_pattern(q))
        op, direction = ("<", "DESC") if descending else (">", "ASC")
        if after is not None:
            where.append(f"({k}.sort_key, {k}.client_id) {op} ({m}, {m})")
            params += [after["k"], after["i"]]
        statement = (" AND ".join(where)
                     + f" ORDER BY {k}.sort_key {direction}, {k}.client_id {direction} LIMIT {m}")
        params.append(limit)
        return statement, params
