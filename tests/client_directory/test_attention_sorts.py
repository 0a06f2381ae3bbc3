"""Sorting the Clients page by what needs attention (issue 18, item 1), on SQLite and PostgreSQL:
by missing receipts or ready to export, then name, then client_id (`-` the exact reverse),
keyset-paged like the name sort, with search and the missing-receipts filter, over HTTP and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.api import ClientSort, TabId
from services.client_directory.projections.clients import BadCursor, Caller, tabs_for
from services.client_directory.projections.page import sort_order
from services.client_directory.projections.text import sort_key
from tests.client_directory import support as s
from tests.client_directory.support import Directory, firm
from tests.client_directory.test_security import Portal, bearer

SORTS = [sort.value for sort in ClientSort]
# Few distinct figures and repeated names: most rows tie on the figure, some on the name too.
NAMES = ("Société Générale", "Boulangerie", "Café Zoé", "Garage 12", "Garage 2", "Œuvre", "Same", "Same")


@pytest.fixture
def directory(stores: Any, store_kind: str) -> Iterator[Directory]:
    made = Directory(stores.new(store_kind))
    yield made
    made.app.close()


def populate(directory: Directory) -> str:
    f = firm()
    directory.send(s.member_added(f, "ada", "Ada", role="admin"), s.member_added(f, "zoe", "Zoé"))
    for n in range(30):
        client_id, name = f"c{n:02d}", NAMES[n % len(NAMES)]
        directory.send(s.onboarding(f, client_id, name) if n % 5 == 0 else s.connected(f, client_id, name))
        if n % 2:
            directory.send(s.assigned(f, client_id, "zoe"))
        if n % 7 != 6:  # some clients have no figures yet: 0 and 0
            directory.send(s.metrics(f, client_id, n % 3, ready=(n * 5) % 4))
    return f


def expected(items: list[dict[str, Any]], sort: str) -> list[str]:
    """The order in Python: the figure (if any), the name's sort key, the id; `-` reverses it."""
    by, descending = sort_order(sort)

    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        figure = () if by == "name" else (item[by],)
        return (*figure, sort_key(item["name"]), item["client_id"])

    return [item["client_id"] for item in sorted(items, key=key, reverse=descending)]


def every_item(directory: Directory, caller: Caller, tab: TabId, sort: str, limit: int,
               **options: Any) -> list[dict[str, Any]]:
    by, descending = sort_order(sort)
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = directory.page(caller, tab, limit=limit, cursor=cursor, by=by, descending=descending, **options)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_pages_through_each_tab_in_python_order(directory: Directory, sort: str) -> None:
    f = populate(directory)
    for caller in (Caller(f, "ada", "admin"), Caller(f, "zoe", "accountant")):
        for tab in tabs_for(caller):
            for options in ({}, {"q": "garage"}, {"q": "é"}, {"missing_receipts": True},
                            {"q": "same", "missing_receipts": True}):
                whole = directory.page(caller, tab, limit=200, **options)["items"]
                want = expected(whole, sort)
                for limit in (1, 3, 50):
                    got = [i["client_id"] for i in every_item(directory, caller, tab, sort, limit, **options)]
                    assert got == want, (caller.role, tab, options, limit)
    # The data does tie: within a figure, by name, and within a name, by id.
    whole = directory.page(Caller(f, "ada", "admin"), TabId.ALL, limit=200)["items"]
    assert len({(i["missing_receipts"], i["ready_to_export"], i["name"]) for i in whole}) < len(whole)


@pytest.mark.parametrize("sort", ["missing_receipts", "-missing_receipts", "ready_to_export", "-ready_to_export"])
def test_paging_by_a_figure_never_repeats_or_skips_a_client_whose_figure_stays(directory: Directory,
                                                                              sort: str) -> None:
    f = firm()
    directory.send(s.member_added(f, "ada", "Ada", role="admin"))
    for n in range(20):
        directory.send(s.connected(f, f"c{n:02d}", f"Client {n % 6}"), s.metrics(f, f"c{n:02d}", n % 4, ready=n % 3))
    caller = Caller(f, "ada", "admin")
    by, descending = sort_order(sort)
    seen: list[str] = []
    page = directory.page(caller, TabId.ALL, limit=5, by=by, descending=descending)
    seen += [i["client_id"] for i in page["items"]]
    first, last = page["items"][0]["client_id"], page["items"][-1]["client_id"]
    unseen = sorted({f"c{n:02d}" for n in range(20)} - set(seen))
    # Between pages: a client already seen and one not seen yet change both figures (either may
    # move across the cursor), a new client arrives, one not seen yet leaves.
    changed = {first, unseen[0]}
    later = "2026-09-01T00:00:00Z"
    directory.send(s.metrics(f, first, 9, ready=9, as_of=later), s.metrics(f, unseen[0], 0, ready=0, as_of=later),
                   s.connected(f, "new", "Client 3"), s.metrics(f, "new", 2, ready=1), s.disconnected(f, unseen[1]))
    while page["next_cursor"]:
        page = directory.page(caller, TabId.ALL, limit=5, by=by, descending=descending, cursor=page["next_cursor"])
        seen += [i["client_id"] for i in page["items"]]
    stable = [client for client in seen if client not in changed]
    assert len(stable) == len(set(stable)), "a client whose figures stayed was repeated"
    stayed = {f"c{n:02d}" for n in range(20)} - changed - {unseen[1]}
    assert stayed <= set(seen), f"skipped: {sorted(stayed - set(seen))}"
    assert unseen[1] not in seen and last in seen
    # Whatever moved, the pages after the first are in the order of the rows as they are now.
    rest = seen[5:]
    now = {i["client_id"]: i for i in directory.page(caller, TabId.ALL, limit=200)["items"]}
    assert rest == expected([now[c] for c in rest], sort)


def test_a_cursor_of_one_sort_is_refused_with_another(directory: Directory) -> None:
    f = populate(directory)
    caller = Caller(f, "ada", "admin")
    cursors = {sort: directory.page(caller, TabId.ALL, limit=2, by=sort_order(sort)[0],
                                    descending=sort_order(sort)[1])["next_cursor"] for sort in SORTS}
    for sort, cursor in cursors.items():
        assert cursor is not None
        for other in SORTS:
            by, descending = sort_order(other)
            if other == sort:
                assert directory.page(caller, TabId.ALL, limit=2, by=by, descending=descending, cursor=cursor)
            else:
                with pytest.raises(BadCursor):
                    directory.page(caller, TabId.ALL, limit=2, by=by, descending=descending, cursor=cursor)


def test_the_api_and_the_csv_take_the_sorts_and_a_mismatched_cursor_is_a_422(tmp_path: Path) -> None:
    portal = Portal(tmp_path)
    try:
        f = portal.firm
        portal.send(s.member_added(f, "ada", "Ada", role="admin"))
        for n, (missing, ready) in enumerate(((2, 0), (0, 5), (2, 1), (7, 0))):
            portal.send(s.connected(f, f"c{n}", f"Client {n}"), s.metrics(f, f"c{n}", missing, ready=ready))
        headers = bearer("ada", f, "admin")
        order = {"-missing_receipts": ["c3", "c2", "c0", "c1"], "ready_to_export": ["c0", "c3", "c2", "c1"]}
        for sort, ids in order.items():
            response = portal.http.get("/v1/clients", params={"tab": "all", "sort": sort}, headers=headers)
            assert response.status_code == 200, response.text
            assert [i["client_id"] for i in response.json()["items"]] == ids
            export = portal.http.get("/v1/clients.csv", params={"tab": "all", "sort": sort}, headers=headers)
            assert export.status_code == 200, export.text
            assert [row["client_id"] for row in csv.DictReader(io.StringIO(export.text))] == ids
        first = portal.http.get("/v1/clients", params={"tab": "all", "sort": "-missing_receipts", "limit": 1},
                                headers=headers).json()
        for other in ("name", "-name", "missing_receipts", "ready_to_export"):
            refused = portal.http.get("/v1/clients", headers=headers, params={
                "tab": "all", "sort": other, "limit": 1, "cursor": first["next_cursor"]})
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["location"] == "query.cursor"
        for unknown in ("missing", "--name", "-total"):
            for path in ("/v1/clients", "/v1/clients.csv"):
                response = portal.http.get(path, params={"sort": unknown}, headers=headers)
                assert response.status_code == 422, response.text
                assert response.json()["errors"][0]["location"] == "query.sort"
    finally:
        portal.facts.app.close()
