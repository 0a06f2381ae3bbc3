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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from contracts.api import TabId
from events.follower import LogFollower
from events.store import Cursor, EventStoreApplication, ReadModel
from services.client_directory.domain.model import (
    ClientFigures,
    ClientRelationship,
    Member,
    NotificationPreference,
    Status,
)
from services.client_directory.projections.text import fold, like_pattern, sort_key

SCHEMA_VERSION = "3"
TABLES = ("cd_clients", "cd_assignments", "cd_counts", "cd_members", "cd_preferences", "cd_keys")

# The tab a client is on, by status; ended relationships (and figures of a client not known
# yet) are on none. `mine` and `all` both show connected clients.
TAB_OF_STATUS = {
    Status.INVITED.value: "invitations",
    Status.ONBOARDING.value: "onboarding",
    Status.VERIFICATION_FAILED.value: "onboarding",
    Status.CONNECTED.value: "connected",
}
TAB_ROWS = {TabId.INVITATIONS: "invitations", TabId.ONBOARDING: "onboarding",
            TabId.MINE: "connected", TabId.ALL: "connected"}
DEFAULT_NOTIFICATIONS = {"email_enabled": False, "frequency": "weekly"}


def schema(prefix: str = "", kind: str = "sqlite") -> list[str]:
    """DDL for the read model; `prefix` builds a fresh set of tables for a rebuild.

    Keys compared by the keyset cursor are bytewise on both stores (SQLite's default BINARY;
    COLLATE "C" on PostgreSQL, whose default collation follows the server's locale).
    The partial `_missing` indexes serve the missing-receipts filter in sort order.
    """
    p = prefix
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
        f"""CREATE TABLE IF NOT EXISTS {p}cd_keys (
            originator_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, natural_id TEXT NOT NULL,
            second_id TEXT NOT NULL DEFAULT '')""",
    ]


def tracking_table(read_model: ReadModel) -> str:
    return "tracking" if read_model.kind == "sqlite" else str(read_model.recorder.tracking_table_name)


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; a name is display text, so it is replaced, not refused.
    return text.replace("\x00", "\ufffd")


class ClientsProjection(LogFollower):
    """Applies relationship, figures, member and preference events to the tables."""

    name = "projection:clients"
    topics: Sequence[str] = ()

    def __init__(self, app: EventStoreApplication, read_model: ReadModel, prefix: str = "") -> None:
        super().__init__(app)
        self.read_model = read_model
        self.prefix = prefix
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
        for statement in schema(self.prefix, self.read_model.kind):
            c.execute(statement)

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [self.app.mapper.to_domain_event(n) for n in notifications]

        def apply(c: Cursor) -> None:
            for domain_event in events:
                self._apply(c, domain_event)

        try:
            self.read_model.write(apply, Tracking(self.name, last_id))
        except IntegrityError:
            # Another instance on the same database recorded this position first; the rows
            # it wrote are the same. The caller re-reads the position and goes on from there.
            if self.position() < last_id:
                raise

    def _t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def _apply(self, c: Cursor, e: Any) -> None:
        clients, members, preferences = self._t("cd_clients"), self._t("cd_members"), self._t("cd_preferences")
        if isinstance(e, ClientRelationship.Started | ClientRelationship.Restarted):
            if isinstance(e, ClientRelationship.Started):
                self._remember(c, e.originator_id, e.partner_id, e.client_id)
            partner_id, client_id = self._ids(c, e)
            name = _clean(e.name)
            c.execute(
                f"INSERT INTO {clients} (partner_id, client_id, name, sort_key, search_key, status) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, client_id) DO UPDATE SET "
                "name = excluded.name, sort_key = excluded.sort_key, "
                "search_key = excluded.search_key, status = excluded.status",
                (partner_id, client_id, name, sort_key(name), fold(name), e.status),
            )
            self._unassign(c, partner_id, client_id)
            self._move(c, partner_id, client_id, TAB_OF_STATUS.get(e.status, ""))
        elif isinstance(e, ClientRelationship.Renamed):
            partner_id, client_id = self._ids(c, e)
            name = _clean(e.name)
            c.execute(f"UPDATE {clients} SET name = ?, sort_key = ?, search_key = ? "
                      "WHERE partner_id = ? AND client_id = ?",
                      (name, sort_key(name), fold(name), partner_id, client_id))
            c.execute(f"UPDATE {self._t('cd_assignments')} SET sort_key = ? WHERE partner_id = ? AND client_id = ?",
                      (sort_key(name), partner_id, client_id))
        elif isinstance(e, ClientRelationship.InvitationAccepted | ClientRelationship.VerificationCompleted):
            self._status(c, e, Status.CONNECTED)
        elif isinstance(e, ClientRelationship.VerificationFailed):
            self._status(c, e, Status.VERIFICATION_FAILED)
        elif isinstance(e, ClientRelationship.InvitationDeclined | ClientRelationship.Disconnected):
            ended = Status.DECLINED if isinstance(e, ClientRelationship.InvitationDeclined) else Status.DISCONNECTED
            partner_id, client_id = self._status(c, e, ended)
            self._unassign(c, partner_id, client_id)
        elif isinstance(e, ClientRelationship.AccountantAssigned):
            self._assign(c, *self._ids(c, e), e.user_id)
        elif isinstance(e, ClientRelationship.AccountantUnassigned):
            self._unassign(c, *self._ids(c, e), e.user_id)
        elif isinstance(e, ClientFigures.Created):
            self._remember(c, e.originator_id, e.partner_id, e.client_id)
            c.execute(f"INSERT INTO {clients} (partner_id, client_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                      (e.partner_id, e.client_id))
        elif isinstance(e, ClientFigures.Updated):
            partner_id, client_id = self._ids(c, e)
            c.execute(
                f"UPDATE {clients} SET wallet_amount = ?, wallet_currency = ?, missing_receipts = ?, "
                "ready_to_export = ? WHERE partner_id = ? AND client_id = ?",
                (e.wallet_amount, e.wallet_currency, e.missing_receipts, e.ready_to_export, partner_id, client_id),
            )
            c.execute(f"UPDATE {self._t('cd_assignments')} SET missing_receipts = ? "
                      "WHERE partner_id = ? AND client_id = ?", (e.missing_receipts, partner_id, client_id))
        elif isinstance(e, Member.Added | Member.Rejoined):
            if isinstance(e, Member.Added):
                self._remember(c, e.originator_id, e.partner_id, e.user_id)
            partner_id, user_id = self._ids(c, e)
            c.execute(
                f"INSERT INTO {members} (partner_id, user_id, name, email, role, locale, active) "
                "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (partner_id, user_id) DO UPDATE SET "
                "name = excluded.name, email = excluded.email, role = excluded.role, "
                "locale = excluded.locale, active = 1",
                (partner_id, user_id, _clean(e.name), _clean(e.email), e.role, _clean(e.locale)),
            )
        elif isinstance(e, Member.RoleChanged):
            c.execute(f"UPDATE {members} SET role = ? WHERE partner_id = ? AND user_id = ?",
                      (e.role, *self._ids(c, e)))
        elif isinstance(e, Member.Removed):
            # Their assignments were undone in the event store in the same transaction
            # (AccountantUnassigned events, applied on their own), so only the member row changes.
            c.execute(f"UPDATE {members} SET active = 0 WHERE partner_id = ? AND user_id = ?", self._ids(c, e))
        elif isinstance(e, NotificationPreference.Created):
            self._remember(c, e.originator_id, e.partner_id, e.client_id, e.user_id)
        elif isinstance(e, NotificationPreference.Set):
            partner_id, client_id, user_id = self._ids3(c, e)
            c.execute(
                f"INSERT INTO {preferences} (partner_id, client_id, user_id, email_enabled, frequency) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner_id, client_id, user_id) DO UPDATE SET "
                "email_enabled = excluded.email_enabled, frequency = excluded.frequency",
                (partner_id, client_id, user_id, int(e.email_enabled), e.frequency),
            )

    # Every change of a client's tab, and every assignment row added or removed, goes through
    # the three methods below: they keep cd_counts equal to what COUNT(*) would say.

    def _move(self, c: Cursor, partner_id: str, client_id: str, tab: str) -> None:
        """Put the client (and its assignment rows) on `tab` ('' for none)."""
        clients, assignments = self._t("cd_clients"), self._t("cd_assignments")
        c.execute(f"SELECT tab FROM {clients} WHERE partner_id = ? AND client_id = ?", (partner_id, client_id))
        old = c.fetchone()["tab"]
        if old == tab:
            return
        c.execute(f"UPDATE {clients} SET tab = ? WHERE partner_id = ? AND client_id = ?", (tab, partner_id, client_id))
        self._bump(c, partner_id, "", old, -1)
        self._bump(c, partner_id, "", tab, +1)
        c.execute(f"SELECT user_id FROM {assignments} WHERE partner_id = ? AND client_id = ?",
                  (partner_id, client_id))
        for row in c.fetchall():
            self._bump(c, partner_id, row["user_id"], old, -1)
            self._bump(c, partner_id, row["user_id"], tab, +1)
        c.execute(f"UPDATE {assignments} SET tab = ? WHERE partner_id = ? AND client_id = ?",
                  (tab, partner_id, client_id))

    def _assign(self, c: Cursor, partner_id: str, client_id: str, user_id: str) -> None:
        assignments = self._t("cd_assignments")
        c.execute(f"SELECT 1 AS yes FROM {assignments} WHERE partner_id = ? AND user_id = ? AND client_id = ?",
                  (partner_id, user_id, client_id))
        if c.fetchone() is not None:
            return
        c.execute(f"SELECT tab, sort_key, missing_receipts FROM {self._t('cd_clients')} "
                  "WHERE partner_id = ? AND client_id = ?", (partner_id, client_id))
        client = c.fetchone()
        c.execute(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, missing_receipts) "
                  "VALUES (?, ?, ?, ?, ?, ?)",
                  (partner_id, user_id, client_id, client["tab"], client["sort_key"], client["missing_receipts"]))
        self._bump(c, partner_id, user_id, client["tab"], +1)

    def _unassign(self, c: Cursor, partner_id: str, client_id: str, user_id: str | None = None) -> None:
        """Remove one user's assignment row of the client, or (user_id None) all of them."""
        assignments = self._t("cd_assignments")
        where, params = "partner_id = ? AND client_id = ?", [partner_id, client_id]
        if user_id is not None:
            where, params = where + " AND user_id = ?", [*params, user_id]
        c.execute(f"SELECT user_id, tab FROM {assignments} WHERE {where}", params)
        for row in c.fetchall():
            self._bump(c, partner_id, row["user_id"], row["tab"], -1)
        c.execute(f"DELETE FROM {assignments} WHERE {where}", params)

    def _bump(self, c: Cursor, partner_id: str, scope: str, tab: str, delta: int) -> None:
        """Add delta to the count of a tab, firm-wide (scope '') or of one user's assignments."""
        if not tab:
            return
        counts = self._t("cd_counts")
        c.execute(f"INSERT INTO {counts} (partner_id, scope, tab, n) VALUES (?, ?, ?, ?) "
                  f"ON CONFLICT (partner_id, scope, tab) DO UPDATE SET n = {counts}.n + excluded.n",
                  (partner_id, scope, tab, delta))

    def _remember(self, c: Cursor, originator_id: Any, partner_id: str, natural_id: str, second_id: str = "") -> None:
        c.execute(
            f"INSERT INTO {self._t('cd_keys')} (originator_id, partner_id, natural_id, second_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (str(originator_id), partner_id, natural_id, second_id),
        )

    def _ids3(self, c: Cursor, e: Any) -> tuple[str, str, str]:
        c.execute(f"SELECT partner_id, natural_id, second_id FROM {self._t('cd_keys')} WHERE originator_id = ?",
                  (str(e.originator_id),))
        row = c.fetchone()
        assert row is not None, f"no keys recorded for aggregate {e.originator_id}"
        return row["partner_id"], row["natural_id"], row["second_id"]

    def _ids(self, c: Cursor, e: Any) -> tuple[str, str]:
        partner_id, natural_id, _ = self._ids3(c, e)
        return partner_id, natural_id

    def _status(self, c: Cursor, e: Any, status: Status) -> tuple[str, str]:
        partner_id, client_id = self._ids(c, e)
        c.execute(f"UPDATE {self._t('cd_clients')} SET status = ? WHERE partner_id = ? AND client_id = ?",
                  (status.value, partner_id, client_id))
        self._move(c, partner_id, client_id, TAB_OF_STATUS.get(status.value, ""))
        return partner_id, client_id


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

    @staticmethod
    def _accountants(c: Cursor, partner_id: str, client_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """Assigned members of each client, by name (natural order), members only."""
        if not client_ids:
            return {}
        marks = ", ".join("?" for _ in client_ids)
        c.execute(
            f"SELECT a.client_id, a.user_id, m.name FROM cd_assignments a JOIN cd_members m "
            f"ON m.partner_id = a.partner_id AND m.user_id = a.user_id AND m.active = 1 "
            f"WHERE a.partner_id = ? AND a.client_id IN ({marks})",
            [partner_id, *client_ids],
        )
        by_client: dict[str, list[tuple[str, str, str]]] = {}
        for r in c.fetchall():
            by_client.setdefault(r["client_id"], []).append((sort_key(r["name"]), r["user_id"], r["name"]))
        return {
            client_id: [{"user_id": user_id, "name": name} for _, user_id, name in sorted(people)]
            for client_id, people in by_client.items()
        }


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
