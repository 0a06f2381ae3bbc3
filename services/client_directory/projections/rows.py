"""The rows of the Clients read model as the fold holds them, and the changes a batch makes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ClientKey = tuple[str, str]  # (partner_id, client_id)
MemberKey = tuple[str, str]  # (partner_id, user_id)
PreferenceKey = tuple[str, str, str]  # (partner_id, client_id, user_id)
CountKey = tuple[str, str, str]  # (partner_id, scope: '' firm-wide or a user_id, tab)
NaturalKeys = tuple[str, str, str]  # (partner_id, natural_id, second_id) of an aggregate
Row = tuple[Any, ...]


@dataclass(slots=True)
class ClientRow:
    """A cd_clients row and the users assigned to the client.

    Each user's cd_assignments row is a copy of the client's tab, sort key and figures (every
    write below keeps it so): the set of users is all that is kept of them.

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
    stored_copied: tuple[str, str, int, int] | None = None
    stored_accountants: frozenset[str] = frozenset()

    # `accountants` is the JSON array of the assigned user ids (sorted): a page reads its
    # clients' accountants from their rows, not from cd_assignments in a second query.
    COLUMNS = ("name", "sort_key", "search_key", "status", "tab", "accountants", "missing_receipts",
               "ready_to_export", "wallet_amount", "wallet_currency")
    RELATIONSHIP_COLUMNS = COLUMNS[:6]  # the rest are the figures
    # What the fold reads back: the set of accountants comes from cd_assignments.
    READ_COLUMNS = tuple(column for column in COLUMNS if column != "accountants")

    def mark_stored(self) -> None:
        self.stored, self.stored_copied = self.row(), self.copied()
        self.stored_accountants = frozenset(self.accountants)

    @property
    def stored_tab(self) -> str:
        return self.stored_copied[0] if self.stored_copied is not None else ""

    def row(self) -> tuple[Any, ...]:
        return (self.name, self.sort_key, self.search_key, self.status, self.tab, self.accountants_json(),
                self.missing_receipts, self.ready_to_export, self.wallet_amount, self.wallet_currency)

    def accountants_json(self) -> str:
        if not self.accountants:  # most clients: no encoder call
            return "[]"
        return json.dumps(sorted(self.accountants), separators=(",", ":"))

    def copied(self) -> tuple[str, str, int, int]:
        """What each assignment row copies from the client: what `mine` filters and sorts by."""
        return self.tab, self.sort_key, self.missing_receipts, self.ready_to_export


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


@dataclass
class RowChanges:
    """What one batch changes, as rows in the order of each table's columns."""

    new_keys: list[Row] = field(default_factory=list)  # cd_keys: (notification_id, *NaturalKeys)
    clients: list[Row] = field(default_factory=list)  # cd_clients: (partner_id, client_id, *COLUMNS)
    # Clients whose figures stay as stored (or as inserted: none): only the relationship's columns change.
    partial_clients: list[Row] = field(default_factory=list)
    removed: list[Row] = field(default_factory=list)  # cd_assignments: (partner_id, user_id, client_id)
    added: list[Row] = field(default_factory=list)  # (user_id, partner_id, client_id): copies of the client row
    # (tab, sort_key, missing_receipts, ready_to_export, partner_id, client_id)
    copied: list[Row] = field(default_factory=list)
    counts: list[Row] = field(default_factory=list)  # cd_counts: (partner_id, scope, tab, n), n the change
    members: list[Row] = field(default_factory=list)  # cd_members: (partner_id, user_id, *COLUMNS)
    preferences: list[Row] = field(default_factory=list)  # cd_preferences
    # Clients with no row read (none found, or `fresh`), and those not looked for (`fresh`).
    unstored: set[ClientKey] = field(default_factory=set)
    fresh: set[ClientKey] = field(default_factory=set)
