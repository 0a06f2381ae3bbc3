"""One batch of the Clients projection, folded in memory and written in a few statements.

Applying events one SQL statement at a time cost ~7.6 statements per event (a round trip each
on PostgreSQL). Instead, for each batch:

1. `ClientsBatch.load` reads, in one query per table (per chunk of keys), everything the
   batch's events need: the natural keys of their aggregates, and the rows of the clients
   and members they touch (with each client's assigned users);
2. `apply` folds the events, in order, into those rows in memory;
3. `write` writes only the rows that changed, one executemany per kind of statement (the
   rebuild's batches on PostgreSQL: COPY for new rows, one statement over arrays for the
   others), and moves the tab counts by the difference between each changed row's stored tab
   and its new one.

The rules of each event are those of the read model (see clients.py): what matters here is
that a batch gives the same rows as the same events applied one by one.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from eventsourcing.domain import Aggregate

from events.store import Cursor
from services.client_directory.domain.model import (
    ClientFigures,
    ClientRelationship,
    Member,
    NotificationPreference,
    Status,
)
from services.client_directory.projections.text import name_keys

# The tab a client is on, by status; ended relationships (and figures of a client not known
# yet) are on none. `mine` and `all` both show connected clients.
TAB_OF_STATUS = {
    Status.INVITED.value: "invitations",
    Status.ONBOARDING.value: "onboarding",
    Status.VERIFICATION_FAILED.value: "onboarding",
    Status.CONNECTED.value: "connected",
}
# The statuses as stored (an enum member's `.value` is a property: slow in a loop).
CONNECTED, VERIFICATION_FAILED = Status.CONNECTED.value, Status.VERIFICATION_FAILED.value
DECLINED, DISCONNECTED = Status.DECLINED.value, Status.DISCONNECTED.value

# Keys per query: well under SQLite's and PostgreSQL's parameter limits, and few queries.
CHUNK = 1000

# The PostgreSQL array type of each column written in bulk (see ClientsBatch `bulk`); the
# others are text.
PG_ARRAYS = {"notification_id": "bigint[]", "missing_receipts": "integer[]", "ready_to_export": "integer[]",
             "n": "integer[]", "active": "integer[]", "email_enabled": "integer[]"}

ClientKey = tuple[str, str]  # (partner_id, client_id)
MemberKey = tuple[str, str]  # (partner_id, user_id)
PreferenceKey = tuple[str, str, str]  # (partner_id, client_id, user_id)
CountKey = tuple[str, str, str]  # (partner_id, scope: '' firm-wide or a user_id, tab)
NaturalKeys = tuple[str, str, str]  # (partner_id, natural_id, second_id) of an aggregate


class BatchCursor(Cursor, Protocol):
    """Both read-model cursors (sqlite3's own, and `_Translating` on PostgreSQL) have it."""

    def executemany(self, statement: str, seq: Iterable[Sequence[Any]]) -> Any: ...


class CopyCursor(BatchCursor, Protocol):
    """`_Translating` (PostgreSQL) only."""

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None: ...


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a batch without the cyclic garbage collector.

    A batch holds ~10 new containers per event (events, rows, keys) until it is written: the
    collector traversed them again and again, ~13% of a rebuild's time, and found nothing
    (a batch makes no reference cycles; reference counting frees it). It runs again after:
    free the batch inside the block, or its first pass traverses it all once more.
    """
    if not gc.isenabled():  # paused already (another batch, another thread)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; a name is display text, so it is replaced, not refused.
    return text.replace("\x00", "\ufffd")


@dataclass(slots=True)
class ClientRow:
    """A cd_clients row and the users assigned to the client.

    Each user's cd_assignments row is a copy of the client's tab, sort key and missing
    receipts (every write below keeps it so): the set of users is all that is kept of them.

    A client whose relationship starts in the batch is not read first: a row can only hold its
    figures then (figures may come first), and those stay unknown (`figures_known`) until the
    batch brings some. Its row is written without them, and assignment rows copy them from it.
    """

    name: str = ""
    sort_key: str = ""
    search_key: str = ""
    status: str = ""
    tab: str = ""
    missing_receipts: int = 0
    ready_to_export: int = 0
    wallet_amount: str | None = None
    wallet_currency: str | None = None
    accountants: set[str] = field(default_factory=set)
    figures_known: bool = True
    # As stored before this batch (None: no row yet), to write only what changed.
    stored: tuple[Any, ...] | None = None
    stored_copied: tuple[str, str, int] | None = None
    stored_accountants: frozenset[str] = frozenset()

    COLUMNS = ("name", "sort_key", "search_key", "status", "tab", "missing_receipts", "ready_to_export",
               "wallet_amount", "wallet_currency")
    RELATIONSHIP_COLUMNS = COLUMNS[:5]  # the rest are the figures

    def mark_stored(self) -> None:
        self.stored, self.stored_copied = self.row(), self.copied()
        self.stored_accountants = frozenset(self.accountants)

    @property
    def stored_tab(self) -> str:
        return self.stored_copied[0] if self.stored_copied is not None else ""

    def row(self) -> tuple[Any, ...]:
        return (self.name, self.sort_key, self.search_key, self.status, self.tab, self.missing_receipts,
                self.ready_to_export, self.wallet_amount, self.wallet_currency)

    def copied(self) -> tuple[str, str, int]:
        """What each assignment row copies from the client."""
        return self.tab, self.sort_key, self.missing_receipts


@dataclass(slots=True)
class MemberRow:
    name: str
    email: str
    role: str
    locale: str
    active: int
    stored: tuple[Any, ...] | None = None

    COLUMNS = ("name", "email", "role", "locale", "active")

    def row(self) -> tuple[Any, ...]:
        return self.name, self.email, self.role, self.locale, self.active


# What an event does to the rows: a method of ClientsBatch, given the event and the row's key.
Handler = Callable[["ClientsBatch", Any, Any], None]


class ClientsBatch:
    """The read-model rows one batch of events touches, and what the batch does to them."""

    def __init__(self, prefix: str, kind: str, events_table: str, events: Sequence[tuple[int, Any]], *,
                 bulk: bool = False) -> None:
        """`events`: (notification id, domain event) in log order; `events_table`: the event
        store's table, where an aggregate's first event is found.

        `bulk` (PostgreSQL only; the rebuild's batches): each kind of statement is sent once,
        its rows as one array per column (`unnest`), and the rows only ever inserted (cd_keys)
        by COPY. An executemany is a statement per row, even pipelined: its rows' Python in
        psycopg and their execution in the server were two thirds of a rebuild's time.
        """
        self.prefix = prefix
        self.kind = kind
        self.bulk = bulk and kind == "postgresql"
        self.events_table = events_table
        self.events = [e for _, e in events]
        self.notification_ids = [i for i, _ in events]
        # The key of the row each of the batch's aggregates changes, by the int of its
        # originator id (UUID's own hash is Python code); and the natural keys of the aggregates
        # created in this batch, to record by the notification id of their first event.
        self.keys: dict[int, tuple[str, ...]] = {}
        self.new_keys: dict[int, NaturalKeys] = {}
        # None: no such row (events of a client without a row change nothing).
        self.clients: dict[ClientKey, ClientRow | None] = {}
        # Clients whose relationship starts in this batch, before any other event of theirs
        # here (see ClientRow), with the position of that event.
        self.fresh: dict[ClientKey, int] = {}
        self.members: dict[MemberKey, MemberRow | None] = {}
        self.preferences: dict[PreferenceKey, tuple[int, str]] = {}

    def _t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def run(self, c: Cursor) -> None:
        """Apply the events to the tables (in the caller's transaction)."""
        self.load(c)
        self.apply()
        self.write(c)

    # --- 1. load ------------------------------------------------------------------------------

    def load(self, c: Cursor) -> None:
        """Read what the events need, in one query per table and chunk."""
        keys, fresh = self.keys, self.fresh
        client_keys: set[ClientKey] = set()
        member_keys: set[MemberKey] = set()
        wanted: dict[str, set[Any]] = {"client": client_keys, "member": member_keys}
        # Aggregates created in earlier batches, with the position of their first event here.
        unknown: dict[int, tuple[uuid.UUID, Route, int]] = {}
        for position, (notification_id, e) in enumerate(zip(self.notification_ids, self.events, strict=True)):
            oid = e.originator_id
            if oid.int in keys or oid.int in unknown:
                continue
            route = ROUTES[type(e)]
            if route.created is None:
                unknown[oid.int] = (oid, route, position)
                continue
            natural = self.new_keys[notification_id] = route.created(e)
            key: Any = natural[:route.width]
            keys[oid.int] = key
            if type(e) is ClientRelationship.Started and key not in client_keys:
                fresh[key] = position
            elif route.rows in wanted and key not in fresh:
                wanted[route.rows].add(key)
        for row in self._select_keys(c, [oid for oid, _, _ in unknown.values()]):
            oid, route, position = unknown.pop(uuid.UUID(str(row["originator_id"])).int)
            key = keys[oid.int] = (row["partner_id"], row["natural_id"], row["second_id"])[:route.width]
            if key in fresh and position < fresh[key]:
                del fresh[key]  # its figures came before: the client's row must be read
            if route.rows in wanted and key not in fresh:
                wanted[route.rows].add(key)
        if unknown:
            raise LookupError(f"no keys recorded for aggregates {sorted(str(oid) for oid, _, _ in unknown.values())}")
        self._load_clients(c, client_keys)
        self.clients.update(dict.fromkeys(fresh))
        self._load_members(c, member_keys)

    def _load_clients(self, c: Cursor, keys: set[ClientKey]) -> None:
        found: dict[ClientKey, ClientRow] = {}
        for row in self._select_in(c, "cd_clients", ("partner_id", "client_id", *ClientRow.COLUMNS),
                                   ("partner_id", "client_id"), list(keys)):
            found[row["partner_id"], row["client_id"]] = ClientRow(*(row[column] for column in ClientRow.COLUMNS))
        # Only a client with a row can have assignment rows (assigning copies the client's).
        for row in self._select_in(c, "cd_assignments", ("partner_id", "client_id", "user_id"),
                                   ("partner_id", "client_id"), list(found),
                                   index="cd_assignments_client"):
            found[row["partner_id"], row["client_id"]].accountants.add(row["user_id"])
        for client in found.values():
            client.mark_stored()
        self.clients = dict.fromkeys(keys)
        self.clients.update(found)

    def _load_members(self, c: Cursor, keys: set[MemberKey]) -> None:
        self.members = dict.fromkeys(keys)
        for row in self._select_in(c, "cd_members", ("partner_id", "user_id", *MemberRow.COLUMNS),
                                   ("partner_id", "user_id"), list(keys)):
            member = MemberRow(*(row[column] for column in MemberRow.COLUMNS))
            member.stored = member.row()
            self.members[row["partner_id"], row["user_id"]] = member

    def _select_keys(self, c: Cursor, originator_ids: list[uuid.UUID]) -> Iterator[Any]:
        """The natural keys of aggregates created in earlier batches: the event store's primary
        key finds each one's first event, whose notification id keys its cd_keys row."""
        first = Aggregate.INITIAL_VERSION
        columns = "e.originator_id AS originator_id, k.partner_id, k.natural_id, k.second_id"
        if self.kind == "sqlite":  # the SQLite recorder stores ids as hex, events by rowid
            statement = (f"SELECT {columns} FROM json_each(?) AS j JOIN {self.events_table} AS e "
                         f"ON e.originator_id = j.value AND e.originator_version = {first} "
                         f"JOIN {self._t('cd_keys')} AS k ON k.notification_id = e.rowid")
            encoded: list[Any] = sorted(oid.hex for oid in originator_ids)
        else:
            statement = (f"SELECT {columns} FROM unnest(?::uuid[]) AS j(id) JOIN {self.events_table} AS e "
                         f"ON e.originator_id = j.id AND e.originator_version = {first} "
                         f"JOIN {self._t('cd_keys')} AS k ON k.notification_id = e.notification_id")
            encoded = sorted(originator_ids)
        for start in range(0, len(encoded), CHUNK):
            chunk = encoded[start:start + CHUNK]
            c.execute(statement, [json.dumps(chunk) if self.kind == "sqlite" else chunk])
            yield from c.fetchall()

    def _select_in(self, c: Cursor, table: str, columns: Sequence[str], key_columns: tuple[str, str],
                   keys: Sequence[tuple[str, str]], index: str = "") -> Iterator[Any]:
        """Rows of `table` whose two key columns equal one of `keys` (distinct), CHUNK keys a
        query.

        The keys go as one JSON array of pairs on SQLite, two text[] arrays on PostgreSQL: the
        statement's text is the same whatever the number of keys, so it stays prepared. A join
        from the keys makes both stores look each key up in an index; `index` names it for
        SQLite, whose planner without statistics preferred a covering index on the first column
        only (a whole firm's rows read for each key).
        """
        t, (first, second) = self._t(table), key_columns
        selected = ", ".join(f"{t}.{column}" for column in columns)
        if self.kind == "sqlite":
            hint = f" INDEXED BY {self._t(index)}" if index else ""
            statement = (f"SELECT {selected} FROM json_each(?) AS k JOIN {t}{hint} "
                         f"ON {t}.{first} = k.value ->> 0 AND {t}.{second} = k.value ->> 1")
        else:
            statement = (f"SELECT {selected} FROM unnest(?::text[], ?::text[]) AS k(k0, k1) JOIN {t} "
                         f"ON {t}.{first} = k.k0 AND {t}.{second} = k.k1")
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            if self.kind == "sqlite":
                c.execute(statement, [json.dumps(chunk)])
            else:
                c.execute(statement, [[key[0] for key in chunk], [key[1] for key in chunk]])
            yield from c.fetchall()

    # --- 2. apply -----------------------------------------------------------------------------

    def apply(self) -> None:
        """Fold the events, in order, into the rows."""
        keys = self.keys
        for e in self.events:
            route = ROUTES[type(e)]
            if route.handler is not None:
                route.handler(self, e, keys[e.originator_id.int])

    def started(self, e: ClientRelationship.Started | ClientRelationship.Restarted, key: ClientKey) -> None:
        client = self.clients[key]
        if client is None:
            client = self.clients[key] = ClientRow(figures_known=key not in self.fresh)
        client.name = clean(e.name)
        client.sort_key, client.search_key = name_keys(client.name)
        client.status = e.status
        client.tab = TAB_OF_STATUS.get(e.status, "")
        client.accountants.clear()  # a restart starts without them

    def renamed(self, e: ClientRelationship.Renamed, key: ClientKey) -> None:
        client = self.clients[key]
        if client is not None:  # the assignment rows follow (see ClientRow)
            client.name = clean(e.name)
            client.sort_key, client.search_key = name_keys(client.name)

    def connected(self, e: Any, key: ClientKey) -> None:
        self._status(key, CONNECTED)

    def verification_failed(self, e: ClientRelationship.VerificationFailed, key: ClientKey) -> None:
        self._status(key, VERIFICATION_FAILED)

    def ended(self, e: ClientRelationship.InvitationDeclined | ClientRelationship.Disconnected,
              key: ClientKey) -> None:
        declined = isinstance(e, ClientRelationship.InvitationDeclined)
        client = self._status(key, DECLINED if declined else DISCONNECTED)
        if client is not None:
            client.accountants.clear()

    def assigned(self, e: ClientRelationship.AccountantAssigned, key: ClientKey) -> None:
        client = self.clients[key]
        if client is not None:  # a relationship's events all come after its Started, which makes the row
            client.accountants.add(e.user_id)

    def unassigned(self, e: ClientRelationship.AccountantUnassigned, key: ClientKey) -> None:
        client = self.clients[key]
        if client is not None:
            client.accountants.discard(e.user_id)

    def figures_created(self, e: ClientFigures.Created, key: ClientKey) -> None:
        # Figures may come before the relationship: a row on no tab holds them meanwhile.
        client = self.clients[key]
        if client is None:
            self.clients[key] = ClientRow()
        else:
            client.figures_known = True  # none before this, their first event

    def figures_updated(self, e: ClientFigures.Updated, key: ClientKey) -> None:
        client = self.clients[key]
        if client is not None:  # the assignment rows follow (see ClientRow)
            client.wallet_amount, client.wallet_currency = e.wallet_amount, e.wallet_currency
            client.missing_receipts, client.ready_to_export = e.missing_receipts, e.ready_to_export
            client.figures_known = True

    def member_joined(self, e: Member.Added | Member.Rejoined, key: MemberKey) -> None:
        member = self.members[key]
        row = (clean(e.name), clean(e.email), e.role, clean(e.locale), 1)
        if member is None:
            self.members[key] = MemberRow(*row)
        else:
            member.name, member.email, member.role, member.locale, member.active = row

    def role_changed(self, e: Member.RoleChanged, key: MemberKey) -> None:
        member = self.members[key]
        if member is not None:
            member.role = e.role

    def member_removed(self, e: Member.Removed, key: MemberKey) -> None:
        # Their assignments were undone in the event store in the same transaction
        # (AccountantUnassigned events, applied on their own), so only the member row changes.
        member = self.members[key]
        if member is not None:
            member.active = 0

    def preference_set(self, e: NotificationPreference.Set, key: PreferenceKey) -> None:
        self.preferences[key] = (int(e.email_enabled), e.frequency)

    def _status(self, key: ClientKey, status: str) -> ClientRow | None:
        """Set the status, and so the tab (the assignment rows follow: see ClientRow)."""
        client = self.clients[key]
        if client is not None:
            client.status = status
            client.tab = TAB_OF_STATUS.get(status, "")
        return client

    # --- 3. write -----------------------------------------------------------------------------

    def write(self, cursor: Cursor) -> None:
        """Write the rows that changed, one executemany per kind of statement (in bulk: one
        statement, or a COPY, per kind; see __init__)."""
        c = cast(BatchCursor, cursor)
        if self.new_keys:
            key_columns = ("notification_id", "partner_id", "natural_id", "second_id")
            new_keys = [(notification_id, *keys) for notification_id, keys in self.new_keys.items()]
            if self.bulk:
                # Keys of aggregates first seen after the position, by their first event's
                # notification id: no row can hold it (COPY fails, not skips, if one did).
                cast(CopyCursor, c).copy_rows(self._t("cd_keys"), key_columns, new_keys)
            else:
                self._insert(c, "cd_keys", key_columns, new_keys, "ON CONFLICT DO NOTHING")
        bumps = [(*key, n) for key, n in sorted(self._write_clients(c).items()) if n]
        if bumps:
            counts = self._t("cd_counts")
            self._insert(c, "cd_counts", ("partner_id", "scope", "tab", "n"), bumps,
                         f"ON CONFLICT (partner_id, scope, tab) DO UPDATE SET n = {counts}.n + excluded.n")
        members = [(*key, *row) for key, member in self.members.items()
                   if member is not None and (row := member.row()) != member.stored]
        if members:
            self._upsert(c, "cd_members", ("partner_id", "user_id"), MemberRow.COLUMNS, members)
        if self.preferences:
            self._upsert(c, "cd_preferences", ("partner_id", "client_id", "user_id"), ("email_enabled", "frequency"),
                         [(*key, *value) for key, value in self.preferences.items()])

    def _write_clients(self, c: BatchCursor) -> defaultdict[CountKey, int]:
        """The client rows that changed, and the assignment rows: removed, added, or updated
        when the client's tab, sort key or missing receipts changed. Returns how the counts
        of tabs change: each changed client and assignment leaves the count of its stored tab
        and joins that of its new one, so the counts stay what COUNT(*) would say."""
        rows, partial_rows, removed, added, copied = [], [], [], [], []
        counts: defaultdict[CountKey, int] = defaultdict(int)
        for key, client in self.clients.items():
            if client is None:
                continue
            row = client.row()
            if row == client.stored and client.accountants == client.stored_accountants:
                continue
            partner_id, client_id = key
            if not client.figures_known:
                partial_rows.append((partner_id, client_id, *row))
            elif row != client.stored:
                rows.append((partner_id, client_id, *row))
            stored_tab = client.stored_tab
            if stored_tab != client.tab or client.accountants != client.stored_accountants:
                for scope in ("", *client.stored_accountants) if stored_tab else ():
                    counts[partner_id, scope, stored_tab] -= 1
                for scope in ("", *client.accountants) if client.tab else ():
                    counts[partner_id, scope, client.tab] += 1
            if not (client.accountants or client.stored_accountants):
                continue
            removed += [(partner_id, user, client_id) for user in client.stored_accountants - client.accountants]
            added += [(user, partner_id, client_id) for user in client.accountants - client.stored_accountants]
            if client.stored_accountants & client.accountants and client.copied() != client.stored_copied:
                copied.append((*client.copied(), partner_id, client_id))
        if self.bulk:
            rows, partial_rows = self._copy_new_clients(cast(CopyCursor, c), rows, partial_rows)
        if rows:
            self._upsert(c, "cd_clients", ("partner_id", "client_id"), ClientRow.COLUMNS, rows)
        if partial_rows:  # figures as inserted (none) or as stored (their own row)
            self._upsert(c, "cd_clients", ("partner_id", "client_id"), ClientRow.COLUMNS, partial_rows,
                         update=ClientRow.RELATIONSHIP_COLUMNS)
        assignments, clients = self._t("cd_assignments"), self._t("cd_clients")
        if self.bulk:  # the same statements, each once, over the rows as arrays (see __init__)
            if removed:
                c.execute(f"DELETE FROM {assignments} AS a USING unnest(?::text[], ?::text[], ?::text[]) "
                          "AS k(partner_id, user_id, client_id) WHERE a.partner_id = k.partner_id "
                          "AND a.user_id = k.user_id AND a.client_id = k.client_id", columns_of(removed))
            if copied:  # one row per client
                c.execute(f"UPDATE {assignments} AS a SET tab = k.tab, sort_key = k.sort_key, "
                          "missing_receipts = k.missing_receipts FROM unnest(?::text[], ?::text[], ?::integer[], "
                          "?::text[], ?::text[]) AS k(tab, sort_key, missing_receipts, partner_id, client_id) "
                          "WHERE a.partner_id = k.partner_id AND a.client_id = k.client_id", columns_of(copied))
            if added:
                c.execute(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, "
                          "missing_receipts) SELECT c.partner_id, k.user_id, c.client_id, c.tab, c.sort_key, "
                          "c.missing_receipts FROM unnest(?::text[], ?::text[], ?::text[]) "
                          f"AS k(user_id, partner_id, client_id) JOIN {clients} AS c "
                          "ON c.partner_id = k.partner_id AND c.client_id = k.client_id", columns_of(added))
            return counts
        if removed:
            c.executemany(f"DELETE FROM {assignments} WHERE partner_id = ? AND user_id = ? AND client_id = ?",
                          removed)
        if copied:
            c.executemany(f"UPDATE {assignments} SET tab = ?, sort_key = ?, missing_receipts = ? "
                          "WHERE partner_id = ? AND client_id = ?", copied)
        if added:  # copies of the client rows just written
            c.executemany(f"INSERT INTO {assignments} (partner_id, user_id, client_id, tab, sort_key, "
                          f"missing_receipts) SELECT partner_id, CAST(? AS TEXT), client_id, tab, sort_key, "
                          f"missing_receipts FROM {clients} WHERE partner_id = ? AND client_id = ?", added)
        return counts

    def _copy_new_clients(self, c: CopyCursor, rows: list[tuple[Any, ...]], partial_rows: list[tuple[Any, ...]]
                          ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """In bulk: COPY the rows of clients that have none yet, and return the others (rows,
        partial rows) to upsert. A client `load` read has a row if it found one; one whose
        relationship starts in the batch (`fresh`, not read) is looked up here, all in one query:
        it has a row only if figures of an earlier batch made it."""
        clients, fresh = self.clients, self.fresh
        unread = [key for partner_id, client_id, *_ in (*rows, *partial_rows)
                  if (key := (partner_id, client_id)) in fresh]
        present: set[ClientKey] = set()
        if unread:
            c.execute(f"SELECT t.partner_id, t.client_id FROM json_array_elements(?::json) AS k "
                      f"JOIN {self._t('cd_clients')} AS t ON t.partner_id = k ->> 0 AND t.client_id = k ->> 1",
                      [json.dumps(unread)])
            present = {(row["partner_id"], row["client_id"]) for row in c.fetchall()}
        new: list[tuple[Any, ...]] = []
        kept: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        for upserts, written in zip(kept, (rows, partial_rows), strict=True):
            for row in written:
                key = (row[0], row[1])
                client = clients[key]
                assert client is not None  # rows are written only for clients
                (new if client.stored is None and key not in present else upserts).append(row)
        if new:  # a new row holds every column (partial: figures as inserted, none)
            c.copy_rows(self._t("cd_clients"), ("partner_id", "client_id", *ClientRow.COLUMNS), new)
        return kept

    def _upsert(self, c: BatchCursor, table: str, key: Sequence[str], columns: Sequence[str],
                rows: list[tuple[Any, ...]], update: Sequence[str] | None = None) -> None:
        """Insert the rows (key columns first), or set their columns (or those of `update`)
        where the key exists."""
        self._insert(c, table, (*key, *columns), rows, f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                     + ", ".join(f"{column} = excluded.{column}" for column in (update or columns)))

    def _insert(self, c: BatchCursor, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]],
                conflict: str) -> None:
        """INSERT the rows (in the order of `columns`) with `conflict`, an ON CONFLICT clause.
        In bulk, one statement over an array per column: its rows' keys are distinct (a batch
        writes a key once), which ON CONFLICT DO UPDATE requires of one statement."""
        head = f"INSERT INTO {self._t(table)} ({', '.join(columns)})"
        if self.bulk:
            arrays = ", ".join(f"?::{PG_ARRAYS.get(column, 'text[]')}" for column in columns)
            c.execute(f"{head} SELECT * FROM unnest({arrays}) {conflict}", columns_of(rows))
        else:
            c.executemany(f"{head} VALUES ({', '.join('?' for _ in columns)}) {conflict}", rows)


def columns_of(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows' values column by column: a list per column (psycopg sends a list as an array)."""
    return [list(column) for column in zip(*rows, strict=True)]


class Route(NamedTuple):
    """What the projection does with one type of event."""

    handler: Handler | None  # None: the event only brings its aggregate's keys
    rows: str  # the rows its aggregate changes: "client", "member" or "preference"
    width: int  # how many of the aggregate's natural keys make the row's key
    created: Callable[[Any], NaturalKeys] | None = None  # the natural keys a first event carries


def _client(handler: Handler) -> Route:
    return Route(handler, "client", 2)


def _member(handler: Handler) -> Route:
    return Route(handler, "member", 2)


ROUTES: dict[type[Any], Route] = {
    ClientRelationship.Started: Route(ClientsBatch.started, "client", 2, lambda e: (e.partner_id, e.client_id, "")),
    ClientRelationship.Restarted: _client(ClientsBatch.started),
    ClientRelationship.Renamed: _client(ClientsBatch.renamed),
    ClientRelationship.InvitationAccepted: _client(ClientsBatch.connected),
    ClientRelationship.VerificationCompleted: _client(ClientsBatch.connected),
    ClientRelationship.VerificationFailed: _client(ClientsBatch.verification_failed),
    ClientRelationship.InvitationDeclined: _client(ClientsBatch.ended),
    ClientRelationship.Disconnected: _client(ClientsBatch.ended),
    ClientRelationship.AccountantAssigned: _client(ClientsBatch.assigned),
    ClientRelationship.AccountantUnassigned: _client(ClientsBatch.unassigned),
    ClientFigures.Created: Route(ClientsBatch.figures_created, "client", 2,
                                 lambda e: (e.partner_id, e.client_id, "")),
    ClientFigures.Updated: _client(ClientsBatch.figures_updated),
    Member.Added: Route(ClientsBatch.member_joined, "member", 2, lambda e: (e.partner_id, e.user_id, "")),
    Member.Rejoined: _member(ClientsBatch.member_joined),
    Member.RoleChanged: _member(ClientsBatch.role_changed),
    Member.Removed: _member(ClientsBatch.member_removed),
    NotificationPreference.Created: Route(None, "preference", 3, lambda e: (e.partner_id, e.client_id, e.user_id)),
    NotificationPreference.Set: Route(ClientsBatch.preference_set, "preference", 3),
}
# Stored topics of the events the read model uses; the others (the Assignments index, ...) are
# not even decoded.
TOPICS = frozenset(cls.TOPIC for cls in ROUTES)
