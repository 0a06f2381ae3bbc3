"""The inbox table: each inbound CloudEvent id is applied once, its outcome kept for on-call,
on both stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from events.config import StoreUrl
from events.envelope import InboundEvent, InboundRecord, parse_record
from events.inbox import InboxEntry, InboxSink, ReceivedEvent, UnitOfWork
from events.kafka import PartitionBatch
from events.ops import inbox_history
from events.store import EventStoreApplication
from tests.conftest import Stores


class Rejected(Exception):
    """The test domain's rejection."""


class Ledger(EventStoreApplication):
    name = "inboxtest"


@pytest.fixture
def store_url(stores: Stores, store_kind: str) -> str:
    return stores.new(store_kind)


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    app = Ledger(StoreUrl.parse("TEST_DB", store_url))
    yield app
    app.close()


def inbound(event_id: str, offset: int, client_id: str = "c1", partition: int = 0) -> InboundEvent:
    value = json.dumps({
        "specversion": "1.0", "id": event_id, "source": "/tests", "type": "client.renamed.v1",
        "time": datetime.now(UTC).isoformat(), "subject": client_id, "partnerid": "firm-1",
        "datacontenttype": "application/json", "data": {"client_id": client_id, "client_name": "Acme"},
    }).encode()
    return parse_record(InboundRecord(topic="platform.partner-clients", partition=partition, offset=offset,
                                      key=client_id.encode(), value=value))


class Counting:
    """A handler that rejects client `bad` and counts what it applied."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    def __call__(self, event: InboundEvent, uow: UnitOfWork) -> None:
        if event.envelope.subject == "bad":
            raise Rejected("bad is not a client of firm-1")
        self.applied.append(event.id)


def test_an_event_id_is_applied_once_within_a_batch_and_across_batches(ledger: Ledger) -> None:
    handler = Counting()
    sink = InboxSink("test", ledger, handler, rejected=Rejected)
    assert sink.apply("platform.partner-clients", 0, [inbound("e1", 0), inbound("e2", 1), inbound("e1", 2)], 2) == 1
    assert sink.apply("platform.partner-clients", 0, [inbound("e2", 3), inbound("e3", 4)], 4) == 1
    assert handler.applied == ["e1", "e2", "e3"]
    assert ledger.inbox.inbox_count() == 3
    assert sink.position("platform.partner-clients", 0) == 4


def test_the_inbox_keeps_where_each_event_came_from_and_why_it_was_rejected(ledger: Ledger) -> None:
    sink = InboxSink("test", ledger, Counting(), rejected=Rejected)
    sink.apply("platform.partner-clients", 0, [inbound("ok", 7), inbound("no", 8, client_id="bad")], 8)
    ok, no = ledger.inbox.inbox_entry("ok"), ledger.inbox.inbox_entry("no")
    assert ok is not None and no is not None
    assert (ok.outcome, ok.reason, ok.kafka_position) == ("applied", "", "platform.partner-clients:0:7")
    assert (no.outcome, no.reason) == ("rejected", "bad is not a client of firm-1")
    assert ledger.inbox.inbox_entry("never") is None
    history = inbox_history(ledger, subject="bad", partner="firm-1")
    assert [(h["id"], h["outcome"]) for h in history] == [("no", "rejected")]


def test_a_second_instance_recording_the_same_event_id_changes_nothing(ledger: Ledger) -> None:
    entry = InboxEntry(event_id="same", event_type="client.renamed.v1", partner_id="firm-1", subject="c1",
                       source="/tests", kafka_position="platform.partner-clients:0:1", outcome="applied")
    ledger.record(entry)
    head = ledger.recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        ledger.record(ReceivedEvent(event_id="x", event_type="t", partner_id="p", subject="s", source="/",
                                    kafka_position="k", outcome="applied", reason=""), entry)
    assert ledger.recorder.max_notification_id() == head, "the whole transaction was rolled back"
    with pytest.raises(IntegrityError):  # rejected events store only their entry
        ledger.record(entry)
    assert ledger.inbox.inbox_count() == 1


def test_history_is_in_the_order_applied_and_limited_to_the_latest(ledger: Ledger) -> None:
    sink = InboxSink("test", ledger, Counting(), rejected=Rejected)
    sink.apply("platform.partner-clients", 0, [inbound("z", 0), inbound("b", 1), inbound("y", 2)], 2)
    for offset in range(3, 6):
        sink.apply("platform.partner-clients", 0, [inbound(f"e{offset}", offset)], offset)
    assert [h["id"] for h in inbox_history(ledger, subject="c1")] == ["z", "b", "y", "e3", "e4", "e5"]
    assert [h["id"] for h in inbox_history(ledger, subject="c1", limit=3)] == ["e3", "e4", "e5"]


def test_a_store_written_with_received_event_aggregates_keeps_its_inbox(store_url: str) -> None:
    """Before the inbox table each received event was an aggregate: opening such a store
    copies them into the table once, so they stay duplicates and `events show` lists them."""
    old = Ledger(StoreUrl.parse("TEST_DB", store_url))
    legacy: list[Any] = [
        ReceivedEvent(event_id=f"old-{n}", event_type="client.renamed.v1", partner_id="firm-1", subject="c1",
                      source="/tests", kafka_position=f"platform.partner-clients:0:{n}",
                      outcome="rejected" if n == 2 else "applied", reason="no" if n == 2 else "")
        for n in range(3)
    ]
    old.save(*legacy)
    old.close()

    reopened = Ledger(StoreUrl.parse("TEST_DB", store_url))
    try:
        assert reopened.inbox.inbox_received(["old-0", "old-1", "old-2", "new"]) == {"old-0", "old-1", "old-2"}
        entry = reopened.inbox.inbox_entry("old-2")
        assert entry is not None and (entry.outcome, entry.reason) == ("rejected", "no")
        handler = Counting()
        sink = InboxSink("test", reopened, handler, rejected=Rejected)
        sink.apply_replay([inbound("old-1", 1), inbound(str(uuid.uuid4()), 9)])
        assert len(handler.applied) == 1
    finally:
        reopened.close()
    again = Ledger(StoreUrl.parse("TEST_DB", store_url))
    try:
        assert again.inbox.inbox_count() == 4, "copied once, not at every start"
    finally:
        again.close()


def test_an_event_with_a_nul_character_is_recorded_rejected_and_stays_a_duplicate(ledger: Ledger) -> None:
    """PostgreSQL text cannot hold NUL: the entry keeps U+FFFD in its place, so the batch
    still commits (the event's handler rejects it) and the same id again is a duplicate."""

    def refuse_nul(event: InboundEvent, uow: UnitOfWork) -> None:
        if "\x00" in event.id or "\x00" in event.envelope.subject:
            raise Rejected("an id or name contains a NUL character")

    sink = InboxSink("test", ledger, refuse_nul, rejected=Rejected)
    assert sink.apply("platform.partner-clients", 0, [inbound("bad\x00id", 0, client_id="c\x00")], 0) == 0
    assert sink.apply("platform.partner-clients", 0, [inbound("bad\x00id", 1, client_id="c\x00")], 1) == 1
    entry = ledger.inbox.inbox_entry("bad\x00id")
    assert entry is not None and (entry.outcome, entry.subject) == ("rejected", "c\ufffd")
    assert ledger.inbox.inbox_received(["bad\x00id"]) == {"bad\ufffdid"}, "found as stored"
    assert sink.position("platform.partner-clients", 0) == 1


def test_a_fetch_from_several_partitions_is_applied_in_one_transaction_with_every_position(ledger: Ledger) -> None:
    handler, topic = Counting(), "platform.partner-clients"
    sink = InboxSink("test", ledger, handler, rejected=Rejected)
    fetch = [PartitionBatch(topic, 0, [inbound("a", 5)], 5),
             PartitionBatch(topic, 1, [inbound("b", 9, partition=1), inbound("a", 10, partition=1)], 10)]
    assert sink.apply_batches(fetch) == {topic: 1}, "the same id in another partition is a duplicate"
    assert handler.applied == ["a", "b"]
    assert sink.positions([(topic, 0), (topic, 1), (topic, 2)]) == {(topic, 0): 5, (topic, 1): 10, (topic, 2): None}

    # Nothing but duplicates: no event, no inbox row, and still every position moves.
    again = [PartitionBatch(topic, 1, [inbound("b", 11, partition=1)], 11),
             PartitionBatch(topic, 3, [inbound("a", 0, partition=3)], 0)]
    assert sink.apply_batches(again) == {topic: 2}
    assert sink.positions([(topic, 1), (topic, 3)]) == {(topic, 1): 11, (topic, 3): 0}

    # Partition 0 at offset 5 is recorded already (another member applied it first): the
    # whole fetch is refused, so partition 2's event and position are not recorded either.
    late = [PartitionBatch(topic, 2, [inbound("c", 0, partition=2)], 0), PartitionBatch(topic, 0, [inbound("d", 5)], 5)]
    with pytest.raises(IntegrityError):
        sink.apply_batches(late)
    assert sink.position(topic, 2) is None
    assert ledger.inbox.inbox_received(["c", "d"]) == set()
    assert ledger.inbox.inbox_count() == 2


def test_opening_a_postgresql_store_waits_for_no_running_batch(stores: Stores) -> None:
    """A process opening the store (another instance, an on-call command) while a batch holds
    inbox rows uncommitted: it must not queue behind that batch, or the batch's next lock (the
    events table's) closes a deadlock."""
    import threading

    import psycopg

    url = stores.new("postgresql")
    first = Ledger(StoreUrl.parse("TEST_DB", url))
    try:
        with psycopg.connect(url) as batch:  # a transaction holding an inbox row, not committed
            batch.execute("INSERT INTO inboxtest_inbox (event_id, event_type, partner_id, subject, source, "
                          "kafka_position, outcome, reason, received_at) "
                          "VALUES ('x', 't', 'f', 's', '/s', 'k:0:0', 'applied', '', 'now')")
            opened: list[Ledger] = []
            opener = threading.Thread(target=lambda: opened.append(Ledger(StoreUrl.parse("TEST_DB", url))))
            opener.start()
            opener.join(timeout=10)
            assert not opener.is_alive(), "opening the store queued behind an uncommitted batch"
            batch.rollback()
        opened[0].close()
    finally:
        first.close()
