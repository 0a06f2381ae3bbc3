"""The inbox: every inbound CloudEvent id is recorded once, with what came of it.

An `InboxEntry` per CloudEvent id, a row of the store's inbox table (events/recorders.py)
written in the same transaction as the event's effects and the Kafka position, makes
deduplication a property of the store: the same id arriving again, at any offset, changes
nothing. It also keeps, for on-call, whether the event was applied or rejected and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking

from events.envelope import InboundEvent
from events.kafka import PartitionBatch, tracking_name
from events.metrics import EVENTS_APPLIED, EVENTS_REJECTED
from events.recorders import InboxEntry, stored_text
from events.store import EventStoreApplication

__all__ = ["Handler", "InboxEntry", "InboxSink", "Keys", "ReceivedEvent", "UnitOfWork"]


class ReceivedEvent(Aggregate):
    """How the inbox was kept before the inbox table: an aggregate per event. Kept so stores
    written then still read (`events show`, aggregate histories); nothing records it now."""

    TOPIC = "events.inbox:ReceivedEvent"

    class Created(Aggregate.Created):
        TOPIC = "events.inbox:ReceivedEvent.Created"
        event_id: str
        event_type: str
        partner_id: str
        subject: str
        source: str
        kafka_position: str
        outcome: str
        reason: str

    @event(Created)
    def __init__(self, event_id: str, event_type: str, partner_id: str, subject: str, source: str,
                 kafka_position: str, outcome: str, reason: str) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.partner_id = partner_id
        self.subject = subject
        self.source = source
        self.kafka_position = kafka_position
        self.outcome = outcome
        self.reason = reason


def received(inbound: InboundEvent, kafka_position: str, outcome: str, reason: str, at: datetime) -> InboxEntry:
    return InboxEntry(event_id=inbound.id, event_type=inbound.type, partner_id=inbound.partner_id,
                      subject=inbound.envelope.subject, source=inbound.envelope.source,
                      kafka_position=kafka_position, outcome=outcome, reason=reason, received_at=at)


class UnitOfWork:
    """The aggregates one batch touches: loaded once, saved together."""

    def __init__(self, app: EventStoreApplication) -> None:
        self.app = app
        self._loaded: dict[uuid.UUID, Any] = {}
        self._missing: set[uuid.UUID] = set()
        self._received: list[InboxEntry] = []

    def prefetch(self, ids: Iterable[uuid.UUID]) -> None:
        """Load these aggregates (those not known yet) in one query: a batch's reads become
        one round trip instead of one transaction per aggregate."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._loaded and i not in self._missing]
        if not wanted:
            return
        found = self.app.load(wanted)
        self._loaded.update(found)
        self._missing.update(i for i in wanted if i not in found)

    def get(self, aggregate_id: uuid.UUID) -> Any | None:
        if aggregate_id in self._loaded:
            return self._loaded[aggregate_id]
        if aggregate_id in self._missing:
            return None
        try:
            aggregate: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            self._missing.add(aggregate_id)
            return None
        self._loaded[aggregate_id] = aggregate
        return aggregate

    def add(self, aggregate: Any) -> Any:
        self._loaded[aggregate.id] = aggregate
        self._missing.discard(aggregate.id)
        return aggregate

    def receive(self, entry: InboxEntry) -> None:
        """An inbound event's inbox entry, saved with the rest."""
        self._received.append(entry)

    def changed(self) -> list[Any]:
        return [*(a for a in self._loaded.values() if getattr(a, "_pending_events", None)), *self._received]


Handler = Callable[[InboundEvent, UnitOfWork], None]
# The aggregates the handler will read for an event, so a batch loads them in one query.
# Without one given, the application's `inbox_keys` method is used if it has one.
Keys = Callable[[InboundEvent], Iterable[uuid.UUID]]


class InboxSink:
    """Applies a fetch's batches through the service's handler, atomically with their positions."""

    def __init__(self, service: str, app: EventStoreApplication, handle: Handler, *,
                 rejected: type[Exception], keys: Keys | None = None) -> None:
        self.service = service
        self.app = app
        self.handle = handle
        # The domain's own rejection type: the plumbing knows no service's domain.
        self.rejected = rejected
        self.keys: Keys | None = keys if keys is not None else getattr(app, "inbox_keys", None)
        self._counters: dict[tuple[str, str, str], Any] = {}  # labelled children: labels() is not free

    def _unit_of_work(self, events: Sequence[InboundEvent]) -> tuple[UnitOfWork, set[str]]:
        """The batch's unit of work, loaded, and which of its event ids were received before
        (as the inbox table holds them: `stored_text`)."""
        uow = UnitOfWork(self.app)
        if self.keys is not None:
            uow.prefetch(key for inbound in events for key in self.keys(inbound))
        return uow, self.app.inbox.inbox_received([e.id for e in events])

    def position(self, topic: str, partition: int) -> int | None:
        return self.app.tracked(tracking_name(topic, partition))

    def positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        names = {tracking_name(topic, partition): (topic, partition) for topic, partition in partitions}
        return {names[name]: position for name, position in self.app.tracked_many(list(names)).items()}

    def apply(self, topic: str, partition: int, events: Sequence[InboundEvent], last_offset: int) -> int:
        return sum(self.apply_batches([PartitionBatch(topic, partition, events, last_offset)]).values())

    def apply_batches(self, batches: Sequence[PartitionBatch]) -> dict[str, int]:
        """Apply several partitions' batches as one unit of work, with every partition's
        position, in one transaction: a fetch costs one commit (and one projection step), not
        one per partition. The batches are applied in the order given.
        Returns the duplicates (already received ids) per topic."""
        uow, duplicates = self._apply_all([inbound for batch in batches for inbound in batch.events])
        # Positions in one order whoever writes them: two instances overlapping in a rebalance
        # then wait for each other instead of deadlocking.
        self.app.record(*uow.changed(), trackings=sorted(
            (Tracking(tracking_name(batch.topic, batch.partition), batch.last_offset) for batch in batches),
            key=lambda tracking: tracking.application_name))
        return duplicates

    def apply_replay(self, events: Sequence[InboundEvent]) -> int:
        """Apply events again without moving the live consumer's position (on-call replays).
        Returns how many were duplicates: those change nothing."""
        uow, duplicates = self._apply_all(events)
        self.app.record(*uow.changed())
        return sum(duplicates.values())

    def _apply_all(self, events: Sequence[InboundEvent]) -> tuple[UnitOfWork, dict[str, int]]:
        uow, seen = self._unit_of_work(events)
        duplicates: dict[str, int] = {}
        now = datetime.now(UTC)  # a batch is received at once
        for inbound in events:
            key = stored_text(inbound.id)  # the id as the inbox table holds it
            if key in seen:  # received before, or earlier in this batch
                topic = inbound.record.topic
                duplicates[topic] = duplicates.get(topic, 0) + 1
                continue
            seen.add(key)
            self._apply_one(inbound, uow, now)
        return uow, duplicates

    def _apply_one(self, inbound: InboundEvent, uow: UnitOfWork, now: datetime) -> None:
        outcome, reason = "applied", ""
        try:
            self.handle(inbound, uow)
        except self.rejected as rejection:
            outcome, reason = "rejected", str(rejection)
        record = inbound.record
        uow.receive(received(inbound, f"{record.topic}:{record.partition}:{record.offset}", outcome, reason, now))
        key = (record.topic, inbound.type, outcome)
        counter = self._counters.get(key)
        if counter is None:
            metric = EVENTS_APPLIED if outcome == "applied" else EVENTS_REJECTED
            counter = self._counters[key] = metric.labels(self.service, record.topic, inbound.type)
        counter.inc()
