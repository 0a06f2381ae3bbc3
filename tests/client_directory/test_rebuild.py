"""The read model is derived data: rebuilt from the event store (by `projections rebuild`, or
by itself when its schema changed) it serves exactly the same pages and counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contracts.api import TabId
from services.client_directory.projections.clients import Caller, ClientsProjection
from services.client_directory.rebuild import rebuild_read_model
from tests.client_directory import support as s
from tests.client_directory.support import Directory, firm


def history(directory: Directory) -> str:
    f = firm()
    directory.send(s.member_added(f, "ada", "Ada", role="admin"), s.member_added(f, "chloe", "Chloé"),
                   s.member_added(f, "otto", "Otto"))
    for n in range(12):
        directory.send(s.connected(f, f"c{n}", f"Client {n}") if n % 3 else s.onboarding(f, f"c{n}", f"Client {n}"),
                       s.assigned(f, f"c{n}", "chloe" if n % 2 else "otto"), s.metrics(f, f"c{n}", n % 4))
    directory.send(s.invited(f, "inv", "Invitation"), s.renamed(f, "c4", "Renamed"), s.disconnected(f, "c5"),
                   s.member_removed(f, "otto"), s.preference(f, "c1", "chloe", True, "monthly"))
    directory.app.accept_invitation(f, "inv", "ada")
    directory.app.assign(f, "inv", "chloe")
    return f


def everything(directory: Directory, f: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for caller in (Caller(f, "ada", "admin"), Caller(f, "chloe", "accountant"), Caller(f, "otto", "accountant")):
        tabs = list(TabId) if caller.is_admin else [TabId.ONBOARDING, TabId.MINE]
        for tab in tabs:
            seen[f"{caller.user_id} {tab.value}"] = directory.page(caller, tab)
            seen[f"{caller.user_id} {tab.value} missing desc"] = directory.page(
                caller, tab, missing_receipts=True, descending=True)
            for q in ("client 1", "renamed", "nothing like it"):  # the search index rebuilt too
                seen[f"{caller.user_id} {tab.value} {q}"] = directory.page(caller, tab, q=q)
        for n in range(12):
            seen[f"{caller.user_id} c{n}"] = directory.client(caller, f"c{n}")
    return seen


def test_a_rebuilt_read_model_serves_the_same_pages(directory: Directory) -> None:
    f = history(directory)
    before = everything(directory, f)
    assert rebuild_read_model(directory.app, directory.read_model, show_progress=False) > 0
    assert everything(directory, f) == before
    # The live projection goes on from where the rebuild stopped.
    directory.send(s.renamed(f, "c7", "After the rebuild"))
    assert directory.page(Caller(f, "ada", "admin"), TabId.ALL)["items"][0]["name"] == "After the rebuild"


def test_a_rebuilt_read_model_survives_the_next_start_after_an_upgrade(stores: Any, store_kind: str) -> None:
    """On-call rebuilds with the new version before starting it: the service then keeps the
    rebuilt tables (it drops tables only of another schema version, or of none)."""
    directory = Directory(stores.new(store_kind))
    f = history(directory)
    before = everything(directory, f)
    directory.read_model.write(lambda c: c.execute("UPDATE cd_meta SET value = '3' WHERE name = 'schema'"))
    done = rebuild_read_model(directory.app, directory.read_model, show_progress=False)
    started = ClientsProjection(directory.app, directory.read_model)  # what the service's start does
    assert started.position() == done
    assert everything(directory, f) == before
    directory.app.close()


def test_an_interrupted_rebuild_resumes_where_it_stopped(directory: Directory) -> None:
    f = history(directory)
    before = everything(directory, f)
    stopped = rebuild_read_model(directory.app, directory.read_model, show_progress=False, stop_after=10)
    assert stopped >= 10
    assert everything(directory, f) == before  # the live tables still serve meanwhile
    rebuild_read_model(directory.app, directory.read_model, show_progress=False)
    assert everything(directory, f) == before


def test_tables_of_another_schema_version_are_rebuilt_from_the_event_store(directory: Directory) -> None:
    f = history(directory)
    before = everything(directory, f)
    directory.read_model.write(lambda c: c.execute("UPDATE cd_meta SET value = 'old' WHERE name = 'schema'"))
    directory.read_model.write(lambda c: c.execute("DELETE FROM cd_clients"))
    restarted = ClientsProjection(directory.app, directory.read_model)
    assert restarted.position() == 0
    directory.projection = restarted
    assert everything(directory, f) == before


@pytest.fixture
def pg_directory(stores: Any) -> Iterator[Directory]:
    made = Directory(stores.new("postgresql"))
    yield made
    made.app.close()


def test_a_rebuild_on_postgresql_serves_the_same_pages_and_resumes(pg_directory: Directory) -> None:
    """PostgreSQL's rebuild writes its fresh tables in bulk (COPY, arrays): same pages, and a
    stopped rebuild resumes."""
    f = history(pg_directory)
    before = everything(pg_directory, f)
    stopped = rebuild_read_model(pg_directory.app, pg_directory.read_model, show_progress=False, stop_after=10,
                                 batch_size=7)
    assert stopped >= 10
    assert everything(pg_directory, f) == before
    rebuild_read_model(pg_directory.app, pg_directory.read_model, show_progress=False, batch_size=7)
    assert everything(pg_directory, f) == before
    assert rebuild_read_model(pg_directory.app, pg_directory.read_model, show_progress=False) > 0
    assert everything(pg_directory, f) == before
