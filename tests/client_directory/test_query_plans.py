"""A firm with 50,000 clients is served as quickly as one with 50: every query of the Clients
page is one index range in sort order (no sort, no scan), and a tab's count is one row."""

from __future__ import annotations

import pytest

from tests.client_directory.plans import explain, favourite_index, fill, queries_of, sorted_by, timed_pages
from tests.client_directory.support import Directory

BIG, SMALL = 50_000, 50


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Directory:
    directory = Directory(str(tmp_path_factory.mktemp("plans") / "big.db"))
    fill(directory.read_model, [("big-firm", BIG, "u"), ("small-firm", SMALL, "u")])
    return directory


def test_every_page_query_walks_one_index_in_sort_order(big: Directory) -> None:
    for name, (statement, params) in queries_of("big-firm", "u").items():
        plan = explain(big.read_model, statement, params)
        assert "TEMP B-TREE" not in plan, f"{name} sorts:\n{plan}"
        assert "SCAN" not in plan, f"{name} scans:\n{plan}"
        first = plan.splitlines()[0]
        if name.endswith("count"):
            assert "cd_counts" in first, f"{name}:\n{plan}"
            continue
        table = "cd_assignments" if "mine" in name or name.startswith("accountant") else "cd_clients"
        index = favourite_index(name, table)
        assert f"INDEX {index} " in first, f"{name} does not walk {index}:\n{plan}"
        if "cursor" in name:
            by = sorted_by(name)
            seek = "(sort_key,client_id)" if by == "name" else f"({by},sort_key,client_id)"
            # Sorted by missing receipts under their filter, SQLite bounds the range by one of the
            # two terms on the column (the filter's): still the partial index, in order.
            if by == "missing_receipts" and "_missing" in index:
                assert seek in first or "AND missing_receipts>?)" in first, f"{name}:\n{plan}"
            else:
                assert seek in first, f"{name} does not seek to the cursor:\n{plan}"


def test_a_big_firm_answers_about_as_fast_as_a_small_one(big: Directory) -> None:
    timed_pages(big.queries, "big-firm", "u", repeat=3)  # warm the page cache
    big_firm = min(timed_pages(big.queries, "big-firm", "u") for _ in range(3))
    small_firm = min(timed_pages(big.queries, "small-firm", "u") for _ in range(3))
    # Pages of 50 against pages of a few: a small constant factor, never proportional to size.
    assert big_firm < 5 * small_firm + 0.002, (big_firm, small_firm)


def test_the_kept_counts_agree_with_the_rows(big: Directory) -> None:
    from contracts.api import TabId
    from services.client_directory.projections.clients import Caller, count_query, recount_query

    for caller in (Caller("big-firm", "u", "admin"), Caller("big-firm", "u", "accountant")):
        for tab in (TabId.ONBOARDING, TabId.MINE):
            kept = big.read_model.query(*count_query(caller, tab))[0]["n"]
            counted = big.read_model.query(*recount_query(caller, tab))[0]["n"]
            assert kept == counted > 0


def test_a_search_reads_the_trigram_index_and_then_only_its_hits(big: Directory) -> None:
    """SQLite: the page asks the FTS5 trigram index for the matches store-wide; when they are few
    it reads just those rows by rowid (never the firm's range), so a search that matches nothing
    costs the same in a firm of 50,000 as in one of 50."""
    from contracts.api import TabId
    from services.client_directory.projections.clients import Caller

    sql = big.queries.sql
    probe = explain(big.read_model, "SELECT rowid FROM cd_clients_search WHERE search_key LIKE ? LIMIT ?",
                    ["%client 4999%", 1001])
    assert "VIRTUAL TABLE INDEX" in probe, probe
    for caller in (Caller("big-firm", "u", "admin"), Caller("big-firm", "u", "accountant")):
        for tab in (TabId.MINE, TabId.ONBOARDING):
            search = big.read_model.read(lambda c: sql.search(c, "client 4999"))
            assert search.hits is not None and 0 < len(search.hits) <= 20
            plan = explain(big.read_model, *sql.page(caller, tab, search=search, limit=51))
            lookups = [line.strip() for line in plan.splitlines() if line.strip().startswith("SEARCH c ")]
            assert lookups and all("(rowid=?)" in line for line in lookups), plan
            scans = [line.strip() for line in plan.splitlines() if line.strip().startswith("SCAN ")]
            # `m`: this store's cd_members has two rows, and ANALYZE told the planner so.
            assert set(scans) <= {"SCAN CONSTANT ROW", "SCAN hit VIRTUAL TABLE INDEX 1:", "SCAN h",
                                  "SCAN p LEFT-JOIN", "SCAN u VIRTUAL TABLE INDEX 1:", "SCAN m"}, plan
    admin = Caller("big-firm", "u", "admin")
    for firm_id in ("big-firm", "small-firm"):  # no row read, whatever the firm (the benchmark times it)
        search = big.read_model.read(lambda c: sql.search(c, "xylophone"))
        assert search.hits == []
        page = big.queries.page(Caller(firm_id, "u", "admin"), TabId.ALL, q="xylophone")
        assert page["total"] == 0 and page["items"] == []
    assert big.queries.page(admin, TabId.ALL, q="client 4999")["total"] == len(
        big.every_id(admin, TabId.ALL, limit=5, q="client 4999"))
