"""Shared leadership (events/leadership.py, Runtime's leading loop) and projections run by
several instances on one store at once (events/follower.py, ReadModel.write)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Notification, Tracking

from events.config import KafkaSettings, StoreUrl
from events.envelope import InboundRecord, parse_record
from events.follower import LogFollower
from events.inbox import InboxSink
from events.kafka import make_broker
from events.leadership import LeaderOnly, Leadership
from events.runtime import Runtime
from events.store import EventStoreApplication, ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.domain.model import Rejected as DirectoryRejected
from services.client_directory.projections.clients import ClientsProjection
from tests.faults.workload import workload


def sqlite_store(tmp_path: Path) -> StoreUrl:
    return StoreUrl.parse("NOTIFIER_DB", f"sqlite:///{tmp_path / 'lock.db'}")


def test_one_process_at_a_time_holds_the_lock_on_sqlite(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path)
    first, second = Leadership(store, "notifier"), Leadership(store, "notifier")
    assert first.try_acquire() and not second.try_acquire()
    assert first.try_acquire()  # still ours
    first.release()
    assert second.try_acquire() and not first.try_acquire()
    second.release()


def test_the_lock_on_postgresql_and_one_per_service(stores: Any) -> None:
    store = StoreUrl.parse("NOTIFIER_DB", stores.new("postgresql"))
    first, second = Leadership(store, "notifier"), Leadership(store, "notifier")
    other_service = Leadership(store, "client_directory")
    assert first.try_acquire() and not second.try_acquire()
    assert other_service.try_acquire()  # another service's lock on the same database
    first.release()
    assert second.try_acquire()
    second.release()
    other_service.release()


def test_an_in_memory_store_always_leads() -> None:
    leadership = Leadership(StoreUrl.parse("NOTIFIER_DB", "sqlite:///:memory:"), "notifier")
    assert leadership.held and leadership.try_acquire()
    leadership.release()
    assert leadership.held


class Counting(LogFollower):
    name = "test:counting"

    def __init__(self, app: EventStoreApplication) -> None:
        super().__init__(app)
        self.calls = 0

    def position(self) -> int:
        return 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        raise AssertionError("never reached: catch_up is counted instead")

    def catch_up(self, until: int | None = None) -> int:
        self.calls += 1
        return 0


async def test_the_runtime_leads_in_one_instance_and_the_other_takes_over_when_it_stops(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path)
    woken: list[str] = []

    def runtime(name: str) -> tuple[Runtime, Counting]:
        app = EventStoreApplication(store)
        inner = Counting(app)
        leadership = Leadership(store, "svc")
        made = Runtime("svc", app, make_broker(KafkaSettings("127.0.0.1:1"), client_id="test"),
                       [LeaderOnly(inner, leadership)], leadership=leadership,
                       on_leading=[lambda: woken.append(name)], check_every=0.1, try_every=0.1)
        return made, inner

    (a, inner_a), (b, inner_b) = runtime("a"), runtime("b")
    lead_a = asyncio.create_task(a.lead())
    await asyncio.sleep(0.3)
    lead_b = asyncio.create_task(b.lead())
    await asyncio.sleep(0.3)
    assert woken == ["a"] and a.leadership and a.leadership.held and b.leadership and not b.leadership.held
    for follower in (*a.runner.followers, *b.runner.followers):
        follower.catch_up()
    assert (inner_a.calls, inner_b.calls) == (1, 0)  # the follower runs in the leader only

    lead_a.cancel()
    await asyncio.gather(lead_a, return_exceptions=True)
    assert not a.leadership.held  # released when stopped
    for _ in range(50):
        if b.leadership.held:
            break
        await asyncio.sleep(0.05)
    assert woken == ["a", "b"]
    lead_b.cancel()
    await asyncio.gather(lead_b, return_exceptions=True)


def fill(directory: ClientDirectory, records: int) -> None:
    sink = InboxSink("client_directory", directory, directory.handle, rejected=DirectoryRejected)
    events: dict[str, list[Any]] = {}
    for offset, record in enumerate(workload(records, seed=11)):
        inbound = parse_record(InboundRecord(record.topic, 0, offset, record.key, record.value, (), 0))
        events.setdefault(record.topic, []).append(inbound)
    for topic, batch in events.items():
        for start in range(0, len(batch), 250):
            chunk = batch[start:start + 250]
            sink.apply(topic, 0, chunk, chunk[-1].record.offset)


def tabs(url: str) -> tuple[list[Any], list[Any], list[Any]]:
    with psycopg.connect(url) as conn:
        counts = sorted(conn.execute("SELECT partner_id, scope, tab, n FROM cd_counts WHERE n <> 0").fetchall())
        truth = sorted(conn.execute(
            "SELECT partner_id, '' AS scope, tab, COUNT(*) FROM cd_clients WHERE tab <> '' GROUP BY 1, 3 "
            "UNION ALL SELECT partner_id, user_id, tab, COUNT(*) FROM cd_assignments WHERE tab <> '' GROUP BY 1, 2, 3"
        ).fetchall())
        clients = sorted(conn.execute("SELECT * FROM cd_clients").fetchall())
    return counts, truth, clients


@pytest.mark.integration
def test_two_instances_projecting_one_store_at_once_agree_quietly(stores: Any) -> None:
    """Each instance projects the whole log (read-your-writes); with different batch sizes their
    batches overlap without matching. No error reaches the runner, counts stay exact, and the
    result is the one a single instance gets."""
    url = stores.new("postgresql")
    store = StoreUrl.parse("CLIENT_DIRECTORY_DB", url)
    fill(ClientDirectory(store), 3000)
    errors: list[BaseException] = []
    projections = []
    for batch_size in (37, 53):
        app = ClientDirectory(store)  # its own connections, as another process would have
        projection = ClientsProjection(app, ReadModel(app))
        projection.batch_size = batch_size
        projections.append(projection)

    def run(projection: ClientsProjection) -> None:
        try:
            projection.catch_up()
        except BaseException as error:  # the test reports whatever escaped
            errors.append(error)

    threads = [threading.Thread(target=run, args=(p,)) for p in projections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    head = projections[0].app.recorder.max_notification_id()
    assert all(p.position() == head for p in projections)
    counts, truth, together = tabs(url)
    assert counts == truth

    alone_url = stores.new("postgresql")
    alone_store = StoreUrl.parse("CLIENT_DIRECTORY_DB", alone_url)
    fill(ClientDirectory(alone_store), 3000)
    app = ClientDirectory(alone_store)
    ClientsProjection(app, ReadModel(app)).catch_up()
    assert tabs(alone_url) == (counts, truth, together)


def test_a_tracked_write_starts_from_the_position_recorded_and_skips_a_batch_it_covers(
        stores: Any, store_kind: str) -> None:
    """The position is read in the write's own transaction (once it holds the lock on
    PostgreSQL): the batch applies what comes after it, and is not run at all if covered."""
    model = ReadModel(EventStoreApplication(StoreUrl.parse("NOTIFIER_DB", stores.new(store_kind))))
    given: list[int] = []
    model.write_after(lambda c, position: given.append(position), Tracking("test:p", 40))
    model.set_tracking("test:p", 60)  # another instance went on meanwhile
    model.write_after(lambda c, position: given.append(position), Tracking("test:p", 90))
    with pytest.raises(IntegrityError):
        model.write_after(lambda c, position: given.append(position), Tracking("test:p", 75))
    with pytest.raises(IntegrityError):
        model.write(lambda c: given.append(-1), Tracking("test:p", 90))
    assert given == [0, 60]
    assert model.tracked("test:p") == 90


def test_a_position_recorded_by_another_instance_is_no_error(tmp_path: Path) -> None:
    """The follower re-reads its position after an IntegrityError from recording it, and goes on."""
    store = StoreUrl.parse("CLIENT_DIRECTORY_DB", f"sqlite:///{tmp_path / 'f.db'}")
    directory = ClientDirectory(store)
    fill(directory, 60)
    model = ReadModel(directory)
    processed: list[int] = []

    class Racing(LogFollower):
        name = "test:racing"
        batch_size = 10

        def position(self) -> int:
            return model.tracked(self.name) or 0

        def process(self, notifications: Sequence[Notification], last_id: int) -> None:
            if len(processed) % 2 == 0:
                model.set_tracking(self.name, last_id)  # "another instance" got there first
            processed.append(last_id)
            model.write(lambda c: None, Tracking(self.name, last_id))

    follower = Racing(directory)
    follower.catch_up()
    head = directory.recorder.max_notification_id()
    assert follower.position() == head
    assert len(processed) > 2  # it went on after each refusal


def test_a_read_sees_one_snapshot_even_when_a_projection_commits_meanwhile(stores: Any, store_kind: str) -> None:
    """A page reads its tab counts, then its rows: a projection's commit in between must show
    in neither or in both (a client listed in a tab counted empty was hidden from its tab)."""
    app = ClientDirectory(StoreUrl.parse("CLIENT_DIRECTORY_DB", stores.new(store_kind)))
    read_model = ReadModel(app)
    try:
        read_model.write(lambda c: c.execute("CREATE TABLE snapshot_probe (n INTEGER NOT NULL)"))
        read_model.write(lambda c: c.execute("INSERT INTO snapshot_probe (n) VALUES (1)"))

        def count(c: Any) -> int:
            c.execute("SELECT COUNT(*) AS n FROM snapshot_probe")
            return int(c.fetchone()["n"])

        def page(c: Any) -> tuple[int, int]:
            before = count(c)
            writer = threading.Thread(target=read_model.write,
                                      args=(lambda w: w.execute("INSERT INTO snapshot_probe (n) VALUES (2)"),))
            writer.start()
            writer.join(timeout=30)
            assert not writer.is_alive(), "a read must not block a projection's write"
            return before, count(c)

        assert read_model.read(page) == (1, 1)
        assert read_model.read(count) == 2  # the next read sees the commit
    finally:
        app.close()
