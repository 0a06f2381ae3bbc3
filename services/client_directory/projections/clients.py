"""The Clients page read model: one row per client relationship, one row per assignment,
the firm's members and their email settings, kept in step with the event store by a
tracked follower (rows and position in one transaction).

Every tab is one index range walked in sort order (see `schema`): a firm's tab costs the
same whether the firm has 50 or 50,000 clients, and no query touches another firm's rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from contracts.api import TabId
from events.follower import LogFollower
from events.store import Cursor, EventStoreApplication, ReadModel
from services.client_directory.projections.batch import TOPICS, ClientsBatch, paused_gc
from services.client_directory.projections.text import fold, like_pattern, sort_key

SCHEMA_VERSION = "4"
TABLES = ("cd_clients", "cd_assignments", "cd_counts", "cd_members", "cd_preferences", "cd_keys")

TAB_ROWS = {TabId.INVITATIONS: "invitations", TabId.ONBOARDING: "onboarding",
            TabId.MINE: "connected", TabId.ALL: "connected"}
DEFAULT_NOTIFICATIONS = {"email_enabled": False, "frequency": "weekly"}


# Indexes only the queries read (the projection reads rows by primary key and
# cd_assignments_client): a rebuild's fresh tables go without them until the switch-over builds
# them, each in one pass, rather than keeping them in order row by row.
QUERY_INDEXES = frozenset({"cd_clients_tab", "cd_clients_tab_missing", "cd_assignments_tab",
                           "cd_assignments_tab_missing"})


def schema(prefix: str = "", kind: str = "sqlite", *, query_indexes: bool = True) -> list[str]:
    """DDL for the read model; `prefix` builds a fresh set of tables for a rebuild.

    Keys compared by the keyset cursor are bytewise on both stores (SQLite's default BINARY;
    COLLATE "C" on PostgreSQL, whose default collation follows the server's locale).
    The partial `_missing` indexes serve the missing-receipts filter in sort order.
    """
    statements = _schema(prefix, kind)
    if query_indexes:
        return statements
    return [s for s in statements if index_name(s) not in {f"{prefix}{name}" for name in QUERY_INDEXES}]


def index_name(statement: str) -> str | None:
    match = re.match(r"\s*CREATE INDEX IF NOT EXISTS (\w+)", statement)
    return match.group(1) if match else None


def _schema(p: str, kind: str) -> list[str]:
    c = ' COLLATE "C"' if kind == "postgresql" else ""
    return [
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
            notification_id {"INTEGER" if kind == "sqlite" else "BIGINT"} PRIMARY KEY,
            partner_id TEXT NOT NULL, natural_id TEXT NOT NULL, second_id TEXT NOT NULL DEFAULT '')""",
    ]


def events_table(app: EventStoreApplication) -> str:
    """The event store's table, as the read model's SQL names it."""
    recorder: Any = app.recorder
    if app.store_url.kind == "sqlite":
        return str(recorder.events_table_name)
    return f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'


def tracking_table(read_model: ReadModel) -> str:
    return "tracking" if read_model.kind == "sqlite" else str(read_model.recorder.tracking_table_name)


class ClientsProjection(LogFollower):
    """Applies relationship, figures, member and preference events to the tables, a batch at a
    time (see batch.py)."""

    name = "projection:clients"
    topics: Sequence[str] = ()

    def __init__(self, app: EventStoreApplication, read_model: ReadModel, prefix: str = "", *,
                 query_indexes: bool = True, bulk: bool = False) -> None:
        super().__init__(app)
        self.read_model = read_model
        self.prefix = prefix
        self.query_indexes = query_indexes
        self.bulk = bulk  # see ClientsBatch: the rebuild's fresh tables
        if prefix:
            self.name = f"projection:clients:{prefix}"
        read_model.write(self._prepare)

    def _prepare(self, c: Cursor) -> None:
        """Create the tables; tables of another schema version are dropped and rebuilt from
        the event store (the read model is derived data; its position goes back to 0)."""
        c.execute("CREATE TABLE IF NOT EXISTS cd_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        key = f"{self.prefix}schema"
        c.execute("SELECT value FROM cd_meta WHERE name = ?", (key,))
        row = c.fetchone()
        if row is None or row["value"] != SCHEMA_VERSION:
            for table in TABLES:
                c.execute(f"DROP TABLE IF EXISTS {self.prefix}{table}")
            c.execute(f"DELETE FROM {tracking_table(self.read_model)} WHERE application_name = ?",
                      (self.name,))
            c.execute("DELETE FROM cd_meta WHERE name = ?", (key,))
            c.execute("INSERT INTO cd_meta (name, value) VALUES (?, ?)", (key, SCHEMA_VERSION))
        for statement in schema(self.prefix, self.read_model.kind, query_indexes=self.query_indexes):
            c.execute(statement)

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        with paused_gc():  # the batch is freed (in _process) before the collector is back
            self._process(notifications, last_id)

    def _process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications if n.topic in TOPICS]

        def run(c: Cursor, position: int) -> None:
            # Another instance may have applied the start of this batch since it was read: its
            # rows hold those events already (a client started there has a row, counted), so
            # only the events after the position recorded with them are folded over them.
            ClientsBatch(self.prefix, self.read_model.kind, events_table(self.app),
                         [(i, e) for i, e in events if i > position], bulk=self.bulk).run(c)

        try:
            self.read_model.write_after(run, Tracking(self.name, last_id))
        except IntegrityError:
            # Another instance on the same database recorded this position first; the rows
            # it wrote are the same. The caller re-reads the position and goes on from there.
            if self.position() < last_id:
                raise


# --- queries ------------------------------------------------------------------------------------

ADMIN_TABS = (TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL)
ACCOUNTANT_TABS = (TabId.ONBOARDING, TabId.MINE)
HIDDEN_WHEN_EMPTY = (TabId.INVITATIONS, TabId.ONBOARDING)


class BadCursor(ValueError):
    pass


class TabForbidden(Exception):
    """A tab the caller's role never sees (HTTP 403)."""


@dataclass(frozen=True)
class Caller:
    partner_id: str
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def tabs_for(caller: Caller) -> tuple[TabId, ...]:
    return ADMIN_TABS if caller.is_admin else ACCOUNTANT_TABS


def assigned_only(caller: Caller, tab: TabId) -> bool:
    """Whether the tab shows only the caller's own clients (read from cd_assignments)."""
    return tab is TabId.MINE or (tab is TabId.ONBOARDING and not caller.is_admin)


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    invalid = BadCursor("cursor is not one this API returned")
    try:
        values = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(values, dict):
        raise invalid
    for key in ("k", "i", "t"):
        value = values.get(key)
        if not isinstance(value, str) or "\x00" in value or len(value) > 2000:
            raise invalid
    if not isinstance(values.get("d"), bool):
        raise invalid
    return values


def _item(row: dict[str, Any], accountants: list[dict[str, str]]) -> dict[str, Any]:
    wallet = None
    if row.get("wallet_amount") is not None:
        wallet = {"amount": row["wallet_amount"], "currency": row["wallet_currency"]}
    return {
        "client_id": row["client_id"], "name": row["name"], "status": row["status"],
        "missing_receipts": row["missing_receipts"], "ready_to_export": row["ready_to_export"],
        "wallet_balance": wallet, "accountants": accountants,
    }


ITEM_COLUMNS = ("c.client_id, c.name, c.status, c.missing_receipts, c.ready_to_export, "
                "c.wallet_amount, c.wallet_currency")


class ClientQueries:
    """What the API reads. Every query is bounded by the caller's firm, and by what the
    caller's role and assignments let them see."""

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    # --- the Clients page -------------------------------------------------------------------

    def page(
        self,
        caller: Caller,
        tab: TabId,
        *,
        q: str | None = None,
        missing_receipts: bool = False,
        descending: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """`{tab, tabs, items, next_cursor}` of GET /v1/clients. Counts are of whole tabs
        (the search and the filter narrow the items, not the counts)."""
        if tab not in tabs_for(caller):
            raise TabForbidden(f"the {tab.value} tab is not for the {caller.role} role")
        after = decode_cursor(cursor) if cursor else None
        if after is not None and (after["d"] != descending or after["t"] != tab.value):
            raise BadCursor("cursor belongs to another tab or sort order")

        def run(c: Cursor) -> dict[str, Any]:
            member = self._active(c, caller)
            counts = {t: self._count(c, caller, t, member) for t in tabs_for(caller)}
            rows: list[dict[str, Any]] = []
            if member or not assigned_only(caller, tab):
                rows = self._rows(c, caller, tab, q, missing_receipts, descending, limit + 1, after)
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

    @staticmethod
    def _active(c: Cursor, caller: Caller) -> bool:
        """Assignments of a user not (or no longer) a member are kept, but not shown."""
        c.execute("SELECT active FROM cd_members WHERE partner_id = ? AND user_id = ?",
                  (caller.partner_id, caller.user_id))
        row = c.fetchone()
        return bool(row and row["active"])

    @staticmethod
    def _count(c: Cursor, caller: Caller, tab: TabId, member: bool) -> int:
        if assigned_only(caller, tab) and not member:
            return 0
        c.execute(*count_query(caller, tab))
        return int(c.fetchone()["n"])

    @staticmethod
    def _rows(c: Cursor, caller: Caller, tab: TabId, q: str | None, missing_receipts: bool,
              descending: bool, limit: int, after: dict[str, Any] | None) -> list[dict[str, Any]]:
        statement, params = tab_query(caller, tab, q=q, missing_receipts=missing_receipts,
                                      descending=descending, limit=limit, after=after)
        c.execute(statement, params)
        return [dict(r) for r in c.fetchall()]

    # --- one client -------------------------------------------------------------------------

    def client(self, caller: Caller, client_id: str) -> dict[str, Any] | None:
        """The item plus the caller's notification setting, if the client is on one of the
        caller's tabs; otherwise None (whether it exists elsewhere or not at all)."""

        def run(c: Cursor) -> dict[str, Any] | None:
            c.execute(f"SELECT {ITEM_COLUMNS}, c.tab FROM cd_clients c "
                      "WHERE c.partner_id = ? AND c.client_id = ? AND c.tab <> ''",
                      (caller.partner_id, client_id))
            row = c.fetchone()
            if row is None:
                return None
            row = dict(row)
            if not caller.is_admin:
                if row["tab"] == "invitations" or not self._active(c, caller):
                    return None
                c.execute("SELECT 1 AS yes FROM cd_assignments WHERE partner_id = ? AND user_id = ? "
                          "AND client_id = ?", (caller.partner_id, caller.user_id, client_id))
                if c.fetchone() is None:
                    return None
            item = _item(row, self._accountants(c, caller.partner_id, [client_id]).get(client_id, []))
            c.execute("SELECT email_enabled, frequency FROM cd_preferences WHERE partner_id = ? "
                      "AND client_id = ? AND user_id = ?", (caller.partner_id, client_id, caller.user_id))
            pref = c.fetchone()
            item["notifications"] = (
                {"email_enabled": bool(pref["email_enabled"]), "frequency": pref["frequency"]}
                if pref else dict(DEFAULT_NOTIFICATIONS)
            )
            return item

        return self.read_model.read(run)

    def member(self, partner_id: str, user_id: str) -> dict[str, Any] | None:
        rows = self.read_model.query(
            "SELECT user_id, name, email, role, locale, active FROM cd_members "
            "WHERE partner_id = ? AND user_id = ?",
            (partner_id, user_id),
        )
        return rows[0] if rows else None

    def _accountants(self, c: Cursor, partner_id: str, client_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """Assigned members of each client, by name (natural order), members only."""
        if not client_ids:
            return {}
        c.execute(*accountants_query(self.read_model.kind, partner_id, client_ids))
        by_client: dict[str, list[tuple[str, str, str]]] = {}
        for r in c.fetchall():
            by_client.setdefault(r["client_id"], []).append((sort_key(r["name"]), r["user_id"], r["name"]))
        return {
            client_id: [{"user_id": user_id, "name": name} for _, user_id, name in sorted(people)]
            for client_id, people in by_client.items()
        }


def accountants_query(kind: str, partner_id: str, client_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """The assignments of a page's clients, with their members' names: one lookup per client in
    cd_assignments_client. SQLite chose it only with statistics, which no store has (nothing
    runs ANALYZE): without them it walked the firm's whole range of cd_assignments_tab for the
    page's 50 ids (2,500 rows in a firm of 50,000 clients, about 1 ms of every page)."""
    marks = ", ".join("?" for _ in client_ids)
    hint = " INDEXED BY cd_assignments_client" if kind == "sqlite" else ""
    return (f"SELECT a.client_id, a.user_id, m.name FROM cd_assignments a{hint} JOIN cd_members m "
            f"ON m.partner_id = a.partner_id AND m.user_id = a.user_id AND m.active = 1 "
            f"WHERE a.partner_id = ? AND a.client_id IN ({marks})",
            [partner_id, *client_ids])


def count_query(caller: Caller, tab: TabId) -> tuple[str, list[Any]]:
    """How many clients a tab holds for the caller: one row of cd_counts."""
    scope = caller.user_id if assigned_only(caller, tab) else ""
    return ("SELECT COALESCE(SUM(n), 0) AS n FROM cd_counts WHERE partner_id = ? AND scope = ? AND tab = ?",
            [caller.partner_id, scope, TAB_ROWS[tab]])


def recount_query(caller: Caller, tab: TabId) -> tuple[str, list[Any]]:
    """What cd_counts must say, counted from the rows (for tests and on-call checks)."""
    if assigned_only(caller, tab):
        return ("SELECT COUNT(*) AS n FROM cd_assignments WHERE partner_id = ? AND user_id = ? AND tab = ?",
                [caller.partner_id, caller.user_id, TAB_ROWS[tab]])
    return ("SELECT COUNT(*) AS n FROM cd_clients WHERE partner_id = ? AND tab = ?",
            [caller.partner_id, TAB_ROWS[tab]])


def tab_query(caller: Caller, tab: TabId, *, q: str | None = None, missing_receipts: bool = False,
              descending: bool = False, limit: int = 50,
              after: dict[str, Any] | None = None) -> tuple[str, list[Any]]:
    """The SQL of one page of a tab: the firm's (or the caller's) index range for the tab,
    in sort order, from the cursor on. A search filters within that range (substring
    matching cannot use an index: it reads at most the firm's rows of that tab)."""
    if assigned_only(caller, tab):
        base = (f"SELECT {ITEM_COLUMNS}, a.sort_key FROM cd_assignments a JOIN cd_clients c "
                "ON c.partner_id = a.partner_id AND c.client_id = a.client_id "
                "WHERE a.partner_id = ? AND a.user_id = ? AND a.tab = ?")
        params: list[Any] = [caller.partner_id, caller.user_id, TAB_ROWS[tab]]
        k = "a"
    else:
        base = f"SELECT {ITEM_COLUMNS}, c.sort_key FROM cd_clients c WHERE c.partner_id = ? AND c.tab = ?"
        params = [caller.partner_id, TAB_ROWS[tab]]
        k = "c"
    where = [base]
    if missing_receipts:
        where.append(f"{k}.missing_receipts > 0")  # the very term of the partial index
    if q and fold(q):
        where.append("c.search_key LIKE ? ESCAPE '\\'")
        params.append(like_pattern(q))
    op, direction = ("<", "DESC") if descending else (">", "ASC")
    if after is not None:
        where.append(f"({k}.sort_key, {k}.client_id) {op} (?, ?)")
        params += [after["k"], after["i"]]
    statement = (" AND ".join(where)
                 + f" ORDER BY {k}.sort_key {direction}, {k}.client_id {direction} LIMIT ?")
    params.append(limit)
    return statement, params
