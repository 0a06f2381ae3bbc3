"""`total` of the Clients page and search by trigram index, on SQLite and PostgreSQL: the total
is what paging through yields, read on the page's own snapshot; a search finds the same
clients whether the trigram index or the tab's range serves it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contracts.api import TabId
from services.client_directory.projections.clients import Caller, ClientsProjection, index_name, tabs_for
from services.client_directory.projections.page import Search
from services.client_directory.projections.text import fold
from tests.client_directory import support as s
from tests.client_directory.support import Directory, firm

NAMES = ("Société Générale", "Boulangerie Dupont", "Société des Eaux", "Garage 12", "Œuvre Sociale", "Café Zoé",
         "SOCIETE anonyme", "Atelier 50% off", "Hôtel du Lac", "Cabinet_Martin")
SEARCHES = ("societe", "soc", "SOCIÉTÉ", "é", "ab", "50%", "_m", "xylophone", "oeuvre", "  eaux  ")


@pytest.fixture
def directory(stores: Any, store_kind: str) -> Iterator[Directory]:
    made = Directory(stores.new(store_kind))
    yield made
    made.app.close()


def populate(directory: Directory) -> str:
    f = firm()
    directory.send(s.member_added(f, "ada", "Ada", role="admin"), s.member_added(f, "zoe", "Zoé"),
                   s.member_added(f, "bob", "Bob"))
    for n in range(40):
        name = f"{NAMES[n % len(NAMES)]} {n}"
        if n % 4 == 0:
            directory.send(s.invited(f, f"c{n:02d}", name))
        elif n % 4 == 1:
            directory.send(s.onboarding(f, f"c{n:02d}", name))
        else:
            directory.send(s.connected(f, f"c{n:02d}", name))
        if n % 3 == 0 and n % 4:
            directory.send(s.assigned(f, f"c{n:02d}", "zoe" if n % 2 else "bob"))
        if n % 5 != 4:
            directory.send(s.metrics(f, f"c{n:02d}", n % 3, ready=n % 4))
    other = firm()  # another firm's matches never count
    directory.send(s.member_added(other, "ada", "Ada", role="admin"), s.connected(other, "x", "Société Autre"))
    return f


def views(f: str) -> Iterator[tuple[Caller, TabId, dict[str, Any]]]:
    for caller in (Caller(f, "ada", "admin"), Caller(f, "zoe", "accountant"), Caller(f, "bob", "accountant")):
        for tab in tabs_for(caller):
            for q in (None, *SEARCHES):
                for missing in (False, True):
                    yield caller, tab, {"q": q, "missing_receipts": missing}


def test_total_is_what_paging_through_yields(directory: Directory) -> None:
    f = populate(directory)
    seen_totals = set()
    for caller, tab, options in views(f):
        page = directory.page(caller, tab, **options)
        every = directory.every_id(caller, tab, limit=3, **options)
        assert page["total"] == len(every), (caller, tab, options)
        seen_totals.add(page["total"])
        if not options["q"] and not options["missing_receipts"]:
            assert page["total"] == {t["id"]: t["count"] for t in page["tabs"]}.get(tab.value, 0)
        descending = directory.every_id(caller, tab, limit=4, descending=True, **options)
        assert descending == every[::-1]
    assert len(seen_totals) > 5  # the views differ


def test_a_search_matches_folded_substrings_by_index_or_by_range(directory: Directory) -> None:
    f = populate(directory)
    admin = Caller(f, "ada", "admin")
    names = {item["client_id"]: item["name"] for item in directory.page(admin, TabId.ALL, limit=200)["items"]}
    for q in SEARCHES:
        expected = sorted(i for i, name in names.items() if fold(q) in fold(name))
        assert sorted(directory.ids(admin, TabId.ALL, q=q, limit=200)) == expected, q
    sql = directory.queries.sql
    # Whichever way the page's statement matches, the same rows (the range is the fallback).
    def rows(q: str, *, index: bool) -> list[dict[str, Any]]:
        def run(c: Any) -> list[dict[str, Any]]:
            c.execute(*sql.page(admin, TabId.ALL, search=sql.search(c, q) if index else Search(q), limit=100))
            return [dict(r) for r in c.fetchall()]

        return directory.read_model.read(run)

    for q in ("societe", "eaux", "xylophone"):
        assert rows(q, index=False) == rows(q, index=True), q


def test_total_and_items_come_from_one_snapshot(directory: Directory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients that match arrive while a page is being read (after the search index was read,
    before the page's statement): neither its total nor its items see them."""
    f = populate(directory)
    admin = Caller(f, "ada", "admin")
    before = directory.page(admin, TabId.ALL, q="societe", limit=200)
    sql = directory.queries.sql
    search = sql.search

    def search_then_write(c: Any, q: str) -> Search:
        found = search(c, q)
        directory.send(*(s.connected(f, f"late{n}", f"Société tardive {n}") for n in range(3)))
        return found

    # The path that reads the index first (SQLite's; PostgreSQL's page is one statement, which
    # sees one snapshot by itself): taken on both stores here.
    monkeypatch.setattr(sql, "search", search_then_write)
    monkeypatch.setattr(sql, "probes_search", True)
    during = directory.queries.page(admin, TabId.ALL, q="societe", limit=200)
    assert during["total"] == before["total"] == len(during["items"])
    assert during["items"] == before["items"]
    monkeypatch.undo()
    after = directory.page(admin, TabId.ALL, q="societe", limit=200)
    assert after["total"] == before["total"] + 3 == len(after["items"])


def test_a_store_of_the_previous_schema_is_migrated_at_start(directory: Directory) -> None:
    """What the service's start does on a store the previous version wrote: its tables go, and
    the projection rebuilds them, with their accountants and search index, from the events."""
    f = populate(directory)
    admin, zoe = Caller(f, "ada", "admin"), Caller(f, "zoe", "accountant")

    def pages() -> list[dict[str, Any]]:
        return [directory.page(caller, tab, q=q, by=by, descending=True)
                for caller in (admin, zoe) for tab in tabs_for(caller) for q in (None, "societe", "eaux")
                for by in ("name", "missing_receipts", "ready_to_export")]

    before = pages()

    def downgrade(c: Any) -> None:
        # Schema 5: no figure indexes, and cd_assignments without ready_to_export.
        for statement in directory.queries.sql.schema():
            if (name := index_name(statement)) and name.endswith(("_mr", "_rte")):
                c.execute(f"DROP INDEX {name}")
        c.execute("ALTER TABLE cd_assignments DROP COLUMN ready_to_export")
        c.execute("UPDATE cd_meta SET value = '5' WHERE name = 'schema'")

    directory.read_model.write(downgrade)
    directory.projection = ClientsProjection(directory.app, directory.read_model)
    assert directory.projection.position() == 0
    assert pages() == before
    assert any(item["accountants"] for page in before for item in page["items"])
    assert any(item["ready_to_export"] for page in before if page["tab"] == "mine" for item in page["items"])
