"""The Clients projection's fold: plain Python over a batch of events, producing the row
changes the batch makes to the read model. No SQL here: a database's module
(projections/sqlite.py, projections/postgres.py) reads the rows the batch needs into the fold
and writes the changes it returns (projections/sql.py runs the three steps).

1. `plan` takes the natural keys of the aggregates the batch creates; `keys_found`,
   `clients_found`, `assignments_found` and `members_found` take the rest, read in one query
   per table (and chunk of keys);
2. `apply` folds the events, in order, into those rows in memory;
3. `changes` says which rows changed, and how the tab counts move: each changed client and
   assignment leaves the count of its stored tab and joins that of its new one.

A batch gives the same rows as the same events applied one by one
(tests/client_directory/test_batches.py).
"""

from __future__ import annotations

import gc
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from services.client_directory.domain.model import (
    ClientFigures,
    ClientRelationship,
    Member,
    NotificationPreference,
    Status,
)
from services.client_directory.projections.rows import (
    ClientKey,
    ClientRow,
    CountKey,
    MemberKey,
    MemberRow,
    NaturalKeys,
    PreferenceKey,
    RowChanges,
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


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a batch without the cyclic garbage collector.

    A batch holds several new containers per event (events, rows, keys) until it is written:
    the collector traversed them again and again and found nothing (a batch makes no
    reference cycles; reference counting frees it). It runs again after:
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


# What an event does to the rows: a method of ClientsFold, given the event and the row's key.
Handler = Callable[["ClientsFold", Any, Any], None]


class ClientsFold:
    """The read-model rows one batch of events touches, and what the batch does to them."""

    def __init__(self, events: Sequence[tuple[int, Any]]) -> None:
        """`events`: (notification id, domain event) in log order."""
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
        self.client_keys: set[ClientKey] = set()  # the client rows to read
        self.member_keys: set[MemberKey] = set()  # the member rows to read
        # Aggregates created in earlier batches, with the position of their first event here.
        self._unknown: dict[int, tuple[uuid.UUID, Route, int]] = {}

    # --- 1. what to read ------------------------------------------------------------------------

    def plan(self) -> list[uuid.UUID]:
        """Take the keys the batch's first events carry; returns the aggregates whose keys must
        be read (created in earlier batches: `keys_found`)."""
        keys, fresh, unknown = self.keys, self.fresh, self._unknown
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
            if type(e) is ClientRelationship.Started and key not in self.client_keys:
                fresh[key] = position
            else:
                self._want(route, key)
        return [oid for oid, _, _ in unknown.values()]

    def _want(self, route: Route, key: Any) -> None:
        if key in self.fresh:
            return
        if route.rows == "client":
            self.client_keys.add(key)
        elif route.rows == "member":
            self.member_keys.add(key)

    def keys_found(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The natural keys of aggregates created earlier: rows of originator_id, partner_id,
        natural_id, second_id."""
        keys, fresh, unknown = self.keys, self.fresh, self._unknown
        for row in rows:
            oid, route, position = unknown.pop(uuid.UUID(str(row["originator_id"])).int)
            key = keys[oid.int] = (row["partner_id"], row["natural_id"], row["second_id"])[:route.width]
            if key in fresh and position < fresh[key]:
                del fresh[key]  # its figures came before: the client's row must be read
            self._want(route, key)
        if unknown:
            raise LookupError(f"no keys recorded for aggregates {sorted(str(oid) for oid, _, _ in unknown.values())}")

    def clients_found(self, rows: Iterable[Mapping[str, Any]]) -> list[ClientKey]:
        """The cd_clients rows read (partner_id, client_id and READ_COLUMNS); returns their keys,
        whose assignments are to be read next (only a client with a row can have any)."""
        self.clients = dict.fromkeys(self.client_keys)
        for row in rows:
            self.clients[row["partner_id"], row["client_id"]] = ClientRow(
                *(row[column] for column in ClientRow.READ_COLUMNS))
        return [key for key, client in self.clients.items() if client is not None]

    def assignments_found(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The cd_assignments rows (partner_id, client_id, user_id) of the clients read."""
        clients = self.clients
        for row in rows:
            client = clients[row["partner_id"], row["client_id"]]
            assert client is not None
            client.accountants.add(row["user_id"])
        for client in clients.values():
            if client is not None:
                client.mark_stored()
        self.clients.update(dict.fromkeys(self.fresh))

    def members_found(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The cd_members rows read (partner_id, user_id and COLUMNS)."""
        self.members = dict.fromkeys(self.member_keys)
        for row in rows:
            member = MemberRow(*(row[column] for column in MemberRow.COLUMNS))
            member.stored = member.row()
            self.members[row["partner_id"], row["user_id"]] = member

    # --- 2. apply -------------------------------------------------------------------------------

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

    # --- 3. changes -----------------------------------------------------------------------------

    def changes(self) -> RowChanges:
        """The rows that changed, and how the counts of tabs move."""
        changes = RowChanges(new_keys=[(notification_id, *keys) for notification_id, keys in self.new_keys.items()],
                             fresh=set(self.fresh))
        counts: defaultdict[CountKey, int] = defaultdict(int)
        for key, client in self.clients.items():
            if client is not None:
                self._client_changes(key, client, changes, counts)
        changes.counts = [(*key, n) for key, n in sorted(counts.items()) if n]
        changes.members = [(*key, *row) for key, member in self.members.items()
                           if member is not None and (row := member.row()) != member.stored]
        changes.preferences = [(*key, *value) for key, value in self.preferences.items()]
        return changes

    @staticmethod
    def _client_changes(key: ClientKey, client: ClientRow, changes: RowChanges,
                        counts: defaultdict[CountKey, int]) -> None:
        row = client.row()
        if row == client.stored and client.accountants == client.stored_accountants:
            return
        partner_id, client_id = key
        if client.stored is None:
            changes.unstored.add(key)
        if not client.figures_known:
            changes.partial_clients.append((partner_id, client_id, *row))
        elif row != client.stored:
            changes.clients.append((partner_id, client_id, *row))
        stored_tab = client.stored_tab
        if stored_tab != client.tab or client.accountants != client.stored_accountants:
            for scope in ("", *client.stored_accountants) if stored_tab else ():
                counts[partner_id, scope, stored_tab] -= 1
            for scope in ("", *client.accountants) if client.tab else ():
                counts[partner_id, scope, client.tab] += 1
        if not (client.accountants or client.stored_accountants):
            return
        changes.removed += [(partner_id, user, client_id) for user in client.stored_accountants - client.accountants]
        changes.added += [(user, partner_id, client_id) for user in client.accountants - client.stored_accountants]
        if client.stored_accountants & client.accountants and client.copied() != client.stored_copied:
            changes.copied.append((*client.copied(), partner_id, client_id))


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
    ClientRelationship.Started: Route(ClientsFold.started, "client", 2, lambda e: (e.partner_id, e.client_id, "")),
    ClientRelationship.Restarted: _client(ClientsFold.started),
    ClientRelationship.Renamed: _client(ClientsFold.renamed),
    ClientRelationship.InvitationAccepted: _client(ClientsFold.connected),
    ClientRelationship.VerificationCompleted: _client(ClientsFold.connected),
    ClientRelationship.VerificationFailed: _client(ClientsFold.verification_failed),
    ClientRelationship.InvitationDeclined: _client(ClientsFold.ended),
    ClientRelationship.Disconnected: _client(ClientsFold.ended),
    ClientRelationship.AccountantAssigned: _client(ClientsFold.assigned),
    ClientRelationship.AccountantUnassigned: _client(ClientsFold.unassigned),
    ClientFigures.Created: Route(ClientsFold.figures_created, "client", 2,
                                 lambda e: (e.partner_id, e.client_id, "")),
    ClientFigures.Updated: _client(ClientsFold.figures_updated),
    Member.Added: Route(ClientsFold.member_joined, "member", 2, lambda e: (e.partner_id, e.user_id, "")),
    Member.Rejoined: _member(ClientsFold.member_joined),
    Member.RoleChanged: _member(ClientsFold.role_changed),
    Member.Removed: _member(ClientsFold.member_removed),
    NotificationPreference.Created: Route(None, "preference", 3, lambda e: (e.partner_id, e.client_id, e.user_id)),
    NotificationPreference.Set: Route(ClientsFold.preference_set, "preference", 3),
}
# Stored topics of the events the read model uses; the others (the Assignments index, ...) are
# not even decoded.
TOPICS = frozenset(cls.TOPIC for cls in ROUTES)
