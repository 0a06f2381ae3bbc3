"""A firm with 50,000 clients is served as quickly as one with 50: every query of the Clients
page is one index range in sort order (no sort, no scan), and a tab's count is one row."""

from __future__ import annotations

import pytest

from tests.client_directory.plans import explain, fill, queries_of, timed_pages
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
        elif "missing" in name:
            assert "_tab_missing" in first, f"{name} does not use the partial index:\n{plan}"
        elif "mine" in name or name.startswith("accountant"):
            assert "cd_assignments_tab" in first, f"{name}:\n{plan}"
        else:
            assert "cd_clients_tab" in first, f"{name}:\n{plan}"
        if "cursor" in name:
            assert "(sort_key,client_id)" in first, f"{name} does not seek to the cursor:\n{plan}"


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
