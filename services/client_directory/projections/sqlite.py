"""The Clients read model on SQLite: keys passed as one JSON array (`json_each`), so a
statement's text is the same whatever the number of keys and stays prepared, index hints
where SQLite's planner, without statistics (nothing runs ANALYZE), chose worse, and the search
index: an FTS5 table with the trigram tokenizer over cd_clients' search_key."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.domain import Aggregate

from events.dialect import Cursor
from services.client_directory.projections.page import TRIGRAM, Search, View
from services.client_directory.projections.sql import CHUNK, ClientsSQL
from services.client_directory.projections.text import fold

log = logging.getLogger(__name__)
# A search with at most this many matches store-wide reads them from the trigram index (then
# each row by rowid); one with more walks the tab's index range, where matches are frequent.
HITS = 500


@functools.cache
def has_trigrams() -> bool:
    """Whether this SQLite has FTS5 and its trigram tokenizer (3.34 and later)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')")
    except sqlite3.Error:
        log.warning("SQLite %s has no FTS5 trigram tokenizer: searches filter each tab's rows",
                    sqlite3.sqlite_version)
        return False
    return True


class SQLiteClientsSQL(ClientsSQL):
    mark = "?"
    collate = ""  # SQLite's default BINARY
    notification_id_type = "INTEGER"
    # Without it SQLite walked the firm's whole range of cd_assignments_tab for a page's ids.
    accountants_hint = " INDEXED BY cd_assignments_client"
    probes_search = True  # reading the index is a call into the library, not a round trip

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

    # --- search and the page ----------------------------------------------------------------------

    def people(self, accountants: str, partner_id: str) -> str:
        # CROSS JOIN: the row's few ids first, each a primary-key lookup (SQLite, without
        # statistics, scanned cd_members otherwise).
        return (f"(SELECT json_group_array(json_array(m.user_id, m.name)) FROM json_each({accountants}) AS u "
                f"CROSS JOIN cd_members m ON m.partner_id = {partner_id} AND m.user_id = u.value AND m.active = 1)")

    def search_index(self) -> list[str]:
        """An external-content FTS5 table (it keeps only the trigrams; the text is cd_clients'),
        kept in step by triggers. Its rowids are cd_clients' own: a VACUUM may renumber those
        (the table has no INTEGER PRIMARY KEY), and `fill_search_index` must then run again."""
        if not has_trigrams():
            return []
        p = self.prefix
        fts, clients = f"{p}cd_clients_search", f"{p}cd_clients"
        delete = f"INSERT INTO {fts} ({fts}, rowid, search_key) VALUES ('delete', old.rowid, old.search_key);"
        insert = f"INSERT INTO {fts} (rowid, search_key) VALUES (new.rowid, new.search_key);"
        return [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(search_key, content='{clients}', "
            "content_rowid='rowid', tokenize='trigram', detail='none')",
            f"CREATE TRIGGER IF NOT EXISTS {fts}_insert AFTER INSERT ON {clients} BEGIN {insert} END",
            f"CREATE TRIGGER IF NOT EXISTS {fts}_delete AFTER DELETE ON {clients} BEGIN {delete} END",
            f"CREATE TRIGGER IF NOT EXISTS {fts}_update AFTER UPDATE OF search_key ON {clients} "
            f"BEGIN {delete} {insert} END",
        ]

    def drop_search_index(self, c: Cursor) -> None:
        fts = self.t("cd_clients_search")
        for trigger in ("insert", "delete", "update"):  # they write to it
            c.execute(f"DROP TRIGGER IF EXISTS {fts}_{trigger}")
        c.execute(f"DROP TABLE IF EXISTS {fts}")

    def fill_search_index(self, c: Cursor) -> None:
        if has_trigrams():
            c.execute(f"INSERT INTO {self.t('cd_clients_search')} ({self.t('cd_clients_search')}) VALUES ('rebuild')")

    def search(self, c: Cursor, q: str) -> Search:
        """Ask the trigram index how many rows match, store-wide, up to HITS + 1: few, and the
        page reads those rows by rowid (a search that matches nothing costs the same in any
        firm); many, and it filters the tab's range in sort order, where they are frequent.
        Fewer than three characters (no trigram) or LIKE's own characters: the range."""
        text = fold(q)
        if len(text) < TRIGRAM or "%" in text or "_" in text or not has_trigrams():
            return Search(q)
        c.execute("SELECT rowid FROM cd_clients_search WHERE search_key LIKE ? LIMIT ?", (f"%{text}%", HITS + 1))
        hits = [row[0] for row in c.fetchall()]
        return Search(q, hits if len(hits) <= HITS else None)

    def matches(self, search: Search, view: View) -> None:
        if search.hits is None:
            # search_key is folded already: a plain substring test (instr), not LIKE's
            # case-insensitive matching with its escapes.
            view.terms.append("instr(c.search_key, ?) > 0")
            view.params.append(fold(search.q))
            return
        # The hits drive the join (CROSS JOIN keeps them outermost): a row looked up per hit.
        view.sources = view.sources.replace("FROM cd_assignments a JOIN cd_clients c",
                                            "FROM cd_clients c CROSS JOIN cd_assignments a")
        view.sources = view.sources.replace("FROM ", "FROM json_each(?) AS hit CROSS JOIN ", 1)
        view.terms.append("c.rowid = hit.value")
        view.params.insert(0, json.dumps(search.hits))
