"""A big firm in the read model, and the query plans of its tabs (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from contracts.api import TabId
from events.store import ReadModel
from services.client_directory.projections.clients import (
    Caller,
    ClientQueries,
    count_query,
    tab_query,
)
from services.client_directory.projections.text import fold, sort_key

TAB_CYCLE = ("invitations", "onboarding", *("connected",) * 7, "")  # 10% ended
STATUS = {"invitations": "invited", "onboarding": "onboarding", "connected": "connected", "": "disconnected"}


Rows = dict[str, list[tuple[Any, ...]]]


def rows_of(partner: str, clients: int, user: str) -> Rows:
    """`clients` rows for the firm; `user` is assigned to every third client; 5% have missing
    receipts; the kept counts to match."""
    rows: Rows = {"cd_clients": [], "cd_assignments": [], "cd_counts": [], "cd_members": []}
    counts: Counter[tuple[str, str]] = Counter()
    for n in range(clients):
        tab = TAB_CYCLE[n % len(TAB_CYCLE)]
        name = f"Client {n}"
        missing = 3 if n % 20 == 0 else 0
        ready = n % 7  # few values: the figure sorts page through long runs of ties
        rows["cd_clients"].append((partner, f"id-{n:06d}", name, sort_key(name), fold(name), STATUS[tab], tab,
                                   missing, ready))
        counts["", tab] += 1
        if n % 3 == 0:
            rows["cd_assignments"].append((partner, user, f"id-{n:06d}", tab, sort_key(name), missing, ready))
            counts[user, tab] += 1
    rows["cd_counts"] = [(partner, scope, tab, n) for (scope, tab), n in counts.items() if tab]
    rows["cd_members"] = [(partner, user, "U", "u@x.test", "admin", "en", 1)]
    return rows


COLUMNS = {
    "cd_clients": "partner_id, client_id, name, sort_key, search_key, status, tab, missing_receipts, ready_to_export",
    "cd_assignments": "partner_id, user_id, client_id, tab, sort_key, missing_receipts, ready_to_export",
    "cd_counts": "partner_id, scope, tab, n",
    "cd_members": "partner_id, user_id, name, email, role, locale, active",
}


def fill(read_model: ReadModel, firms: list[tuple[str, int, str]]) -> None:
    """Write firms (partner, clients, user) straight into the read-model tables, in one
    transaction (SQLite: executemany; PostgreSQL: COPY), then refresh the planner's statistics."""
    rows: Rows = {table: [] for table in COLUMNS}
    for partner, clients, user in firms:
        for table, values in rows_of(partner, clients, user).items():
            rows[table] += values

    with read_model.datastore.transaction(commit=True) as cursor:
        for table, values in rows.items():
            if read_model.kind == "sqlite":
                marks = ", ".join("?" for _ in values[0])
                cursor.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", values)
            else:
                with cursor.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
    read_model.write(lambda c: c.execute("ANALYZE"))


def queries_of(partner: str, user: str, kind: str = "sqlite") -> dict[str, tuple[str, list[Any]]]:
    """Every query shape a page of the Clients page runs, by a readable name."""
    admin = Caller(partner, user, "admin")
    accountant = Caller(partner, user, "accountant")
    cursor = {"k": sort_key("Client 500"), "i": "id-000500", "f": 3}
    shapes: dict[str, tuple[str, list[Any]]] = {}
    for caller, tabs in ((admin, (TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL)),
                         (accountant, (TabId.ONBOARDING, TabId.MINE))):
        for tab in tabs:
            name = f"{caller.role} {tab.value}"
            shapes[f"{name} count"] = count_query(caller, tab, kind)
            for by in SORTED_BY:
                for descending in (False, True):
                    for missing in (False, True):
                        label = (f"{name} {'' if by == 'name' else f'by {by} '}{'desc' if descending else 'asc'}"
                                 f"{' missing' if missing else ''}")
                        options = {"descending": descending, "missing_receipts": missing, "by": by}
                        shapes[label] = tab_query(caller, tab, kind, **options)
                        shapes[f"{label} after cursor"] = tab_query(caller, tab, kind, after=cursor, **options)
    return shapes


SORTED_BY = ("name", "missing_receipts", "ready_to_export")
SHORT = {"missing_receipts": "_mr", "ready_to_export": "_rte"}


def sorted_by(name: str) -> str:
    """What a query shape of `queries_of` sorts by, from its name."""
    return next((by for by in SHORT if f" by {by} " in name), "name")


def favourite_index(name: str, table: str) -> str:
    """The index a query shape of `queries_of` must walk: the tab's, partial under the filter,
    the figure's twin under a sort by a figure."""
    filtered = name.endswith((" missing", " missing after cursor"))
    return f"{table}_tab{'_missing' if filtered else ''}{SHORT.get(sorted_by(name), '')}"


def explain(read_model: ReadModel, statement: str, params: list[Any]) -> str:
    prefix = "EXPLAIN QUERY PLAN " if read_model.kind == "sqlite" else "EXPLAIN "
    rows = read_model.query(prefix + statement, params)
    if read_model.kind == "sqlite":
        return "\n".join(str(r["detail"]) for r in rows)
    return "\n".join(str(next(iter(r.values()))) for r in rows)


def timed_pages(queries: ClientQueries, partner: str, user: str, repeat: int = 20) -> float:
    """Seconds per full page request (counts and 50 items) of every tab, on average."""
    admin = Caller(partner, user, "admin")
    started = time.perf_counter()
    for _ in range(repeat):
        for tab in (TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL):
            queries.page(admin, tab, limit=50)
            queries.page(admin, tab, limit=50, missing_receipts=True, descending=True)
    return (time.perf_counter() - started) / (repeat * 8)
