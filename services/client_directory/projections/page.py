"""The Clients page's statements, common to both databases (`ClientsSQL` inherits them; each
database's module says how a search is matched and how JSON is built).

A page is one statement (`PageSQL.page`): a head row (the caller's membership, the counts of
the caller's tabs, the view's total) left-joined to the page's rows, each with its accountants
resolved to member names. On PostgreSQL that is one round trip and, being one statement, one
snapshot; the head row comes back even when the page is empty.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.api import TabId
from services.client_directory.projections.access import TAB_ROWS, Caller, assigned_only, tabs_for
from services.client_directory.projections.text import fold, like_pattern

ITEM_COLUMNS = ("c.client_id, c.name, c.status, c.missing_receipts, c.ready_to_export, "
                "c.wallet_amount, c.wallet_currency")
# Trigrams need three characters: a shorter search walks the tab's index range instead.
TRIGRAM = 3
# The figures a page may be sorted by (then by name, then client_id), each with a short name for
# its indexes (sql.py: the tab's indexes with the figure first).
FIGURES = {"missing_receipts": "mr", "ready_to_export": "rte"}
NAME = "name"


def sort_order(sort: str) -> tuple[str, bool]:
    """What a `sort` parameter (`name`, `-ready_to_export`, ...) sorts by, and whether descending."""
    by = sort.removeprefix("-")
    if by != NAME and by not in FIGURES:
        raise ValueError(f"unknown sort {sort!r}")
    return by, sort.startswith("-")


def order_columns(k: str, by: str) -> list[str]:
    """The columns of the order, for ORDER BY and the keyset: the figure (if any), name, id."""
    return [*([f"{k}.{by}"] if by != NAME else []), f"{k}.sort_key", f"{k}.client_id"]


def keyset(k: str, by: str, descending: bool, after: dict[str, Any], mark: str) -> tuple[str, list[Any]]:
    """The cursor's term and its parameters: a row comparison over the index's own columns, in
    their order, which both databases seek to in the index."""
    columns = order_columns(k, by)
    op = "<" if descending else ">"
    params = [*([after["f"]] if by != NAME else []), after["k"], after["i"]]
    return f"({', '.join(columns)}) {op} ({', '.join([mark] * len(columns))})", params


def order_by(k: str, by: str, descending: bool) -> str:
    direction = " DESC" if descending else " ASC"
    return ", ".join(column + direction for column in order_columns(k, by))


@dataclass
class View:
    """The rows one page reads from: FROM, WHERE terms and their parameters (without the
    cursor), and the alias whose sort key orders them."""

    sources: str
    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    k: str = "c"


@dataclass(frozen=True)
class Search:
    """How a search is matched: `hits` the rowids a trigram index found for it (SQLite, when
    few), None to filter the tab's range (or let PostgreSQL's planner pick its index)."""

    q: str
    hits: list[int] | None = None


class PageSQL(ABC):
    mark = "?"
    # Whether `search` reads the index before the page's statement (in the same snapshot).
    probes_search = False

    def marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    # --- what each database says its own way -------------------------------------------------

    @abstractmethod
    def people(self, accountants: str, partner_id: str) -> str:
        """An expression: the JSON array of [user_id, name] of the active members whose ids are
        in the JSON array `accountants` (a column)."""

    def search(self, c: Any, q: str) -> Search:
        """How the page's statement will match `q` (see Search)."""
        return Search(q)

    def matches(self, search: Search, view: View) -> None:
        """Narrow the view to names containing the search's folded text."""
        view.terms.append(f"c.search_key LIKE {self.mark} ESCAPE '\\'")
        view.params.append(like_pattern(search.q))

    # --- the page -------------------------------------------------------------------------------

    def view(self, caller: Caller, tab: TabId, *, search: Search | None = None,
             missing_receipts: bool = False) -> View:
        m = self.mark
        if assigned_only(caller, tab):
            view = View("FROM cd_assignments a JOIN cd_clients c ON c.partner_id = a.partner_id "
                        "AND c.client_id = a.client_id",
                        [f"a.partner_id = {m}", f"a.user_id = {m}", f"a.tab = {m}"],
                        [caller.partner_id, caller.user_id, TAB_ROWS[tab]], "a")
        else:
            view = View("FROM cd_clients c", [f"c.partner_id = {m}", f"c.tab = {m}"],
                        [caller.partner_id, TAB_ROWS[tab]])
        if missing_receipts:
            view.terms.append(f"{view.k}.missing_receipts > 0")  # the very term of the partial index
        if search is not None:
            self.matches(search, view)
        return view

    def page(self, caller: Caller, tab: TabId, *, search: Search | None = None, missing_receipts: bool = False,
             descending: bool = False, limit: int = 50, after: dict[str, Any] | None = None,
             by: str = NAME) -> tuple[str, list[Any]]:
        """One statement: columns `active`, `n0`.. (the counts of `tabs_for(caller)`, NULL for
        none), `total` (only with a search or the filter: the tab's count is the total
        otherwise), then the item columns, `sort_key` and `people` of each row (none when the
        page is empty: one row of NULLs)."""
        m = self.mark
        head = [f"(SELECT active FROM cd_members WHERE partner_id = {m} AND user_id = {m}) AS active"]
        params: list[Any] = [caller.partner_id, caller.user_id]
        for i, t in enumerate(tabs_for(caller)):
            head.append(f"(SELECT n FROM cd_counts WHERE partner_id = {m} AND scope = {m} AND tab = {m}) AS n{i}")
            params += [caller.partner_id, caller.user_id if assigned_only(caller, t) else "", TAB_ROWS[t]]
        view = self.view(caller, tab, search=search, missing_receipts=missing_receipts)
        if search is not None or missing_receipts:
            head.append(f"(SELECT COUNT(*) {view.sources} WHERE {' AND '.join(view.terms)}) AS total")
            params += view.params
        terms, row_params = list(view.terms), list(view.params)
        if after is not None:
            term, cursor_params = keyset(view.k, by, descending, after, m)
            terms.append(term)
            row_params += cursor_params
        # The figures of `c` equal those of `a` (its copy): the outer order is the inner one.
        rows = (f"SELECT {ITEM_COLUMNS}, c.accountants, {view.k}.sort_key {view.sources} "
                f"WHERE {' AND '.join(terms)} ORDER BY {order_by(view.k, by, descending)} LIMIT {m}")
        statement = (f"SELECT h.*, p.*, {self.people('p.accountants', m)} AS people "
                     f"FROM (SELECT {', '.join(head)}) AS h LEFT JOIN ({rows}) AS p ON TRUE "
                     f"ORDER BY {order_by('p', by, descending)}")
        return statement, [caller.partner_id, *params, *row_params, limit]

    # --- one client, one member -------------------------------------------------------------------

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
        return (f"SELECT {ITEM_COLUMNS}, c.tab, {self.people('c.accountants', m)} AS people FROM cd_clients c "
                f"WHERE c.partner_id = {m} AND c.client_id = {m} AND c.tab <> ''", [partner_id, partner_id, client_id])

    def assignment(self, caller: Caller, client_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT 1 AS yes FROM cd_assignments WHERE partner_id = {m} AND user_id = {m} AND client_id = {m}",
                [caller.partner_id, caller.user_id, client_id])

    def preference(self, caller: Caller, client_id: str) -> tuple[str, list[Any]]:
        m = self.mark
        return (f"SELECT email_enabled, frequency FROM cd_preferences WHERE partner_id = {m} "
                f"AND client_id = {m} AND user_id = {m}", [caller.partner_id, client_id, caller.user_id])

    # --- the statements the page is made of, one by one (tests, plans, benchmarks) ---------------

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

    def total(self, caller: Caller, tab: TabId, *, search: Search | None = None,
              missing_receipts: bool = False) -> tuple[str, list[Any]]:
        """The `total` of a search or the filter, alone."""
        view = self.view(caller, tab, search=search, missing_receipts=missing_receipts)
        return f"SELECT COUNT(*) AS n {view.sources} WHERE {' AND '.join(view.terms)}", view.params

    def tab(self, caller: Caller, tab: TabId, *, q: str | None = None, missing_receipts: bool = False,
            descending: bool = False, limit: int = 50, after: dict[str, Any] | None = None,
            by: str = NAME) -> tuple[str, list[Any]]:
        """The rows of one page alone: the firm's (or the caller's) index range for the tab, in
        sort order, from the cursor on; a search filters within that range."""
        m = self.mark
        view = self.view(caller, tab, search=Search(q) if q and fold(q) else None,
                         missing_receipts=missing_receipts)
        terms, params = list(view.terms), list(view.params)
        if after is not None:
            term, cursor_params = keyset(view.k, by, descending, after, m)
            terms.append(term)
            params += cursor_params
        statement = (f"SELECT {ITEM_COLUMNS}, {view.k}.sort_key {view.sources} WHERE {' AND '.join(terms)} "
                     f"ORDER BY {order_by(view.k, by, descending)} LIMIT {m}")
        return statement, [*params, limit]

    accountants_hint = ""

    def accountants(self, partner_id: str, client_ids: Sequence[str]) -> tuple[str, list[Any]]:
        """The assignments of some clients with their members' names, from cd_assignments (the
        page reads them from the clients' rows: `people`); one lookup per client."""
        return (f"SELECT a.client_id, a.user_id, m.name FROM cd_assignments a{self.accountants_hint} "
                "JOIN cd_members m ON m.partner_id = a.partner_id AND m.user_id = a.user_id AND m.active = 1 "
                f"WHERE a.partner_id = {self.mark} AND a.client_id IN ({self.marks(len(client_ids))})",
                [partner_id, *client_ids])
