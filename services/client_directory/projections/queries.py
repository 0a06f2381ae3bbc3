"""What the API reads from the Clients read model. Every query is bounded by the caller's firm,
and by what the caller's role and assignments let them see."""

from __future__ import annotations

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
from services.client_directory.projections.postgres import BulkPostgresClientsSQL, PostgresClientsSQL
from services.client_directory.projections.sql import ClientsSQL
from services.client_directory.projections.sqlite import SQLiteClientsSQL
from services.client_directory.projections.text import sort_key

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
             descending: bool = False, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """`{tab, tabs, items, next_cursor}` of GET /v1/clients. Counts are of whole tabs
        (the search and the filter narrow the items, not the counts)."""
        if tab not in tabs_for(caller):
            raise TabForbidden(f"the {tab.value} tab is not for the {caller.role} role")
        after = decode_cursor(cursor) if cursor else None
        if after is not None and (after["d"] != descending or after["t"] != tab.value):
            raise BadCursor("cursor belongs to another tab or sort order")
        sql = self.sql

        def run(c: Cursor) -> dict[str, Any]:
            member = self._active(c, caller)
            counts = {t: self._count(c, caller, t, member) for t in tabs_for(caller)}
            rows: list[dict[str, Any]] = []
            if member or not assigned_only(caller, tab):
                c.execute(*sql.tab(caller, tab, q=q, missing_receipts=missing_receipts, descending=descending,
                                   limit=limit + 1, after=after))
                rows = [dict(r) for r in c.fetchall()]
            more = len(rows) > limit
            rows = rows[:limit]
            accountants = self._accountants(c, caller.partner_id, [r["client_id"] for r in rows])
            next_cursor = None
            if more:
                last = rows[-1]
                next_cursor = encode_cursor(
                    {"t": tab.value, "d": descending, "k": last["sort_key"], "i": last["client_id"]})
            return {
                "tab": tab.value,
                "tabs": [{"id": t.value, "count": n} for t, n in counts.items()
                         if n > 0 or t not in HIDDEN_WHEN_EMPTY],
                "items": [_item(r, accountants.get(r["client_id"], [])) for r in rows],
                "next_cursor": next_cursor,
            }

        return self.read_model.read(run)

    def _active(self, c: Cursor, caller: Caller) -> bool:
        """Assignments of a user not (or no longer) a member are kept, but not shown."""
        c.execute(*self.sql.active(caller))
        row = c.fetchone()
        return bool(row and row["active"])

    def _count(self, c: Cursor, caller: Caller, tab: TabId, member: bool) -> int:
        if assigned_only(caller, tab) and not member:
            return 0
        c.execute(*self.sql.count(caller, tab))
        return int(c.fetchone()["n"])

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
            item = _item(row, self._accountants(c, caller.partner_id, [client_id]).get(client_id, []))
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

    def _accountants(self, c: Cursor, partner_id: str, client_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """Assigned members of each client, by name (natural order), members only."""
        if not client_ids:
            return {}
        c.execute(*self.sql.accountants(partner_id, client_ids))
        by_client: dict[str, list[tuple[str, str, str]]] = {}
        for r in c.fetchall():
            by_client.setdefault(r["client_id"], []).append((sort_key(r["name"]), r["user_id"], r["name"]))
        return {
            client_id: [{"user_id": user_id, "name": name} for _, user_id, name in sorted(people)]
            for client_id, people in by_client.items()
        }
