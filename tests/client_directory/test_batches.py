"""The projection folds a batch in memory (projections/fold.py): whatever the batches, the
tables come out the same as with one event per batch, and the kept counts equal COUNT(*)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.client_directory.projections.clients import TABLES, ClientsProjection
from services.client_directory.projections.fold import TOPICS, ClientsFold
from tests.client_directory import support as s
from tests.client_directory.support import Directory
from tests.client_directory.test_properties import delivery, history, run_command, steps_of

KEYS = {"cd_clients": ("partner_id", "client_id"), "cd_assignments": ("partner_id", "user_id", "client_id"),
        "cd_counts": ("partner_id", "scope", "tab"), "cd_members": ("partner_id", "user_id"),
        "cd_preferences": ("partner_id", "client_id", "user_id"), "cd_keys": ("notification_id",)}


def project(projection: ClientsProjection, sizes: Iterator[int]) -> None:
    """Catch up with batches of the given sizes, as the follower hands them over."""
    while batch := projection.pending(limit=next(sizes)):
        projection.process(projection.relevant(batch), batch[-1].id)


def tables(directory: Directory, prefix: str, firms: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the firms, in key order. A count of zero is the same as no count row."""
    marks = ", ".join(directory.read_model.mark for _ in firms)
    seen = {}
    for table in TABLES:
        where = f"partner_id IN ({marks})" + (" AND n <> 0" if table == "cd_counts" else "")
        seen[table] = directory.read_model.query(
            f"SELECT * FROM {prefix}{table} WHERE {where} ORDER BY {', '.join(KEYS[table])}", firms)
    return seen


def recounted(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, str], int]:
    """The counts cd_counts must hold, counted from the client and assignment rows."""
    counts: dict[tuple[str, str, str], int] = {}
    for row in rows["cd_clients"]:
        if row["tab"]:
            counts[row["partner_id"], "", row["tab"]] = counts.get((row["partner_id"], "", row["tab"]), 0) + 1
    for row in rows["cd_assignments"]:
        if row["tab"]:
            key = (row["partner_id"], row["user_id"], row["tab"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def same_tables_whatever_the_batches(directory: Directory, firms: list[str], rnd: random.Random) -> None:
    """One event per batch, random batches, and the live projection's batches agree."""
    run = uuid.uuid4().hex[:6]
    one = ClientsProjection(directory.app, directory.read_model, prefix=f"one{run}_")
    project(one, iter(lambda: 1, 0))
    some = ClientsProjection(directory.app, directory.read_model, prefix=f"some{run}_")
    project(some, iter(lambda: rnd.choice([2, 3, 5, 17, 1000]), 0))
    directory.projection.catch_up()

    expected = tables(directory, f"one{run}_", firms)
    assert tables(directory, f"some{run}_", firms) == expected
    assert tables(directory, "", firms) == expected
    assert {(r["partner_id"], r["scope"], r["tab"]): r["n"] for r in expected["cd_counts"]} == recounted(expected)


def a_busy_client(f: str) -> list[Any]:
    """Many events of one client (and of its firm's members) close together."""
    return [
        s.member_added(f, "u1", "Chloé"), s.member_added(f, "u2", "Otto", role="admin"),
        s.metrics(f, "c2", 4, as_of="2026-01-01T10:00:00+00:00"),  # figures before their client
        s.onboarding(f, "c1", "Zeta"), s.assigned(f, "c1", "u1"), s.assigned(f, "c1", "u2"),
        s.assigned(f, "c1", "u1"),  # twice: rejected by the aggregate, nothing new in the store
        s.metrics(f, "c1", 3), s.renamed(f, "c1", "Alpha"), s.verified(f, "c1"),
        s.unassigned(f, "c1", "u2"), s.renamed(f, "c1", "Beta 10"),
        s.metrics(f, "c1", 0, as_of="2026-02-01T10:00:00+00:00"),
        s.disconnected(f, "c1"), s.metrics(f, "c1", 7, as_of="2026-03-01T10:00:00+00:00"),
        s.invited(f, "c1", "Gamma"),  # restarted
        s.onboarding(f, "c2", "Delta"), s.assigned(f, "c2", "u1"), s.assigned(f, "c2", "u2"), s.failed(f, "c2"),
        s.role_changed(f, "u1", "admin"), s.member_removed(f, "u1"),  # unassigned from c2 on the way
        s.member_added(f, "u1", "Chloé B"),  # rejoined
        s.preference(f, "c2", "u2", True, "daily"), s.preference(f, "c2", "u2", False, "monthly"),
        s.invited(f, "c3", "Epsilon"), s.assigned(f, "c3", "u2"), s.renamed(f, "c3", "Eta"),
        s.verified(f, "c2"), s.metrics(f, "c2", 9, as_of="2026-01-02T10:00:00+00:00"), s.assigned(f, "c2", "u1"),
    ]


@pytest.fixture
def any_directory(request: pytest.FixtureRequest, store_kind: str, tmp_path: Path) -> Iterator[Directory]:
    if store_kind == "sqlite":
        made = Directory(str(tmp_path / "client_directory.db"))
    else:
        made = Directory(request.getfixturevalue("stores").new("postgresql"))
    yield made
    made.app.close()


def test_many_events_of_one_client_in_a_batch_give_the_rows_of_one_event_per_batch(
        any_directory: Directory) -> None:
    f = s.firm()
    for cloud_event in a_busy_client(f):
        any_directory.send(cloud_event)
    any_directory.app.accept_invitation(f, "c1", "u2")
    any_directory.app.decline_invitation(f, "c3", "u2")
    any_directory.app.assign(f, "c1", "u2")
    any_directory.app.assign(f, "c1", "u1")
    any_directory.send(s.renamed(f, "c1", "Omega"), s.metrics(f, "c1", 2, as_of="2026-04-01T10:00:00+00:00"))
    same_tables_whatever_the_batches(any_directory, [f], random.Random(7))

    m = any_directory.read_model.mark
    clients = {r["client_id"]: r for r in any_directory.read_model.query(
        f"SELECT * FROM cd_clients WHERE partner_id = {m}", (f,))}
    assert (clients["c1"]["name"], clients["c1"]["tab"], clients["c1"]["missing_receipts"]) == ("Omega", "connected", 2)
    assert (clients["c2"]["tab"], clients["c2"]["missing_receipts"]) == ("connected", 9)
    assert clients["c3"]["tab"] == ""
    assigned = any_directory.read_model.query(
        f"SELECT client_id, user_id, tab, sort_key, missing_receipts FROM cd_assignments WHERE partner_id = {m} "
        "ORDER BY client_id, user_id", (f,))
    assert [(r["client_id"], r["user_id"], r["tab"], r["missing_receipts"]) for r in assigned] == [
        ("c1", "u1", "connected", 2), ("c1", "u2", "connected", 2), ("c2", "u1", "connected", 9),
        ("c2", "u2", "connected", 9)]
    assert {r["sort_key"] for r in assigned if r["client_id"] == "c1"} == {clients["c1"]["sort_key"]}


def test_a_relationship_starting_in_a_batch_keeps_the_figures_of_earlier_batches(any_directory: Directory) -> None:
    """A client's row is not read when its relationship starts in the batch: the figures of an
    earlier batch stay in the row, and an assignment made in the same batch copies them. When
    figures come first in the batch, the row is read as usual."""
    f = s.firm()
    any_directory.send(s.member_added(f, "u1", "Chloé"), s.metrics(f, "c1", 6, amount="12.50", ready=2),
                       s.metrics(f, "c2", 1, as_of="2026-01-01T10:00:00+00:00"))
    first = any_directory.app.recorder.max_notification_id() or 0
    any_directory.send(s.onboarding(f, "c1", "Zeta"), s.assigned(f, "c1", "u1"), s.renamed(f, "c1", "Alpha"))
    # Figures first in the batch, then the relationship starts: the row is read all the same.
    any_directory.send(s.metrics(f, "c2", 9, as_of="2026-01-02T10:00:00+00:00"), s.invited(f, "c2", "Beta"),
                       s.assigned(f, "c2", "u1"))
    last = any_directory.app.recorder.max_notification_id() or 0
    marks = iter([first, last - first, 1])
    two = ClientsProjection(any_directory.app, any_directory.read_model, prefix="two_")
    project(two, marks)  # the figures, then everything else: two batches
    assert two.position() == last
    one = ClientsProjection(any_directory.app, any_directory.read_model, prefix="one_")
    project(one, iter(lambda: 1, 0))
    assert tables(any_directory, "two_", [f]) == tables(any_directory, "one_", [f])
    m = any_directory.read_model.mark
    clients = any_directory.read_model.query(
        "SELECT name, tab, missing_receipts, ready_to_export, wallet_amount FROM two_cd_clients "
        f"WHERE partner_id = {m} ORDER BY client_id", (f,))
    assert clients == [
        {"name": "Alpha", "tab": "onboarding", "missing_receipts": 6, "ready_to_export": 2, "wallet_amount": "12.50"},
        {"name": "Beta", "tab": "invitations", "missing_receipts": 9, "ready_to_export": 0, "wallet_amount": "100.00"}]
    assigned = any_directory.read_model.query(
        f"SELECT client_id, user_id, tab, missing_receipts FROM two_cd_assignments WHERE partner_id = {m} "
        "ORDER BY client_id", (f,))
    assert assigned == [{"client_id": "c1", "user_id": "u1", "tab": "onboarding", "missing_receipts": 6},
                        {"client_id": "c2", "user_id": "u1", "tab": "invitations", "missing_receipts": 9}]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=history(), seed=st.integers(0, 2**32 - 1), duplicates=st.integers(0, 3))
def test_any_history_gives_the_same_rows_whatever_the_batches(
        tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]], seed: int, duplicates: int) -> None:
    # A store of its own: the projections below replay the whole log.
    directory = Directory(str(tmp_path_factory.mktemp("batches") / "client_directory.db"))
    try:
        firms = ["firm0", "firm1"]
        rnd = random.Random(seed)
        for step in delivery(steps_of(ops, firms), rnd, duplicates):
            if step.event is None:
                run_command(directory, step.op, firms[step.op[1]])
            else:
                directory.send(step.event)
        same_tables_whatever_the_batches(directory, firms, rnd)
    finally:
        directory.app.close()


def test_a_batch_another_instance_began_meanwhile_is_folded_from_where_that_one_stopped(
        any_directory: Directory) -> None:
    """Two instances project one store, each from the position it read when its batch began.
    When the other has applied the start of a batch since, only the rest is folded over its
    rows: a client started there is counted once. A batch the other covered already changes
    nothing, and neither is an error."""
    f = s.firm()
    any_directory.send(s.member_added(f, "u1", "Chloé"), s.invited(f, "c1", "Alpha"), s.onboarding(f, "c2", "Beta"))
    middle = any_directory.app.recorder.max_notification_id() or 0
    any_directory.send(s.assigned(f, "c2", "u1"), s.verified(f, "c2"), s.invited(f, "c3", "Gamma"))
    last = any_directory.app.recorder.max_notification_id() or 0
    one, other = any_directory.projection, ClientsProjection(any_directory.app, any_directory.read_model)

    everything = one.pending(limit=10_000)  # read from position 0, before the other moves
    start = [n for n in everything if n.id <= middle]
    other.process(other.relevant(start), middle)
    one.process(one.relevant(everything), last)  # its start applied already by the other
    other.process(other.relevant(start), middle)  # covered already
    assert one.position() == other.position() == last

    reference = ClientsProjection(any_directory.app, any_directory.read_model, prefix="alone_")
    project(reference, iter(lambda: 1, 0))
    rows = tables(any_directory, "", [f])
    assert {(r["partner_id"], r["scope"], r["tab"]): r["n"] for r in rows["cd_counts"]} == recounted(rows) == {
        (f, "", "invitations"): 2, (f, "", "connected"): 1, (f, "u1", "connected"): 1}
    assert rows == tables(any_directory, "alone_", [f])


def test_bulk_batches_give_the_rows_of_one_event_per_batch(any_directory: Directory) -> None:
    """The rebuild's batches (`bulk`: on PostgreSQL, COPY for new rows and one statement over
    arrays for the rest) write what one event per batch writes through the live path: new
    clients, clients whose figures came in an earlier batch, assignments added, copied and
    removed across batches."""
    f = s.firm()
    any_directory.send(s.member_added(f, "u0", "Zoé"), s.metrics(f, "c9", 5, amount="3.10", ready=1))
    for cloud_event in a_busy_client(f):
        any_directory.send(cloud_event)
    any_directory.send(s.onboarding(f, "c9", "Figures first"), s.assigned(f, "c9", "u0"))
    any_directory.app.accept_invitation(f, "c1", "u2")
    any_directory.app.assign(f, "c1", "u2")
    any_directory.send(s.renamed(f, "c1", "Omega"), s.metrics(f, "c1", 2, as_of="2026-04-01T10:00:00+00:00"),
                       s.unassigned(f, "c9", "u0"), s.renamed(f, "c9", "Figures first, renamed"))
    run = uuid.uuid4().hex[:6]
    one = ClientsProjection(any_directory.app, any_directory.read_model, prefix=f"one{run}_")
    project(one, iter(lambda: 1, 0))
    expected = tables(any_directory, f"one{run}_", [f])
    assert [r["missing_receipts"] for r in expected["cd_clients"] if r["client_id"] == "c9"] == [5]
    rnd = random.Random(11)
    for n, sizes in enumerate([iter(lambda: 10_000, 0), iter(lambda: 1, 0),
                               *(iter(lambda: rnd.choice([2, 3, 5, 17]), 0) for _ in range(4))]):
        bulk = ClientsProjection(any_directory.app, any_directory.read_model, prefix=f"bulk{n}{run}_",
                                 query_indexes=False, bulk=True)
        project(bulk, sizes)
        assert tables(any_directory, f"bulk{n}{run}_", [f]) == expected


def test_the_fold_is_plain_python_from_events_to_row_changes(tmp_path: Path) -> None:
    """No database between the events and the row changes (projections/fold.py)."""
    directory = Directory(str(tmp_path / "fold.db"))
    f = s.firm()
    directory.send(s.member_added(f, "u1", "Chloé"), s.onboarding(f, "c1", "Zeta"), s.assigned(f, "c1", "u1"))
    notifications = directory.app.recorder.select_notifications(start=None, limit=100)
    batch = ClientsFold([(n.id, directory.app.mapper.to_domain_event(n)) for n in notifications if n.topic in TOPICS])
    assert batch.plan() == []  # every aggregate starts in the batch: no keys to read
    batch.keys_found([])
    assert batch.clients_found([]) == []  # no stored client rows, so no assignments to read
    batch.assignments_found([])
    batch.members_found([])
    batch.apply()
    changes = batch.changes()
    # A client started in the batch: its figures are not known, so only its relationship is written.
    assert changes.clients == [] and [(row[1], row[6]) for row in changes.partial_clients] == [("c1", "onboarding")]
    assert changes.added == [("u1", f, "c1")]
    assert changes.counts == [(f, "", "onboarding", 1), (f, "u1", "onboarding", 1)]
    assert [row[:3] for row in changes.members] == [(f, "u1", "Chloé")]
