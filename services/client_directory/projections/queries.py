"""What the API reads from the Clients read model. Every query is bounded by the caller's firm,
and by what the caller's role and assignments let them see."""

from __future__ import annotations

import json
from typing import Any

from contracts.api import TabId
from events.dialect import Cursor
from events.store import ReadModel
from services.client_directory.projections.access import (
    HIDDEN_WHEN_EMPTY,
    Caller,
    TabForbidden,
    assigned_only,
    tabs_for,
)
from services.client_directory.projections.cursor import BadCursor, decode_cursor, encode_cursor
from services.client_directory.projections.page import NAME, Search
from services.client_directory.projections.postgres import BulkPostgresClientsSQL, PostgresClientsSQL
from services.client_directory.projections.sql import ClientsSQL
from services.client_directory.projections.sqlite import SQLiteClientsSQL
from services.client_directory.projections.text import fold, sort_key

DEFAULT_NOTIFICATIONS = {"email_enabled": False, "frequency": "weekly"}
# Each database's statements, by the store URL's scheme (StoreUrl.kind), plain and in bulk.
DIALECTS: dict[str, tuple[type[ClientsSQL], type[ClientsSQL]]] = {
    "sqlite": (SQLiteClientsSQL, SQLiteClientsSQL),
    "postgresql": (PostgresClientsSQL, BulkPostgresClientsSQL),
}


def clients_sql(kind: str, prefix: str = "", *, bulk: bool = False) -> ClientsSQL:
    """The statements of the read model on a `kind` of store (`bulk`: the rebuild's)."""
    return DIALECTS[kind][bulk](prefix)


def _item(row: dict[str, Any], accountants: list[dict[str, str]]) -> dict[str, Any]:
    wallet = None
    if row.get("wallet_amount") is not None:
        wallet = {"amount": row["wallet_amount"], "currency": row["wallet_currency"]}
    return {
        "client_id": row["client_id"], "name": row["name"], "status": row["status"],
        "missing_receipts": row["missing_receipts"], "ready_to_export": row["ready_to_export"],
        "wallet_balance": wallet, "accountants": accountants,
    }


class ClientQueries:
    """The Clients page, one client, and a member, read on one snapshot each."""

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model
        self.sql = clients_sql(read_model.kind)

    def page(self, caller: Caller, tab: TabId, *, q: str | None = None, missing_receipts: bool = False,
             descending: bool = False, limit: int = 50, cursor: str | None = None,
             by: str = NAME) -> dict[str, Any]:
        """`{tab, tabs, total, items, next_cursor}` of GET /v1/clients, sorted `by` the name or a
        figure (page.FIGURES). The tabs' counts are of whole tabs; `total` counts what the
        search and the filter leave of this one."""
        if tab not in tabs_for(caller):
            raise TabForbidden(f"the {tab.value} tab is not for the {caller.role} role")
        after = decode_cursor(cursor) if cursor else None
        if after is not None and (after["d"] != descending or after["t"] != tab.value
                                  or after.get("s", NAME) != by):
            raise BadCursor("cursor belongs to another tab or sort order")
        sql, searching = self.sql, bool(q and fold(q))
        options: dict[str, Any] = {"missing_receipts": missing_receipts, "descending": descending,
                                   "limit": limit + 1, "after": after, "by": by}
        if sql.probes_search and searching:
            def run(c: Cursor) -> list[dict[str, Any]]:
                c.execute(*sql.page(caller, tab, search=sql.search(c, q or ""), **options))
                return [dict(r) for r in c.fetchall()]

            rows = self.read_model.read(run)
        else:
            # One statement sees one snapshot by itself. A search is planned for its own text (a
            # prepared statement's generic plan would not know whether the text is rare).
            rows = self.read_model.read_one(
                *sql.page(caller, tab, search=Search(q or "") if searching else None, **options),
                prepare=not searching)
        return self._page(caller, tab, rows, limit, descending, by, filtered=searching or missing_receipts)

    def _page(self, caller: Caller, tab: TabId, rows: list[dict[str, Any]], limit: int, descending: bool,
              by: str, *, filtered: bool) -> dict[str, Any]:
        head = rows[0]
        member = bool(head["active"])
        # Assignments of a user not (or no longer) a member are kept, but not shown.
        counts = {t: 0 if assigned_only(caller, t) and not member else int(head[f"n{i}"] or 0)
                  for i, t in enumerate(tabs_for(caller))}
        visible = member or not assigned_only(caller, tab)
        items = [r for r in rows if r["client_id"] is not None] if visible else []
        total = (int(head["total"]) if filtered else counts[tab]) if visible else 0
        more = len(items) > limit
        items = items[:limit]
        next_cursor = None
        if more:
            last = items[-1]
            values = {"t": tab.value, "d": descending, "k": last["sort_key"], "i": last["client_id"]}
            if by != NAME:  # the name sort's cursors stay as they were
                values |= {"s": by, "f": last[by]}
            next_cursor = encode_cursor(values)
        return {
            "tab": tab.value,
            "tabs": [{"id": t.value, "count": n} for t, n in counts.items() if n > 0 or t not in HIDDEN_WHEN_EMPTY],
            "total": total,
            "items": [_item(r, _people(r["people"])) for r in items],
            "next_cursor": next_cursor,
        }

    def _active(self, c: Cursor, caller: Caller) -> bool:
        """Assignments of a user not (or no longer) a member are kept, but not shown."""
        c.execute(*self.sql.active(caller))
        row = c.fetchone()
        return bool(row and row["active"])

    def client(self, caller: Caller, client_id: str) -> dict[str, Any] | None:
        """The item plus the caller's notification setting, if the client is on one of the
        caller's tabs; otherwise None (whether it exists elsewhere or not at all)."""
        sql = self.sql

        def run(c: Cursor) -> dict[str, Any] | None:
            c.execute(*sql.client(caller.partner_id, client_id))
            row = c.fetchone()
            if row is None:
                return None
            row = dict(row)
            if not caller.is_admin:
                if row["tab"] == "invitations" or not self._active(c, caller):
                    return None
                c.execute(*sql.assignment(caller, client_id))
                if c.fetchone() is None:
                    return None
            item = _item(row, _people(row["people"]))
            c.execute(*sql.preference(caller, client_id))
            pref = c.fetchone()
            item["notifications"] = (
                {"email_enabled": bool(pref["email_enabled"]), "frequency": pref["frequency"]}
                if pref else dict(DEFAULT_NOTIFICATIONS)
            )
            return item

        return self.read_model.read(run)

    def member(self, partner_id: str, user_id: str) -> dict[str, Any] | None:
        rows = self.read_model.query(*self.sql.member(partner_id, user_id))
        return rows[0] if rows else None


def _people(people: Any) -> list[dict[str, str]]:
    """A row's accountants ([user_id, name] pairs as JSON: text on SQLite, parsed on
    PostgreSQL; NULL for none) in natural order of names."""
    if not people:
        return []
    pairs = json.loads(people) if isinstance(people, str) else people
    return [{"user_id": user_id, "name": name}
            for _, user_id, name in sorted((sort_key(name), user_id, name) for user_id, name in pairs)]
