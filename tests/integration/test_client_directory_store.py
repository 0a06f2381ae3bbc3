"""The client directory's read model on PostgreSQL: names sort as on SQLite and in Python
whatever the server's locale (the keyset cursor depends on it), and a firm of 50,000 clients
is served from index ranges (no sort, no scan) like a firm of 50, sorted by name or by a figure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from contracts.api import TabId
from services.client_directory.projections.clients import Caller
from services.client_directory.projections.text import sort_key
from tests.client_directory import support as s
from tests.client_directory.plans import explain, favourite_index, fill, queries_of, timed_pages
from tests.client_directory.support import Directory

pytestmark = pytest.mark.integration

NAMES = ["Client", "Client A", "Client 2", "Client 10", "b", "B", "a", "A", "Élodie", "Edgar", "Fabrice", "Œuvre",
         "oeuvre", "O'Neil", "o neil", "Zoé", "zoe"]


@pytest.fixture(scope="module")
def icu_directory(postgres: str, stores: Any) -> Iterator[Directory]:
    """A database whose default collation is ICU en-US, as a production server may have."""
    name = f"t_icu_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1").fetchone() is None:
            pytest.skip("this PostgreSQL server was built without ICU (the embedded test server is)")
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                     "LOCALE 'C.UTF-8'")
    stores.databases.append(name)  # dropped with the session's other databases
    directory = Directory(f"{postgres.rsplit('/', 1)[0]}/{name}")
    yield directory
    directory.app.close()


def test_names_sort_bytewise_on_postgresql_whatever_the_server_locale(icu_directory: Directory) -> None:
    f = f"firm-{uuid.uuid4().hex[:8]}"
    for n, name in enumerate(NAMES):
        icu_directory.send(s.connected(f, f"c{n:02d}", name))
    python_order = sorted((f"c{n:02d}" for n in range(len(NAMES))), key=lambda c: (sort_key(NAMES[int(c[1:])]), c))
    admin = Caller(f, "ada", "admin")
    assert icu_directory.ids(admin, TabId.ALL, limit=200) == python_order
    assert icu_directory.every_id(admin, TabId.ALL, limit=1) == python_order
    assert icu_directory.every_id(admin, TabId.ALL, limit=3, descending=True) == python_order[::-1]
    assert [NAMES[int(c[1:])] for c in python_order][:4] == ["A", "a", "B", "b"]

    collations = icu_directory.read_model.query(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE column_name IN ('sort_key', 'client_id') AND table_name IN ('cd_clients', 'cd_assignments')")
    assert {(r["table_name"], r["column_name"]): r["collation_name"] for r in collations} == {
        ("cd_clients", "sort_key"): "C", ("cd_clients", "client_id"): "C",
        ("cd_assignments", "sort_key"): "C", ("cd_assignments", "client_id"): "C"}
    # Without COLLATE "C" this server would order the same keys otherwise: the test can tell.
    by_locale = icu_directory.read_model.query(
        "SELECT client_id FROM cd_clients WHERE partner_id = %s ORDER BY sort_key COLLATE \"default\", client_id", (f,))
    assert [r["client_id"] for r in by_locale] != python_order


def test_a_firm_of_50000_clients_is_served_from_index_ranges_on_postgresql(icu_directory: Directory) -> None:
    big, small = f"big-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
    # Other firms too, so the planner sees a realistic cd_counts.
    others = [(f"other-{n}-{big}", 3, "u") for n in range(500)]
    fill(icu_directory.read_model, [(big, 50_000, "u"), (small, 50, "u"), *others])
    for name, (statement, params) in queries_of(big, "u", icu_directory.read_model.kind).items():
        plan = explain(icu_directory.read_model, statement, params)
        assert "Sort" not in plan and "Seq Scan" not in plan, f"{name}:\n{plan}"
        if name.endswith("count"):
            assert "cd_counts_pkey" in plan, f"{name}:\n{plan}"
        else:
            table = "cd_assignments" if "mine" in name or name.startswith("accountant") else "cd_clients"
            index = favourite_index(name, table) + " "
            assert index in plan.splitlines()[1] + plan.splitlines()[2] + " ", f"{name}:\n{plan}"
    timed_pages(icu_directory.queries, big, "u", repeat=2)
    big_firm = min(timed_pages(icu_directory.queries, big, "u", repeat=5) for _ in range(3))
    small_firm = min(timed_pages(icu_directory.queries, small, "u", repeat=5) for _ in range(3))
    assert big_firm < 3 * small_firm + 0.005, (big_firm, small_firm)


def test_a_search_uses_the_trigram_index_on_postgresql(icu_directory: Directory) -> None:
    """pg_trgm's GIN index over search_key serves a rare search (and its total); a search that
    matches nothing never walks the firm's tab."""
    from services.client_directory.projections.page import Search

    big, small = f"big-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
    fill(icu_directory.read_model, [(big, 50_000, "u"), (small, 50, "u")])
    sql = icu_directory.queries.sql
    for caller in (Caller(big, "u", "admin"), Caller(big, "u", "accountant")):
        for q in ("xylophone", "client 4999"):
            plan = explain(icu_directory.read_model, *sql.page(caller, TabId.ONBOARDING, search=Search(q), limit=51))
            assert "cd_clients_search" in plan, f"{caller.role} {q}:\n{plan}"
    # A search that matches nothing never walks the big firm's tab (the planner may walk a
    # small firm's few rows); the benchmark times it in a firm of 5,000 and of 50,000.
    plan = explain(icu_directory.read_model, *sql.page(Caller(big, "u", "admin"), TabId.ALL,
                                                        search=Search("xylophone"), limit=51))
    assert "cd_clients_tab" not in plan, plan
    for firm_id in (big, small):
        page = icu_directory.queries.page(Caller(firm_id, "u", "admin"), TabId.ALL, q="xylophone")
        assert page["total"] == 0 and page["items"] == []
    admin = Caller(big, "u", "admin")
    assert icu_directory.queries.page(admin, TabId.ALL, q="client 4999")["total"] == len(
        icu_directory.every_id(admin, TabId.ALL, limit=5, q="client 4999"))
