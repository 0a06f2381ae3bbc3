"""The Clients page read model: one row per client relationship, its accountants, the firm's
members and their email settings, kept in step with the event store by a tracked follower."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification, Tracking

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

TABLES = ("cd_clients", "cd_assignments", "cd_members", "cd_preferences", "cd_keys")


def schema(prefix: str = "") -> list[str]:
    """DDL for the read model; `prefix` builds a fresh set of tables for a rebuild."""
    p = prefix
    return [
        f"""CREATE TABLE IF NOT EXISTS {p}cd_clients (
            partner_id TEXT NOT NULL, client_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '', sort_key TEXT NOT NULL DEFAULT '',
            search_key TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT '',
            missing_receipts INTEGER NOT NULL DEFAULT 0, ready_to_export INTEGER NOT NULL DEFAULT 0,
            wallet_amount TEXT, wallet_currency TEXT,
            PRIMARY KEY (partner_id, client_id))""",
        f"CREATE INDEX IF NOT EXISTS {p}cd_clients_tab ON {p}cd_clients (partner_id, status, sort_key, client_id)",
        f"""CREATE TABLE IF NOT EXISTS {p}cd_assignments (
            partner_id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
            PRIMARY KEY (partner_id, user_id, client_id))""",
        f"CREATE INDEX IF NOT EXISTS {p}cd_assignments_client ON {p}cd_assignments (partner_id, client_id)",
        f"""CREATE TABLE IF NOT EXISTS {p}cd_members (
            partner_id TEXT NOT NULL, user_id TEXT NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
            role TEXT NOT NULL, locale TEXT NOT NULL, active INTEGER NOT NULL,
            PRIMARY KEY (partner_id, user_id))""",
        f"""CREATE TABLE IF NOT EXISTS {p}cd_preferences (
            partner_id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
            email_enabled INTEGER NOT NULL, frequency TEXT NOT NULL,
            PRIMARY KEY (partner_id, client_id, user_id))""",
        # Later events of an aggregate carry only its originator id: map it to natural keys.
        f"""CREATE TABLE IF NOT EXISTS {p}cd_keys (
            originator_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, natural_id TEXT NOT NULL)""",
    ]


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
        read_model.write(lambda c: [c.execute(s) for s in schema(prefix)])

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [self.app.mapper.to_domain_event(n) for n in notifications]

        def apply(c: Cursor) -> None:
            for domain_event in events:
                self._apply(c, domain_event)

        self.read_model.write(apply, Tracking(self.name, last_id))

    def _t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def _apply(self, c: Cursor, e: Any) -> None:  # noqa: C901 - one branch per event type
        clients, assignments = self._t("cd_clients"), self._t("cd_assignments")
        members, preferences = self._t("cd_members"), self._t("cd_preferences")
        if isinstance(e, ClientRelationship.Started | ClientRelationship.Restarted):
            partner_id, client_id = self._client_ids(c, e)
            c.execute(
                f"INSERT INTO {clients} (partner_id, client_id, name, sort_key, search_key, status) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, client_id) DO UPDATE SET "
                "name = excluded.name, sort_key = excluded.sort_key, "
                "search_key = excluded.search_key, status = excluded.status",
                (partner_id, client_id, e.name, sort_key(e.name), fold(e.name), e.status),
            )
            c.execute(f"DELETE FROM {assignments} WHERE partner_id = ? AND client_id = ?", (partner_id, client_id))
        elif isinstance(e, ClientRelationship.Renamed):
            c.execute(
                f"UPDATE {clients} SET name = ?, sort_key = ?, search_key = ? WHERE partner_id = ? AND client_id = ?",
                (e.name, sort_key(e.name), fold(e.name), *self._client_ids(c, e)),
            )
        elif isinstance(e, ClientRelationship.InvitationAccepted | ClientRelationship.VerificationCompleted):
            self._status(c, e, Status.CONNECTED)
        elif isinstance(e, ClientRelationship.VerificationFailed):
            self._status(c, e, Status.VERIFICATION_FAILED)
        elif isinstance(e, ClientRelationship.InvitationDeclined | ClientRelationship.Disconnected):
            partner_id, client_id = self._client_ids(c, e)
            self._status(c, e, Status.DECLINED if isinstance(e, ClientRelationship.InvitationDeclined) else Status.DISCONNECTED)
            c.execute(f"DELETE FROM {assignments} WHERE partner_id = ? AND client_id = ?", (partner_id, client_id))
        elif isinstance(e, ClientRelationship.AccountantAssigned):
            c.execute(
                f"INSERT INTO {assignments} (partner_id, client_id, user_id) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (*self._client_ids(c, e), e.user_id),
            )
        elif isinstance(e, ClientRelationship.AccountantUnassigned):
            c.execute(
                f"DELETE FROM {assignments} WHERE partner_id = ? AND client_id = ? AND user_id = ?",
                (*self._client_ids(c, e), e.user_id),
            )
        elif isinstance(e, ClientFigures.Created):
            c.execute(
                f"INSERT INTO {clients} (partner_id, client_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (e.partner_id, e.client_id),
            )
            self._remember(c, e.originator_id, e.partner_id, e.client_id)
        elif isinstance(e, ClientFigures.Updated):
            partner_id, client_id = self._client_ids(c, e)
            c.execute(
                f"UPDATE {clients} SET wallet_amount = ?, wallet_currency = ?, missing_receipts = ?, "
                "ready_to_export = ? WHERE partner_id = ? AND client_id = ?",
                (e.wallet_amount, e.wallet_currency, e.missing_receipts, e.ready_to_export, partner_id, client_id),
            )
        elif isinstance(e, Member.Added | Member.Rejoined):
            if isinstance(e, Member.Added):
                self._remember(c, e.originator_id, e.partner_id, e.user_id)
            partner_id, user_id = self._client_ids(c, e)
            c.execute(
                f"INSERT INTO {members} (partner_id, user_id, name, email, role, locale, active) "
                "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (partner_id, user_id) DO UPDATE SET "
                "name = excluded.name, email = excluded.email, role = excluded.role, "
                "locale = excluded.locale, active = 1",
                (partner_id, user_id, e.name, e.email, e.role, e.locale),
            )
        elif isinstance(e, Member.RoleChanged):
            c.execute(f"UPDATE {members} SET role = ? WHERE partner_id = ? AND user_id = ?",
                      (e.role, *self._client_ids(c, e)))
        elif isinstance(e, Member.Removed):
            partner_id, user_id = self._client_ids(c, e)
            c.execute(f"UPDATE {members} SET active = 0 WHERE partner_id = ? AND user_id = ?", (partner_id, user_id))
            # Removing a member unassigns them everywhere.
            c.execute(f"DELETE FROM {assignments} WHERE partner_id = ? AND user_id = ?", (partner_id, user_id))
        elif isinstance(e, NotificationPreference.Created):
            self._remember(c, e.originator_id, e.partner_id, f"{e.client_id}\x00{e.user_id}")
        elif isinstance(e, NotificationPreference.Set):
            partner_id, key = self._client_ids(c, e)
            client_id, user_id = key.split("\x00")
            c.execute(
                f"INSERT INTO {preferences} (partner_id, client_id, user_id, email_enabled, frequency) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner_id, client_id, user_id) DO UPDATE SET "
                "email_enabled = excluded.email_enabled, frequency = excluded.frequency",
                (partner_id, client_id, user_id, int(e.email_enabled), e.frequency),
            )

    def _remember(self, c: Cursor, originator_id: Any, partner_id: str, natural_id: str) -> None:
        c.execute(
            f"INSERT INTO {self._t('cd_keys')} (originator_id, partner_id, natural_id) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (str(originator_id), partner_id, natural_id),
        )

    def _client_ids(self, c: Cursor, e: Any) -> tuple[str, str]:
        if isinstance(e, ClientRelationship.Started):
            self._remember(c, e.originator_id, e.partner_id, e.client_id)
            return e.partner_id, e.client_id
        c.execute(
            f"SELECT partner_id, natural_id FROM {self._t('cd_keys')} WHERE originator_id = ?",
            (str(e.originator_id),),
        )
        row = c.fetchone()
        assert row is not None, f"no keys recorded for aggregate {e.originator_id}"
        return row["partner_id"], row["natural_id"]

    def _status(self, c: Cursor, e: Any, status: Status) -> None:
        c.execute(
            f"UPDATE {self._t('cd_clients')} SET status = ? WHERE partner_id = ? AND client_id = ?",
            (status.value, *self._client_ids(c, e)),
        )


# --- queries ------------------------------------------------------------------------------------

TAB_STATUSES: dict[TabId, tuple[str, ...]] = {
    TabId.INVITATIONS: (Status.INVITED.value,),
    TabId.ONBOARDING: (Status.ONBOARDING.value, Status.VERIFICATION_FAILED.value),
    TabId.MINE: (Status.CONNECTED.value,),
    TabId.ALL: (Status.CONNECTED.value,),
}
ADMIN_TABS = (TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL)
ACCOUNTANT_TABS = (TabId.ONBOARDING, TabId.MINE)
HIDDEN_WHEN_EMPTY = (TabId.INVITATIONS, TabId.ONBOARDING)


class BadCursor(ValueError):
    pass


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


def _scope(caller: Caller, tab: TabId) -> tuple[str, list[Any]]:
    """FROM/WHERE of a tab for a caller: only that firm, only what the role may see."""
    statuses = TAB_STATUSES[tab]
    marks = ", ".join("?" for _ in statuses)
    only_assigned = tab is TabId.MINE or (tab is TabId.ONBOARDING and not caller.is_admin)
    if only_assigned:
        return (
            f"FROM cd_assignments a JOIN cd_clients c ON c.partner_id = a.partner_id AND c.client_id = a.client_id "
            f"WHERE a.partner_id = ? AND a.user_id = ? AND c.status IN ({marks})",
            [caller.partner_id, caller.user_id, *statuses],
        )
    return f"FROM cd_clients c WHERE c.partner_id = ? AND c.status IN ({marks})", [caller.partner_id, *statuses]


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("cursor is not one this API returned") from None
    if not isinstance(values, dict) or not isinstance(values.get("k"), str) or not isinstance(values.get("i"), str):
        raise BadCursor("cursor is not one this API returned")
    return values


class ClientQueries:
    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    def counts(self, caller: Caller) -> dict[TabId, int]:
        def run(c: Cursor) -> dict[TabId, int]:
            result = {}
            for tab in tabs_for(caller):
                where, params = _scope(caller, tab)
                c.execute(f"SELECT COUNT(*) AS n {where}", params)
                result[tab] = int(c.fetchone()["n"])
            return result

        return self.read_model.read(run)

    def page(
        self,
        caller: Caller,
        tab: TabId,
        *,
        q: str | None,
        missing_receipts: bool,
        descending: bool,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        where, params = _scope(caller, tab)
        if q:
            where += " AND c.search_key LIKE ? ESCAPE '\\'"
            params.append(like_pattern(q))
        if missing_receipts:
            where += " AND c.missing_receipts > 0"
        direction = "DESC" if descending else "ASC"
        if cursor:
            after = decode_cursor(cursor)
            if after.get("d") != descending or after.get("t") != tab.value:
                raise BadCursor("cursor belongs to another tab or sort order")
            op = "<" if descending else ">"
            where += f" AND (c.sort_key {op} ? OR (c.sort_key = ? AND c.client_id {op} ?))"
            params += [after["k"], after["k"], after["i"]]
        statement = (
            "SELECT c.client_id, c.name, c.status, c.missing_receipts, c.ready_to_export, "
            f"c.wallet_amount, c.wallet_currency, c.sort_key {where} "
            f"ORDER BY c.sort_key {direction}, c.client_id {direction} LIMIT ?"
        )
        params.append(limit + 1)

        def run(c: Cursor) -> list[dict[str, Any]]:
            c.execute(statement, params)
            rows = [dict(r) for r in c.fetchall()]
            self._attach_accountants(c, caller.partner_id, rows[:limit])
            return rows

        rows = self.read_model.read(run)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor({"t": tab.value, "d": descending, "k": last["sort_key"], "i": last["client_id"]})
        return rows, next_cursor

    def client(self, caller: Caller, client_id: str) -> dict[str, Any] | None:
        """The client if the caller may see it on any of their tabs, else None."""

        def run(c: Cursor) -> dict[str, Any] | None:
            c.execute(
                "SELECT client_id, name, status, missing_receipts, ready_to_export, wallet_amount, "
                "wallet_currency FROM cd_clients WHERE partner_id = ? AND client_id = ? AND status IN "
                "('invited', 'onboarding', 'verification_failed', 'connected')",
                (caller.partner_id, client_id),
            )
            row = c.fetchone()
            if row is None:
                return None
            item = dict(row)
            self._attach_accountants(c, caller.partner_id, [item])
            if not caller.is_admin:
                if item["status"] == "invited":
                    return None
                if caller.user_id not in {a["user_id"] for a in item["accountants"]}:
                    return None
            c.execute(
                "SELECT email_enabled, frequency FROM cd_preferences WHERE partner_id = ? AND client_id = ? "
                "AND user_id = ?",
                (caller.partner_id, client_id, caller.user_id),
            )
            pref = c.fetchone()
            item["notifications"] = (
                {"email_enabled": bool(pref["email_enabled"]), "frequency": pref["frequency"]}
                if pref
                else {"email_enabled": False, "frequency": "weekly"}
            )
            return item

        return self.read_model.read(run)

    def member(self, partner_id: str, user_id: str) -> dict[str, Any] | None:
        rows = self.read_model.query(
            "SELECT user_id, name, email, role, locale, active FROM cd_members WHERE partner_id = ? AND user_id = ?",
            (partner_id, user_id),
        )
        return rows[0] if rows else None

    def _attach_accountants(self, c: Cursor, partner_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        ids = [r["client_id"] for r in rows]
        marks = ", ".join("?" for _ in ids)
        c.execute(
            f"SELECT a.client_id, a.user_id, COALESCE(m.name, a.user_id) AS name FROM cd_assignments a "
            f"JOIN cd_members m ON m.partner_id = a.partner_id AND m.user_id = a.user_id AND m.active = 1 "
            f"WHERE a.partner_id = ? AND a.client_id IN ({marks}) ORDER BY m.name, a.user_id",
            [partner_id, *ids],
        )
        by_client: dict[str, list[dict[str, str]]] = {}
        for r in c.fetchall():
            by_client.setdefault(r["client_id"], []).append({"user_id": r["user_id"], "name": r["name"]})
        for row in rows:
            row["accountants"] = by_client.get(row["client_id"], [])
